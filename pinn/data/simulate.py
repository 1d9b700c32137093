"""Simulated ptychographic scans with Poisson noise at a chosen dose.

Forward model, per scan position ``p``: the object window of ``N x N`` pixels whose centre
pixel ``N//2`` sits on ``p`` (:func:`pinn.ops.extract_patches`, bilinear at subpixel
positions) times the probe (:func:`pinn.ops.illuminate`) gives the exit wave; its far-field
amplitude (:func:`pinn.ops.diffract`, zero frequency at the centre, energy preserving)
squared is the noise-free intensity; with ``K`` incoherent probe modes the intensities of the
modes' exit waves add (:func:`pinn.ops.far_field_amplitude`). One global factor scales the intensities so that the
mean expected total count per pattern equals ``photons``; counts are then Poisson samples
drawn with a seeded ``torch.Generator``. The stored diffraction is ``sqrt(counts)``.
"""

from __future__ import annotations

import math

import torch

from pinn.data import _checks
from pinn.data.objects import generator_from, make_object
from pinn.data.probes import make_probe
from pinn.data.scan import ScanData, sqrt_counts
from pinn.data.trajectories import make_positions, scan_bounds
from pinn.errors import ConfigError, DataError
from pinn.ops import diffract, extract_patches, far_field_amplitude, illuminate

_CHUNK = 2048  # positions per forward-model block (bounds the complex64 patch memory)


def simulate_scan(
    object: torch.Tensor,  # noqa: A002 - the ptychography term
    probe: torch.Tensor,
    positions: torch.Tensor,
    photons: float,
    *,
    seed: int | torch.Generator = 0,
    noise: bool = True,
) -> ScanData:
    """Simulate the diffraction of ``object`` scanned by ``probe`` at ``positions``.

    Args:
        object: ``(H, W)`` complex object (real is promoted).
        probe: ``(N, N)`` complex probe, or ``(K, N, N)`` incoherent modes (a mixed-state
            probe), used as given (not normalised).
        positions: ``(M, 2)`` float ``(y, x)`` window centres; each ``N x N`` window must lie
            inside the object (``N//2 <= p <= (H, W) - N + N//2``).
        photons: expected total counts per pattern, averaged over the scan (> 0).
        seed: int or ``torch.Generator`` for the Poisson draw.
        noise: draw Poisson counts (default); with False the expected counts themselves are
            stored (``sqrt`` of them), which is noise-free data in photon units.

    Returns:
        ScanData with ``diffraction`` ``(M, N, N)`` float32 ``sqrt(counts)`` (zero frequency
        at the centre), the positions, the probe, ``object`` set, ``counts=True``.

    Raises:
        DataError: shapes disagree, non-finite inputs, windows outside the object, or the
            exit waves are all zero.
        ConfigError: ``photons`` not finite and positive, or above 1e18 with ``noise``.
    """
    obj = _checks.as_tensor("object", object)
    if obj.dim() != 2:
        raise DataError(f"object has shape {tuple(obj.shape)}; expected (H, W)")
    obj = obj.to(torch.complex64)
    _checks.check_finite("object", obj)
    probe = _checks.as_tensor("probe", probe)
    if probe.dim() not in (2, 3) or probe.shape[-1] != probe.shape[-2] or probe.numel() == 0:
        raise DataError(f"probe has shape {tuple(probe.shape)}; expected a square (N, N) "
                        "probe or (K, N, N) probe modes with K >= 1")
    probe = probe.to(torch.complex64)
    _checks.check_finite("probe", probe)
    n = probe.shape[-1]
    pos = _checks.as_tensor("positions", positions)
    _checks.check_real("positions", pos)
    if pos.dim() != 2 or pos.shape[1] != 2 or pos.shape[0] == 0:
        raise DataError(f"positions has shape {tuple(pos.shape)}; expected (M, 2) with M >= 1")
    pos = pos.to(torch.float64)
    _checks.check_finite("positions", pos)
    try:
        low, high = scan_bounds(tuple(obj.shape), n)
    except ConfigError as exc:
        raise DataError(str(exc)) from None
    outside = ((pos < low) | (pos > high)).any(dim=1)
    if bool(outside.any()):
        raise DataError(
            f"{int(outside.sum())} of {pos.shape[0]} positions put the {n} x {n} window (partly) "
            f"outside the {tuple(obj.shape)} object; keep them within {low.tolist()} .. "
            f"{high.tolist()} (see pinn.data.trajectories.scan_bounds)")
    photons = _photons(photons, noise)

    amplitude = torch.cat([_far_field(extract_patches(obj[None], block[None], n)[0], probe)
                           for block in pos.split(_CHUNK)])  # (M, N, N) noise free, any scale
    energy = amplitude.to(torch.float64).square().sum(dim=(-2, -1)).mean()
    if not float(energy) > 0:
        raise DataError("every exit wave is zero (object or probe is zero where scanned)")
    scale = photons / float(energy)
    generator = generator_from(seed)
    blocks = []
    for block in amplitude.split(_CHUNK):
        expected = block.to(torch.float64).square() * scale  # (B, N, N) expected counts
        counts = torch.poisson(expected, generator=generator) if noise else expected
        blocks.append(sqrt_counts(counts))
    return ScanData(diffraction=torch.cat(blocks), positions=pos, probe=probe, object=obj,
                    counts=True)


