"""Synthetic complex objects for simulation: random lines, Gaussian random fields, a Siemens
star, blobs and bars, or any image.

Every object is a ``(size, size)`` complex64 transmission ``A * exp(i * phi)`` with amplitude
``A`` in ``[0, 1]`` (maximum 1). With ``phase=True`` the phase is the reference's ``set_phi``
option, ``phi = pi * tanh((A - max(A)/2) / (3 * mean(A)))`` (in ``(-pi, pi)``); otherwise it is
zero. Randomness comes only from the ``seed`` argument (an int or a ``torch.Generator``).
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F

from pinn.data import _checks
from pinn.data._checks import positive_int
from pinn.errors import ConfigError, DataError

KINDS = ("grf", "lines", "siemens", "blobs")


def make_object(kind: str, size: int, *, seed: int | torch.Generator = 0,
                phase: bool = True, zoom: int = 1) -> torch.Tensor:
    """A ``(size, size)`` complex64 object of the given ``kind`` (``'lines'``, ``'grf'``,
    ``'siemens'`` or ``'blobs'``; see the functions ``lines_object``, ``grf_object``,
    ``siemens_object``, ``blobs_object``). ``phase`` applies to lines, grf and blobs.

    ``zoom > 1`` makes every feature ``zoom`` times larger: the object is drawn at
    ``ceil(size / zoom)`` pixels and enlarged by bilinear interpolation of its real and
    imaginary parts.

    Raises:
        ConfigError: unknown ``kind``, a bad ``size`` or ``zoom``.
    """
    if isinstance(zoom, bool) or not isinstance(zoom, int) or zoom < 1:
        raise ConfigError(f"zoom must be a positive int, got {zoom!r}")
    if zoom > 1:
        small = make_object(kind, -(-positive_int("size", size) // zoom), seed=seed, phase=phase)
        parts = torch.view_as_real(small).permute(2, 0, 1)[None]  # (1, 2, h, w)
        large = F.interpolate(parts, scale_factor=zoom, mode="bilinear", align_corners=False)
        return torch.view_as_complex(large[0, :, :size, :size].permute(1, 2, 0).contiguous())
    if kind == "lines":
        return lines_object(size, seed=seed, phase=phase)
    if kind == "grf":
        return grf_object(size, seed=seed, phase=phase)
    if kind == "siemens":
        return siemens_object(size)
    if kind == "blobs":
        return blobs_object(size, seed=seed, phase=phase)
    raise ConfigError(f"object kind {kind!r} is not one of {KINDS}")


def lines_object(size: int, *, n_lines: int | None = None, seed: int | torch.Generator = 0,
                 phase: bool = True) -> torch.Tensor:
    """The reference's ``lines`` object (``diffsim.sim_object_image``).

    ``n_lines`` segments between random integer pixels are drawn (value 1, no anti-aliasing)
    on a ``2 * size`` canvas, which is smoothed as ``gf(1) + 2 gf(5) + 5 gf(10)``
    (:func:`gaussian_filter` with those sigmas in pixels); the central ``size x size`` is kept
    and the amplitude divided by its maximum. The reference draws 400 lines at its default
    size 392; the default ``n_lines = round(400 * size / 392)`` keeps that density of line
    pixels at other sizes (400 lines on a small canvas would saturate it).

    Returns:
        ``(size, size)`` complex64; amplitude in ``[0, 1]``.
    """
    size = positive_int("size", size)
    generator = generator_from(seed)
    canvas = 2 * size
    n_lines = max(1, round(400 * size / 392)) if n_lines is None else positive_int(
        "n_lines", n_lines)
    ends = torch.randint(0, canvas, (n_lines, 4), generator=generator)  # (L, 4) r0 c0 r1 c1
    d_row, d_col = ends[:, 2] - ends[:, 0], ends[:, 3] - ends[:, 1]
    steps = torch.maximum(d_row.abs(), d_col.abs()).clamp_min(1)  # (L,)
    t = torch.arange(int(steps.max()) + 1, dtype=torch.float64)[None] / steps[:, None]
    t = t.clamp(max=1.0)  # (L, S) samples along each segment
    rows = torch.round(ends[:, :1] + t * d_row[:, None]).to(torch.int64)
    cols = torch.round(ends[:, 1:2] + t * d_col[:, None]).to(torch.int64)
    image = torch.zeros(canvas, canvas, dtype=torch.float64)
    image[rows.flatten(), cols.flatten()] = 1.0
    image = (gaussian_filter(image, 1.0) + 2 * gaussian_filter(image, 5.0)
             + 5 * gaussian_filter(image, 10.0))
    top = size // 2
    amplitude = image[top:top + size, top:top + size]
    return _complex(amplitude / amplitude.max().clamp_min(1e-300), phase)


def grf_object(size: int, *, power: float = 0.4, seed: int | torch.Generator = 0,
               phase: bool = True) -> torch.Tensor:
    """A Gaussian random field with power spectrum ``|k|**-power``, as the reference's ``grf``.

    Generated on a ``ceil(size/2)`` grid (white Gaussian noise shaped in Fourier space, the
    zero frequency removed), bilinearly upsampled to ``size``, smoothed with sigma 1 px, and
    min-max normalised to ``[0, 1]``.

    Returns:
        ``(size, size)`` complex64; amplitude in ``[0, 1]`` (0 and 1 both attained).
    """
    size = positive_int("size", size)
    generator = generator_from(seed)
    half = (size + 1) // 2
    noise = torch.randn(half, half, generator=generator, dtype=torch.float64)
    k = torch.fft.fftfreq(half, dtype=torch.float64)
    radius = torch.sqrt(k[:, None] ** 2 + k[None, :] ** 2)
    radius[0, 0] = 1.0
    shaping = radius ** (-float(power) / 2)
    shaping[0, 0] = 0.0
    field = torch.fft.ifft2(torch.fft.fft2(noise) * shaping).real
    field = F.interpolate(field[None, None], size=(size, size), mode="bilinear",
                          align_corners=False)[0, 0]
    field = gaussian_filter(field, 1.0)
    field = (field - field.min()) / (field.max() - field.min()).clamp_min(1e-300)
    return _complex(field, phase)


def blobs_object(size: int, *, seed: int | torch.Generator = 0, phase: bool = True,
                 background: float = 0.3) -> torch.Tensor:
    """Soft blobs and thin bars on a dim background: a test object unlike lines, grf and the
    Siemens star, with features from 1 px (the bars' edges) to about ``size / 8`` (the largest
    blobs).

    ``(size / 24)**2`` blobs (one per 24 x 24 pixels, at least 4): isotropic Gaussians with
    random centres, widths (sigma) from 2 px to ``size / 16`` px and heights from 0.1 to 0.5.
    As many bars as blobs: segments of random direction, 0.1-0.3 ``size`` long and 1-2 px
    wide, height 0.2-0.5, drawn anti-aliased (4 x 4 supersampling). Blobs and bars are summed
    over ``background``, the sum is clipped at 1 (overlaps saturate) and divided by its
    maximum.

    Returns:
        ``(size, size)`` complex64; amplitude in ``[background / max, 1]`` (maximum 1), phase
        :func:`tanh_phase` of the amplitude when ``phase``, else zero.
    """
    size = positive_int("size", size)
    if not 0 <= background < 1:
        raise ConfigError(f"background must be in [0, 1), got {background!r}")
    generator = generator_from(seed)

    def uniform(n: int, low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)

    count = max(4, round((size / 24) ** 2))
    sub = 4
    coord = (torch.arange(size * sub, dtype=torch.float64) + 0.5) / sub - 0.5  # pixel units
    y, x = coord[:, None], coord[None, :]  # (S, 1), (1, S)
    centre = uniform(2 * count, 0, size - 1).reshape(2, count)  # (2, B) blob centres
    sigma = uniform(count, 2.0, max(2.0, size / 16))
    height = uniform(count, 0.1, 0.5)
    middle = uniform(2 * count, 0, size - 1).reshape(2, count)  # bar centres
    angle = uniform(count, 0, math.pi)
    half_length = uniform(count, 0.05 * size, 0.15 * size)
    half_width = uniform(count, 0.5, 1.0)
    bar_height = uniform(count, 0.2, 0.5)
    fine = torch.full((size * sub, size * sub), float(background), dtype=torch.float64)
    for b in range(count):  # one (S, S) map at a time keeps memory at a few images
        fine += height[b] * torch.exp(-((y - centre[0, b]) ** 2 + (x - centre[1, b]) ** 2)
                                      / (2 * sigma[b] ** 2))
        dy, dx = y - middle[0, b], x - middle[1, b]
        along = dy * torch.sin(angle[b]) + dx * torch.cos(angle[b])
        across = dx * torch.sin(angle[b]) - dy * torch.cos(angle[b])
        fine += bar_height[b] * ((along.abs() <= half_length[b])
                                 & (across.abs() <= half_width[b]))
    fine = fine.clamp(max=1.0)[None, None]
    amplitude = F.avg_pool2d(fine, sub)[0, 0]  # (size, size) area-weighted
    return _complex(amplitude / amplitude.max(), phase)


def siemens_object(size: int, *, spokes: int = 36, radius_px: float | None = None,
                   spoke_amplitude: float = 0.8, spoke_phase_rad: float = -0.9) -> torch.Tensor:
    """A Siemens star: ``spokes`` dark wedges (amplitude ``spoke_amplitude``, phase
    ``spoke_phase_rad``) over a clear background (amplitude 1, phase 0) inside a disc of radius
    ``radius_px`` (default ``0.45 * size``) centred at pixel ``(size//2, size//2)``.

    Edges are anti-aliased by 4 x 4 supersampling, so pixel values are area-weighted mixtures
    of the two materials.

    Returns:
        ``(size, size)`` complex64; amplitude in ``[spoke_amplitude, 1]``, phase between
        ``spoke_phase_rad`` and 0.
    """
    size = positive_int("size", size)
    if int(spokes) != spokes or spokes < 1:
        raise ConfigError(f"spokes must be a positive int, got {spokes!r}")
    if not 0 <= spoke_amplitude <= 1:
        raise ConfigError(f"spoke_amplitude must be in [0, 1], got {spoke_amplitude!r}")
    radius = 0.45 * size if radius_px is None else float(radius_px)
    sub = 4
    coord = (torch.arange(size * sub, dtype=torch.float64) + 0.5) / sub - 0.5 - size // 2
    y, x = coord[:, None], coord[None, :]
    inside = torch.sqrt(y * y + x * x) < radius
    wedge = torch.sin(int(spokes) * torch.atan2(y, x)) > 0
    fine = (inside & wedge).to(torch.float64)[None, None]  # (1, 1, size*sub, size*sub)
    fraction = F.avg_pool2d(fine, sub)[0, 0]  # (size, size) spoke coverage
    amplitude = 1.0 - (1.0 - spoke_amplitude) * fraction
    phi = spoke_phase_rad * fraction
    return torch.polar(amplitude, phi).to(torch.complex64)


def object_from_image(amplitude: object, phase: object = None) -> torch.Tensor:
    """An object from an image: amplitude ``image / max(image)``, phase as given.

    Args:
        amplitude: ``(H, W)`` real, >= 0, not all zero (array or tensor). A complex image is
            taken as the object itself (only converted to complex64).
        phase: None (zero phase), ``'tanh'`` (the reference's ``set_phi`` formula) or an
            ``(H, W)`` real array in radians.

    Returns:
        ``(H, W)`` complex64.

    Raises:
        DataError: wrong rank or shape, negative, non-finite or all-zero amplitude.
    """
    image = _checks.as_tensor("amplitude", amplitude)
    if image.dim() != 2 or image.numel() == 0:
        raise DataError(f"amplitude has shape {tuple(image.shape)}; expected a non-empty (H, W)")
    _checks.check_finite("amplitude", image)
    if image.is_complex():
        return image.to(torch.complex64)
    image = image.to(torch.float64)
    _checks.check_nonnegative("amplitude", image)
    if not float(image.max()) > 0:
        raise DataError("amplitude is zero everywhere; an object needs some transmission")
    image = image / image.max()
    if phase is None or isinstance(phase, str):
        if phase not in (None, "tanh"):
            raise ConfigError(f"phase={phase!r}: pass None, 'tanh' or an array of radians")
        return _complex(image, phase == "tanh")
    phi = _checks.as_tensor("phase", phase)
    _checks.check_real("phase", phi)
    _checks.check_shape("phase", phi, tuple(image.shape), f"{tuple(image.shape)} like amplitude")
    _checks.check_finite("phase", phi)
    return torch.polar(image, phi.to(torch.float64)).to(torch.complex64)


def tanh_phase(amplitude: torch.Tensor) -> torch.Tensor:
    """The reference's ``set_phi`` phase ``pi * tanh((A - max(A)/2) / (3 * mean(A)))``.

    Args:
        amplitude: ``(H, W)`` real amplitude ``A`` (any scale; the formula is scale free).

    Returns:
        ``(H, W)`` phase in radians, in ``(-pi, pi)``, same dtype.
    """
    return math.pi * torch.tanh((amplitude - amplitude.max() / 2) / (3 * amplitude.mean()))


def gaussian_filter(image: torch.Tensor, sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """Gaussian blur of the last two axes, like ``scipy.ndimage.gaussian_filter`` (reflect mode).

    A separable kernel of radius ``int(truncate * sigma + 0.5)`` normalised to sum 1; beyond
    the edges the image is mirrored including the edge pixel (``d c b a | a b c d | d c b a``),
    repeatedly if the kernel is wider than the image.

    Args:
        image: ``(..., H, W)`` real floating tensor.
        sigma: standard deviation in pixels, > 0.
        truncate: kernel half-width in standard deviations.

    Returns:
        ``(..., H, W)``, same dtype.

    Raises:
        ConfigError: ``sigma <= 0``.
    """
    if not sigma > 0:
        raise ConfigError(f"sigma must be > 0, got {sigma!r}")
    radius = int(truncate * sigma + 0.5)
    taps = torch.arange(-radius, radius + 1, dtype=image.dtype)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = (kernel / kernel.sum()).reshape(1, 1, -1)
    for axis in (-2, -1):
        n = image.shape[axis]
        index = torch.arange(-radius, n + radius) % (2 * n)
        index = torch.where(index >= n, 2 * n - 1 - index, index)  # symmetric reflection
        padded = image.index_select(axis, index).movedim(axis, -1)  # (..., n + 2r)
        lead = padded.shape[:-1]
        out = F.conv1d(padded.reshape(-1, 1, n + 2 * radius), kernel)  # (L, 1, n)
        image = out.reshape(*lead, n).movedim(-1, axis)
    return image


def generator_from(seed: int | torch.Generator) -> torch.Generator:
    """A CPU ``torch.Generator``: ``seed`` itself if it is one, else a new one seeded with it.

    Raises:
        ConfigError: ``seed`` is neither an int nor a generator.
    """
    if isinstance(seed, torch.Generator):
        return seed
    if (isinstance(seed, bool) or not isinstance(seed, numbers.Real) or int(seed) != seed
            or not -2**63 <= int(seed) < 2**64):  # the range torch.Generator accepts
        raise ConfigError(f"seed must be an int from -2**63 to 2**64 - 1 or a torch.Generator, "
                          f"got {seed!r}")
    return torch.Generator().manual_seed(int(seed))


def _complex(amplitude: torch.Tensor, phase: bool) -> torch.Tensor:
    phi = tanh_phase(amplitude) if phase else torch.zeros_like(amplitude)
    return torch.polar(amplitude, phi).to(torch.complex64)

