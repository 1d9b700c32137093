"""Per-position Newton steps for position refinement: the Fisher information of each scan
point's Poisson likelihood with respect to its own (y, x) shift.

A shift ``d`` of scan point ``m`` moves its probe over the object. Its expected counts ``I``
change by ``dI/dd_a = 2 Re(conj(F(P O)) F(dP/dd_a O)) / N^2`` per detector pixel, and the Fisher
information of the Poisson likelihood is the ``2 x 2`` matrix
``F_ab = sum_pixels (dI/dd_a)(dI/dd_b) / I``: the expected curvature of the negative
log-likelihood in ``d``. The Newton step ``-F^-1 g`` (``g`` the likelihood's gradient in ``d``)
is then in pixels and scaled by what the data say about that position: a position over
featureless object barely moves, one over sharp features moves as far as its misfit asks.

Simpler normalisations are far off: the "object-gradient energy under the probe" of the
ePIE/LSQML position updates, ``sum |P dO/dd|^2``, measures the exit wave's change, most of
which is a phase change that leaves the intensity alone. On the simulated benchmark
(benchmarks/refine_positions.py, true object) it was 8-30 times the Fisher information, which
matched the likelihood's measured curvature to 5 %; steps normalised by it are 3-12 % of the
needed ones. See docs/DESIGN.md, "Refinement".
"""

from __future__ import annotations

import math

import torch