def _far_field(patches: torch.Tensor, probe: torch.Tensor) -> torch.Tensor:
    """``(B, N, N)`` amplitude of patches ``(B, N, N)`` lit by a probe ``(N, N)`` or by modes
    ``(K, N, N)`` (the root of the summed intensities)."""
    if probe.dim() == 2:
        return diffract(illuminate(patches, probe))
    return far_field_amplitude(illuminate(patches[:, None], probe))  # (B, K, N, N) -> (B, N, N)


def simulate(
    kind: str = "lines",
    *,
    n_scans: int = 512,
    size: int = 64,
    photons: float = 1e9,
    seed: int = 0,
    scan: str = "random",
    probe: str = "default",
    object_size: int | None = None,
    phase: bool = True,
    jitter_px: float | None = None,
    noise: bool = True,
    zoom: int = 1,
) -> ScanData:
    """Simulate a whole scan from named parts, everything drawn from one seeded generator.

    Args:
        kind: the object, ``'lines'``, ``'grf'``, ``'siemens'`` or ``'blobs'``
            (:func:`pinn.data.objects.make_object`).
        n_scans: number of scan positions M.
        size: pattern and probe side N in pixels.
        photons: expected total counts per pattern (the reference's ``nphotons``, default 1e9).
        seed: seed of the single ``torch.Generator`` used, in order, for the object, the
            positions and the Poisson noise.
        scan: ``'random'``, ``'raster'`` or ``'spiral'`` (:mod:`pinn.data.trajectories`).
        probe: ``'default'``, ``'gaussian'`` or ``'ring'`` (:mod:`pinn.data.probes`).
        object_size: side of the square object in pixels. Default: just large enough for the
            scan at a mean spacing of ``size / 4`` between neighbouring positions (75 % linear
            overlap), ``size + round(size / 4 * (ceil(sqrt(n_scans)) - 1))``.
        phase: give lines, grf and blobs objects the reference's ``set_phi`` phase.
        jitter_px: Gaussian jitter of raster positions (standard deviation, pixels); default
            ``size / 32`` (a perfect raster gives ambiguous reconstructions). Other scans
            ignore it.
        noise: draw Poisson counts (False stores the expected counts).
        zoom: make the object's features ``zoom`` times larger
            (:func:`pinn.data.objects.make_object`).

    Returns:
        ScanData with ``counts=True`` and the object.

    Raises:
        ConfigError: an unknown kind, scan or probe, or bad sizes.
    """
    size = _checks.positive_int("size", size)
    n_scans = _checks.positive_int("n_scans", n_scans)
    if object_size is None:
        object_size = size + round(size / 4 * (math.ceil(math.sqrt(n_scans)) - 1))
    object_size = _checks.positive_int("object_size", object_size)
    if jitter_px is None:
        jitter_px = size / 32 if scan == "raster" else 0.0
    if object_size < size:
        raise ConfigError(f"object_size {object_size} is smaller than the probe size {size}")
    generator = generator_from(seed)
    obj = make_object(kind, object_size, seed=generator, phase=phase, zoom=zoom)
    probe_field = make_probe(probe, size)
    positions = make_positions(scan, (object_size, object_size), size, n_scans,
                               seed=generator, jitter_px=jitter_px)
    return simulate_scan(obj, probe_field, positions, photons, seed=generator, noise=noise)


