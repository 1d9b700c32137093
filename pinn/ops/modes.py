"""Mixed-state (partially coherent) probes: incoherent far-field sums and mode orthogonality."""

from __future__ import annotations

import torch

from pinn.ops._checks import check_min_dims, check_tensor
from pinn.ops._precision import full_precision, no_autocast
from pinn.ops.diffract import diffract


def far_field_intensity(waves: torch.Tensor) -> torch.Tensor:
    """Expected far-field intensity of ``K`` mutually incoherent exit waves (probe modes).

    ``sum_k fftshift(|fft2(waves[..., k, :, :])|**2) / (H*W)``: the square of
    :func:`pinn.ops.diffract` of each mode, summed over modes. For ``K = 1`` it is
    ``diffract(waves[..., 0, :, :])**2`` computed by that very op, bit for bit, so a
    single-mode model gives exactly the single-mode results.

    Args:
        waves: ``(..., K, H, W)`` complex exit waves, one per probe mode.

    Returns:
        ``(..., H, W)`` float32 intensity (float64 for complex128 input), zero frequency at
        ``(H//2, W//2)``, in the units of ``|waves|**2`` summed (energy preserving).
    """
    check_tensor("waves", waves)
    check_min_dims("waves", waves, 3, "(..., K, H, W)")
    if waves.shape[-3] == 1:
        return diffract(waves[..., 0, :, :]).square()
    with no_autocast(waves.device):
        waves = full_precision(waves)
        if not waves.is_complex():
            waves = torch.complex(waves, torch.zeros_like(waves))
        height, width = waves.shape[-2:]
        spectrum = torch.fft.fft2(waves)
        intensity = (spectrum.real.square() + spectrum.imag.square()).sum(dim=-3)
        return torch.fft.fftshift(intensity / (height * width), dim=(-2, -1))


def far_field_amplitude(waves: torch.Tensor) -> torch.Tensor:
    """``sqrt`` of :func:`far_field_intensity` (``diffract`` itself for ``K = 1``), with the
    subgradient 0 where the intensity is 0. ``(..., K, H, W)`` -> ``(..., H, W)`` float32."""
    check_tensor("waves", waves)
    check_min_dims("waves", waves, 3, "(..., K, H, W)")
    if waves.shape[-3] == 1:
        return diffract(waves[..., 0, :, :])
    intensity = far_field_intensity(waves)
    positive = intensity > 0
    safe = torch.where(positive, intensity, torch.ones_like(intensity))
    return torch.where(positive, safe.sqrt(), torch.zeros_like(intensity))


def mode_powers(modes: torch.Tensor) -> torch.Tensor:
    """``(K,)`` power ``sum |mode|**2`` of each of ``(K, N, N)`` modes (float32)."""
    check_tensor("modes", modes)
    check_min_dims("modes", modes, 3, "(K, N, N)")
    return full_precision(modes).abs().square().sum(dim=(-2, -1))


def dominant_mode(probe: torch.Tensor) -> torch.Tensor:
    """The strongest mode of a probe: an ``(N, N)`` probe itself, or the mode of ``(K, N, N)``
    modes with the largest power ``sum |mode|**2`` (the first of equals), unchanged (same
    dtype; a view, not a copy)."""
    check_tensor("probe", probe)
    check_min_dims("probe", probe, 2, "(N, N) or (K, N, N)")
    if probe.dim() == 2:
        return probe
    if probe.dim() != 3 or probe.shape[0] == 0:
        raise ValueError(f"probe has shape {tuple(probe.shape)}; expected (N, N) or (K, N, N) "
                         "with K >= 1")
    return probe[int(torch.argmax(mode_powers(probe.detach())))]