def position_fisher(windows: torch.Tensor, mode: torch.Tensor,
                    intensity: torch.Tensor) -> torch.Tensor:
    """Fisher information of each window's Poisson likelihood in its (y, x) shift.

    Uses the dominant probe mode for the derivative of the counts (the weak modes change it by
    a few tens of percent at most; 3 FFTs per window instead of 3 per window and mode) and the
    full predicted counts in the denominator.

    Args:
        windows: ``(B, N, N)`` complex object windows.
        mode: ``(N, N)`` complex dominant probe mode (data units: sqrt(counts) per pixel).
        intensity: ``(B, N, N)`` predicted counts of the windows, zero frequency at pixel
            ``(0, 0)`` (unshifted FFT layout).

    Returns:
        ``(B, 2, 2)`` float32 symmetric positive semi-definite matrices, per pixel of shift
        squared, in units of counts' log-likelihood (the sum over the pattern's pixels).
    """
    n = windows.shape[-1]
    k = torch.fft.fftfreq(n, device=windows.device)
    spectrum = torch.fft.fft2(mode)
    # d/dd P(r - d) at d = 0: the derivative of a Fourier shift is -2 pi i k times the spectrum
    d_mode = torch.fft.ifft2(torch.stack([spectrum * (-2j * math.pi * k[:, None]),
                                          spectrum * (-2j * math.pi * k[None, :])]))  # (2, N, N)
    far = torch.fft.fft2(mode * windows)  # (B, N, N)
    d_far = torch.fft.fft2(d_mode[None] * windows[:, None])  # (B, 2, N, N)
    d_counts = 2 * (far.conj()[:, None] * d_far).real / (n * n)  # (B, 2, N, N)
    floor = 1e-6 * intensity.mean(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
    weighted = d_counts / (intensity + floor)[:, None]  # (B, 2, N, N)
    return torch.einsum("bayx,bcyx->bac", weighted, d_counts)


def newton_step(gradient: torch.Tensor, fisher: torch.Tensor, ridge: float = 1e-2
                ) -> torch.Tensor:
    """``(B, 2)`` Newton steps ``-(F + lambda 1)^-1 g`` in pixels.

    Args:
        gradient: ``(B, 2)`` gradient of the negative log-likelihood in each position.
        fisher: ``(B, 2, 2)`` Fisher information (:func:`position_fisher`), in the same units.
        ridge: Levenberg term ``lambda`` as a fraction of the batch's mean diagonal of ``F``,
            so that a position without information (a flat object) gets a small step.
    """
    scale = fisher.diagonal(dim1=-2, dim2=-1).mean().clamp_min(1e-30)
    eye = torch.eye(2, dtype=fisher.dtype, device=fisher.device)
    damped = fisher + ridge * scale * eye
    return -torch.linalg.solve(damped, gradient.to(fisher.dtype)[..., None])[..., 0]


def project_offsets(offsets: torch.Tensor, anchor: torch.Tensor, cap: float,
                    iterations: int = 60) -> torch.Tensor:
    """The nearest offsets with zero mean per axis that lie within ``cap`` of ``anchor``.

    A common shift of every position is not identifiable (the object moves with it), and a
    position may move at most ``cap`` pixels per axis within an epoch. The Euclidean projection
    onto that set (a box cut by a plane per axis) is ``clamp(offsets - c, anchor - cap,
    anchor + cap)`` for the per-axis ``c`` that makes the mean zero, found by bisection (the
    mean falls monotonically with ``c``).

    Args:
        offsets: ``(M, 2)`` float offsets (pixels).
        anchor: ``(M, 2)`` offsets at the start of the epoch, zero mean per axis.
        cap: the largest change per axis (pixels, > 0).

    Returns:
        ``(M, 2)`` offsets of the input's dtype.
    """
    x = offsets.to(torch.float64)
    low = anchor.to(torch.float64) - cap
    high = anchor.to(torch.float64) + cap
    lo = (x - high).min(dim=0).values  # (2,): every offset at its upper bound: mean >= 0
    hi = (x - low).max(dim=0).values  # every offset at its lower bound: mean <= 0
    for _ in range(iterations):
        c = (lo + hi) / 2
        positive = torch.minimum(torch.maximum(x - c, low), high).mean(dim=0) > 0
        lo = torch.where(positive, c, lo)
        hi = torch.where(positive, hi, c)
    out = torch.minimum(torch.maximum(x - (lo + hi) / 2, low), high)
    return out.to(offsets.dtype)


def affine_basis(positions: torch.Tensor) -> torch.Tensor:
    """``(M, R)`` float64 orthonormal basis of the offsets that are an affine function of the
    positions (``a + b y + c x`` per axis; ``R = 3``, or less for a scan along a line).

    A global affine change of every position (a common shift, a scale, a rotation, a shear)
    is nearly invisible in the data: the object can stretch or turn along with it, and only
    the probe's own structure pins the scale. Left free, it drifts (on the simulated
    benchmark, scale errors of about 1 % put the outer positions 1-2 px off while the inner
    ones were right), so by default the refined offsets keep no affine part: the recorded
    positions' global geometry (the stage's calibration) is trusted and only each position's
    own error is refined. See docs/DESIGN.md, "Refinement".

    Args:
        positions: ``(M, 2)`` float (y, x) positions, any units.
    """
    p = positions.to(torch.float64)
    p = p - p.mean(dim=0)
    design = torch.cat([torch.ones_like(p[:, :1]), p], dim=1)  # (M, 3)
    u, s, _ = torch.linalg.svd(design, full_matrices=False)
    keep = s > 1e-9 * float(s.max())
    return u[:, keep]


def project_offsets_affine(offsets: torch.Tensor, anchor: torch.Tensor, cap: float,
                           basis: torch.Tensor, iterations: int = 30) -> torch.Tensor:
    """Offsets with no affine part (orthogonal to ``basis`` per axis) within ``cap`` of
    ``anchor``, by alternating projections onto the two sets (both convex; ``anchor`` lies in
    both), ending on the affine removal so that the constraint that makes the positions
    identifiable holds to round-off; the cap then holds to within a few thousandths of a
    pixel when it binds (it is a safety limit on one epoch's move, not an identity).

    Args:
        offsets: ``(M, 2)`` float offsets (pixels).
        anchor: ``(M, 2)`` offsets at the start of the epoch, with no affine part.
        cap: the largest change per axis (pixels, > 0).
        basis: ``(M, R)`` float64 orthonormal basis (:func:`affine_basis`).

    Returns:
        ``(M, 2)`` offsets of the input's dtype.
    """
    x = offsets.to(torch.float64)
    low = anchor.to(torch.float64) - cap
    high = anchor.to(torch.float64) + cap
    q = basis.to(device=x.device)
    for _ in range(iterations):
        x = x - q @ (q.T @ x)
        inside = (x >= low).all() and (x <= high).all()
        if inside:
            break
        x = torch.minimum(torch.maximum(x, low), high)
    x = x - q @ (q.T @ x)
    return x.to(offsets.dtype)