def illuminate_and_diffract(
    amplitude: torch.Tensor,
    phase: torch.Tensor,
    probe: torch.Tensor,
    nphotons: float,
    *,
    noise: bool = False,
    seed: int | torch.Generator = 0,
) -> tuple[torch.Tensor, float]:
    """The reference's patch simulator (``diffsim.illuminate_and_diffract``, §7.2).

    ``s = sqrt(nphotons / mean_b sum_xy (amplitude * |probe|)**2)`` (float64 here, float32 in
    the reference); the exit wave is ``s * amplitude * exp(i * phase) * probe`` with the raw
    probe; its far-field amplitude is divided by ``s`` again, after Poisson sampling of its
    square when ``noise`` is True. So the result is ``diffract(patch * probe)`` (noise free) in
    the patches' own units, and ``(s * X)**2`` are counts averaging ``nphotons`` per pattern.

    Args:
        amplitude: ``(B, N, N)`` real object-patch amplitudes.
        phase: ``(B, N, N)`` real phases in radians.
        probe: ``(N, N)`` complex.
        nphotons: target mean total counts per pattern.
        noise: draw Poisson counts (the reference always does; False gives its
            ``draw_poisson=False`` output).
        seed: int or ``torch.Generator`` for the Poisson draw.

    Returns:
        ``(X, s)``: ``(B, N, N)`` float32 diffraction amplitudes and the float scale ``s``.

    Raises:
        DataError: shapes disagree or the illuminated patches are all zero.
        ConfigError: ``nphotons`` not finite and positive.
    """
    amp = _checks.as_tensor("amplitude", amplitude).to(torch.float32)
    phi = _checks.as_tensor("phase", phase).to(torch.float32)
    probe = _checks.as_tensor("probe", probe).to(torch.complex64)
    if amp.dim() != 3 or phi.shape != amp.shape or probe.shape != amp.shape[-2:]:
        raise DataError(f"amplitude {tuple(amp.shape)}, phase {tuple(phi.shape)} and probe "
                        f"{tuple(probe.shape)} must be (B, N, N), (B, N, N) and (N, N)")
    nphotons = _photons(nphotons, noise)
    energy = (amp.double() * probe.abs().double()).square().sum(dim=(-2, -1)).mean()
    if not float(energy) > 0:
        raise DataError("the illuminated patches are zero; nothing to diffract")
    scale = (nphotons / float(energy)) ** 0.5
    far = diffract(illuminate(torch.polar(amp * scale, phi), probe))  # (B, N, N) amplitude
    if noise:
        far = sqrt_counts(torch.poisson(far.double().square(), generator=generator_from(seed)))
    return far / scale, scale


MAX_NOISY_PHOTONS = 1e18  # torch.poisson draws int64 counts: rates past ~9.2e18 overflow


def _photons(photons: object, noise: bool) -> float:
    try:
        value = float(photons)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"photons must be a positive number, got {photons!r}") from None
    if not (value > 0 and value != float("inf")):
        raise ConfigError(f"photons must be finite and > 0 (expected counts per pattern), "
                          f"got {photons!r}")
    if noise and value > MAX_NOISY_PHOTONS:
        raise ConfigError(f"photons is {value:g}; Poisson counts are drawn as 64-bit integers, "
                          f"so use at most {MAX_NOISY_PHOTONS:g} photons per pattern (or no "
                          "noise)")
    return value