def orthogonalize_modes(modes: torch.Tensor) -> torch.Tensor:
    """Mutually orthogonal modes spanning the same mixed state, sorted by power (largest first).

    The modes' overlap (Gram) matrix ``A[j, l] = sum_r conj(modes[j](r)) modes[l](r)`` is
    Hermitian; with ``A = V diag(w) V^H`` the new modes are ``new[k] = sum_j V[j, k] modes[j]``,
    ordered by ``w`` descending. The mixing is unitary, so
    the total intensity ``sum_k |mode_k(r)|**2`` is unchanged at every pixel and so is every
    predicted diffraction pattern; afterwards the modes are orthogonal and ``w`` are their
    powers.

    Args:
        modes: ``(K, N, N)`` complex.

    Returns:
        ``(K, N, N)`` complex64 (complex128 for double input). Computed in double precision.
    """
    check_tensor("modes", modes)
    check_min_dims("modes", modes, 3, "(K, N, N)")
    out_dtype = full_precision(modes).dtype
    if not out_dtype.is_complex:
        out_dtype = torch.complex64 if out_dtype == torch.float32 else torch.complex128
    k = modes.shape[-3]
    flat = modes.reshape(k, -1).to(torch.complex128)
    overlap = flat.conj() @ flat.transpose(0, 1)  # A[j, l] = sum_r conj(m_j) m_l
    # A = G^H G for the matrix G whose columns are the modes: an eigenvector v gives the mode
    # G v = sum_j v[j] m_j of power v^H A v = w, orthogonal to the others.
    values, vectors = torch.linalg.eigh(overlap)  # ascending
    order = torch.argsort(values, descending=True)
    mixed = vectors[:, order].transpose(0, 1) @ flat  # new[k] = sum_j V[j, k] m_j
    return mixed.reshape(modes.shape).to(out_dtype)


def add_probe_modes(probe: torch.Tensor, k: int, power_fraction: float = 0.02) -> torch.Tensor:
    """A ``K``-mode start from a probe guess: the guess plus Hermite-like modes.

    Mode ``j >= 1`` is the dominant mode times a low-order Hermite polynomial of the
    coordinates measured from its centre of intensity in units of its rms width (in the order
    ``x``, ``y``, ``x y``, ``x**2 - 1``, ``y**2 - 1``, ...), orthogonalised against the earlier
    modes and given ``power_fraction`` of the total power; the dominant mode keeps the rest, so
    the total power is the guess's. Modes the guess already has are kept as they are (only
    modes up to ``K`` are added, with ``power_fraction`` each of the total).

    Args:
        probe: ``(N, N)`` or ``(J, N, N)`` complex, J <= K.
        k: number of modes wanted (>= 1).
        power_fraction: share of the total power of each added mode, in ``(0, 1/K)``.

    Returns:
        ``(K, N, N)`` complex64.
    """
    check_tensor("probe", probe)
    modes = probe.to(torch.complex64)
    if modes.dim() == 2:
        modes = modes[None]
    check_min_dims("probe", modes, 3, "(J, N, N)")
    have = modes.shape[0]
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"the number of probe modes is {k!r}; use an int >= 1")
    if have >= k:
        return modes[:k].clone()
    if not 0 < power_fraction < 1 / k:
        raise ValueError(f"the power fraction of an added mode is {power_fraction}; use a "
                         f"value in (0, 1/{k})")
    n = modes.shape[-1]
    total = float(mode_powers(modes).sum())
    weight = modes[0].abs().square().to(torch.float64)
    coords = torch.arange(n, dtype=torch.float64)
    mass = weight.sum()
    cy = (weight.sum(1) * coords).sum() / mass
    cx = (weight.sum(0) * coords).sum() / mass
    sy = ((weight.sum(1) * (coords - cy) ** 2).sum() / mass).sqrt().clamp_min(1.0)
    sx = ((weight.sum(0) * (coords - cx) ** 2).sum() / mass).sqrt().clamp_min(1.0)
    u = ((coords - cy) / sy)[:, None].expand(n, n)
    v = ((coords - cx) / sx)[None, :].expand(n, n)
    polynomials = [v, u, u * v, v**2 - 1, u**2 - 1, u * (v**2 - 1), v * (u**2 - 1), u**3 - 3 * u,
                   v**3 - 3 * v]
    base = modes[0].to(torch.complex128)
    basis = [m.to(torch.complex128) for m in modes]
    for poly in polynomials:
        if len(basis) == k:
            break
        candidate = base * poly
        for other in basis:  # Gram-Schmidt against what is there
            candidate = candidate - (other.conj() * candidate).sum() / (
                other.abs().square().sum()) * other
        power = candidate.abs().square().sum()
        if power <= 1e-12 * total:
            continue
        basis.append(candidate / power.sqrt() * (power_fraction * total) ** 0.5)
    if len(basis) < k:
        raise ValueError(f"could not build {k} independent probe modes from the guess; use "
                         "fewer modes")
    added = (k - have) * power_fraction * total
    keep = ((total - added) / total) ** 0.5  # the given modes share the rest of the power
    out = torch.stack([m * keep for m in basis[:have]] + basis[have:])
    return out.to(torch.complex64)
