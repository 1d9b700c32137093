"""pinn's ops arranged as the reference's ops, and the layout conversions between the two.

The reference works channels-last with ``(x, y)`` offsets; pinn works channels-first with
``(y, x)`` positions (docs/DESIGN.md §7.10). Each function here takes arrays in
the reference's layout, converts them at the boundary, runs only ``pinn.ops``, and converts the
result back, so that a test can compare it directly with a fixture or with ``tf_reference``.
No TensorFlow is needed.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from pinn import ops

MERGE_FLOOR = 0.001  # the reference's in-model merge adds this to the coverage
STITCH_FLOOR = 1e-9  # ... and its scan stitching this


def padded_size(n: int, gridsize: int, offset: int = 4, max_position_jitter: int = 10) -> int:
    """The reference's group canvas ``P = N + (gs - 1)*offset + max_position_jitter``."""
    return int(n) + (int(gridsize) - 1) * int(offset) + int(max_position_jitter)


# --- layouts ---------------------------------------------------------------------------------


def channels_first(x) -> torch.Tensor:
    """(B, H, W, C) -> (B, C, H, W)."""
    return torch.from_numpy(np.ascontiguousarray(np.asarray(x).transpose(0, 3, 1, 2)))


def channels_last(x: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) -> (B, H, W, C)."""
    return x.detach().numpy().transpose(0, 2, 3, 1)


def flat(x: torch.Tensor) -> np.ndarray:
    """(B, C, N, N) -> the reference's flat (B*C, N, N, 1), index b*C + c."""
    return x.detach().numpy().reshape(-1, *x.shape[-2:])[..., None]


def unflat(x, c: int) -> torch.Tensor:
    """The reference's flat (B*C, N, N, 1) -> (B, C, N, N)."""
    x = np.asarray(x)[..., 0]
    return torch.from_numpy(np.ascontiguousarray(x.reshape(-1, c, *x.shape[-2:])))


def group_positions(offsets_xy, size: int) -> torch.Tensor:
    """Reference group offsets t (B, 1, 2, C) as (x, y) -> pinn positions (B, C, 2) as (y, x) on
    a P x P canvas: ``(P//2 - ty, P//2 - tx)``."""
    t = torch.from_numpy(np.asarray(offsets_xy, dtype=np.float32))
    return (size // 2) - t[:, 0].permute(0, 2, 1).flip(-1)


def centre_window(n: int) -> torch.Tensor:
    """(N, N) float32: 1 on rows and columns [N/4, 3N/4), the window the reference counts."""
    idx = torch.arange(n)
    inside = (4 * idx >= n) & (4 * idx < 3 * n)
    return (inside[:, None] & inside[None, :]).to(torch.float32)


# --- the reference's ops, computed by pinn ----------------------------------------------------


def translate(imgs, offsets) -> np.ndarray:
    """imgs (K, H, W, 1), offsets (K, 2) as (dx, dy) -> (K, H, W, 1)."""
    image = torch.from_numpy(np.ascontiguousarray(np.asarray(imgs)[..., 0]))
    shift = torch.from_numpy(np.asarray(offsets, dtype=np.float32)).flip(-1)
    return ops.translate(image, shift).numpy()[..., None]


def pad_and_diffract(x) -> np.ndarray:
    """(K, N, N, 1) complex -> (K, N, N, 1) amplitude."""
    return ops.diffract(torch.from_numpy(np.asarray(x)[..., 0])).numpy()[..., None]


def merge(obj: torch.Tensor, positions: torch.Tensor, size: int):
    """In-model merge of groups: obj (B, C, N, N), positions (B, C, 2) -> (canvas, coverage)
    (B, P, P), the coverage counting the centre window, floor 0.001."""
    window = centre_window(obj.shape[-1])
    return ops.stitch(obj, positions, (size, size), eps=MERGE_FLOOR, window=window)


def extract_patches_position(canvas, offsets_xy, n: int) -> np.ndarray:
    """canvas (B, M, M, 1), offsets (B, 1, 2, C) -> flat (B*C, N, N, 1)."""
    canvas = torch.from_numpy(np.ascontiguousarray(np.asarray(canvas)[..., 0]))
    positions = group_positions(offsets_xy, canvas.shape[-1])
    return flat(ops.extract_patches(canvas, positions, int(n)))


def reassemble_patches(channels, offsets_xy, size: int):
    """channels (B, N, N, C), offsets (B, 1, 2, C) -> (merged, norm) as (B, P, P, 1)."""
    obj = channels_first(channels)
    canvas, coverage = merge(obj, group_positions(offsets_xy, size), size)
    return canvas.numpy()[..., None], (coverage + MERGE_FLOOR).numpy()[..., None]


def stitch_canvas_size(offsets, crop: int) -> int:
    """The reference's stitched canvas side: ``crop + 2*pad``, pad = ceil(max|g|) made even,
    where ``crop = 2*(M//2)`` is the width of its central crop."""
    g = np.asarray(offsets).astype(np.float32).reshape(-1, 2)
    g = g - g.mean(axis=0, dtype=np.float32)
    pad = int(math.ceil(float(np.abs(g).max())))
    return int(crop) + 2 * (pad + pad % 2)


def reassemble_position(patches, offsets, m: int) -> np.ndarray:
    """patches (n, N, N, 1) complex, offsets (n, 1, 1, 2) float64 (x, y) -> (S, S, 1)."""
    patches = torch.from_numpy(np.ascontiguousarray(np.asarray(patches)[..., 0]))
    n = patches.shape[-1]
    m = int(m)
    crop = patches[:, n // 2 - m // 2:n // 2 + m // 2, n // 2 - m // 2:n // 2 + m // 2]
    g = torch.from_numpy(np.asarray(offsets).astype(np.float32).reshape(-1, 2))
    g = g - g.mean(dim=0)
    size = stitch_canvas_size(offsets, crop.shape[-1])  # the crop is M - 1 wide for odd M
    positions = size // 2 + g.flip(-1)  # (n, 2) as (y, x)
    image, _ = ops.stitch(crop[None], positions[None], (size, size), eps=STITCH_FLOOR)
    return image[0].numpy()[..., None]


def probe_illumination(x, probe, use_mask: bool):
    """flat (K, N, N, 1), probe (N, N) -> (illuminated (K, N, N, 1), probe used (N, N),
    mask (N, N))."""
    patches = torch.from_numpy(np.asarray(x)[..., 0])
    probe = torch.from_numpy(np.asarray(probe))
    mask = ops.disk_mask(probe.shape[-1])
    out = ops.illuminate(patches, probe, mask if use_mask else None)
    used = probe * mask if use_mask else probe
    return out.numpy()[..., None], used.numpy(), mask.numpy()


def negloglik(y_true, y_pred):
    """-> (elementwise NLL, its mean, per-sample full Poisson NLL with lgamma(k + 1))."""
    k = torch.from_numpy(np.asarray(y_true, dtype=np.float32))
    rate = torch.from_numpy(np.asarray(y_pred, dtype=np.float32))
    loss = ops.poisson_nll(rate, k)
    full = (loss + torch.lgamma(k + 1)).flatten(1).sum(1)
    return loss.numpy(), loss.mean().numpy(), full.numpy()


def illuminate_and_diffract(y_i, y_phi, probe, nphotons: float, gridsize: int):
    """The reference's simulator without noise, from pinn ops. Flat (K, N, N, 1) inputs ->
    (X, Y_I, Y_phi) in channel format (K/C, N, N, C) and the intensity scale."""
    c = int(gridsize) ** 2
    amp = unflat(y_i, c)  # (B, C, N, N)
    phase = unflat(y_phi, c)
    probe = torch.from_numpy(np.asarray(probe))
    energy = (amp * probe.abs()).square().sum(dim=(-2, -1))  # (B, C)
    scale = torch.sqrt(float(nphotons) / energy.mean())
    field = scale * amp * torch.polar(torch.ones_like(phase), phase)  # (B, C, N, N)
    wave = ops.illuminate(field, probe)
    x = ops.diffract(wave) / scale
    return (channels_last(x), channels_last(wave.abs() / scale), channels_last(phase),
            float(scale))


def physics_forward(obj, offsets_xy, probe, intensity_scale: float, size: int, use_mask: bool):
    """The chain after the CNN, from pinn ops: merge -> trim -> extract -> illuminate ->
    diffract -> scale. obj (B, N, N, C), offsets (B, 1, 2, C); returns the reference's
    intermediates in its layout."""
    obj = channels_first(obj)  # (B, C, N, N)
    n = obj.shape[-1]
    probe = torch.from_numpy(np.asarray(probe))
    positions = group_positions(offsets_xy, size)  # (B, C, 2)
    canvas, coverage = merge(obj, positions, size)  # (B, P, P)
    trimmed = ops.center_crop(canvas, n)  # (B, N, N)
    patches = ops.extract_patches(canvas, positions, n)  # (B, C, N, N)
    illuminated = ops.illuminate(patches, probe, ops.disk_mask(n) if use_mask else None)
    pred_amp = ops.diffract(illuminated)  # (B, C, N, N)
    scaled = float(np.float32(intensity_scale)) * pred_amp
    return {
        "padded_obj": canvas.numpy()[..., None],
        "norm": (coverage + MERGE_FLOOR).numpy()[..., None],
        "trimmed_obj": trimmed.numpy()[..., None],
        "patches": flat(patches),
        "illuminated": flat(illuminated),
        "pred_amp": channels_last(pred_amp),
        "pred_amp_scaled": channels_last(scaled),
        "pred_intensity": channels_last(scaled.square()),
    }
