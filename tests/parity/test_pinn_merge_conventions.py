"""pinn's side of the mapping to the reference, and of deviations 1 and 3 (docs/DESIGN.md §7.10
and §8), without
TensorFlow: the positions the parity tests hand to pinn put patches where the reference's
offsets say, and pinn's in-model merge works per group with each group's own offsets (no
re-centring by a batch mean). ``test_ops_parity.py`` shows the reference side.
"""

from __future__ import annotations

import numpy as np
import torch

import conventions
from pinn import ops


def _peak(image: torch.Tensor) -> tuple[int, int]:
    index = int(torch.argmax(image.abs()))
    return index // image.shape[-1], index % image.shape[-1]


def _deltas(b: int, c: int, n: int) -> torch.Tensor:
    obj = torch.zeros(b, c, n, n, dtype=torch.complex64)
    obj[..., n // 2, n // 2] = 1
    return obj


def test_group_offset_t_puts_the_patch_centre_at_canvas_centre_minus_t():
    """A delta at the patch centre merged with reference offset t = (x, y) = (3, -2) lands at
    canvas (row P//2 + 2, col P//2 - 3), where the reference's merge (translate by -t) puts it;
    extraction at the same positions reads it back at the patch centre."""
    n, size = 16, 26
    obj = _deltas(1, 1, n)
    offsets = np.asarray([3.0, -2.0], np.float32).reshape(1, 1, 2, 1)
    positions = conventions.group_positions(offsets, size)
    assert positions.tolist() == [[[size // 2 + 2, size // 2 - 3]]]
    canvas, _ = conventions.merge(obj, positions, size)
    assert _peak(canvas[0]) == (size // 2 + 2, size // 2 - 3)
    patch = ops.extract_patches(canvas, positions, n)[0, 0]
    assert _peak(patch) == (n // 2, n // 2)
    assert abs(float(patch[n // 2, n // 2].real) - 1 / 1.001) < 1e-6


def test_translate_offsets_are_dx_dy():
    """The reference's translate offsets (dx, dy) = (3, 5) move a delta 5 rows down and 3
    columns right through the conversion."""
    img = np.zeros((1, 32, 32, 1), np.float32)
    img[0, 10, 20, 0] = 1
    out = conventions.translate(img, np.asarray([[3.0, 5.0]], np.float32))
    assert _peak(torch.from_numpy(out[0, ..., 0])) == (15, 23)


def test_merge_is_per_group():
    """Changing one group's offsets or content leaves every other group's canvas bit-identical
    (deviation 1: no merging across groups at any batch size, including B*C >= 64)."""
    n, size, b, c = 16, conventions.padded_size(16, 2), 17, 4  # B*C = 68
    rng = np.random.default_rng(0)
    obj = torch.from_numpy((rng.standard_normal((b, c, n, n))
                            + 1j * rng.standard_normal((b, c, n, n))).astype(np.complex64))
    offsets = rng.uniform(-4, 4, (b, 1, 2, c)).astype(np.float32)
    canvas, _ = conventions.merge(obj, conventions.group_positions(offsets, size), size)
    changed = offsets.copy()
    changed[3] += 2.5
    obj_changed = obj.clone()
    obj_changed[3] *= -1
    canvas2, _ = conventions.merge(obj_changed, conventions.group_positions(changed, size), size)
    others = [i for i in range(b) if i != 3]
    assert torch.equal(canvas[others], canvas2[others])
    assert not torch.equal(canvas[3], canvas2[3])
    single, _ = conventions.merge(obj[5:6], conventions.group_positions(offsets[5:6], size),
                                  size)
    assert float((single[0] - canvas[5]).abs().max()) <= 1e-6 * float(canvas[5].abs().max())


def test_merge_does_not_recentre_offsets():
    """Offsets whose batch mean is not zero are used as given (deviation 3): with t = (2, 0)
    and (4, 0) the deltas land at columns P//2 - 2 and P//2 - 4; the reference would centre
    them to (-1, 0) and (1, 0) first."""
    n = 16
    size = conventions.padded_size(n, 1)
    offsets = np.asarray([[2.0, 0.0], [4.0, 0.0]], np.float32).reshape(2, 1, 2, 1)
    canvas, _ = conventions.merge(_deltas(2, 1, n), conventions.group_positions(offsets, size),
                                  size)
    assert [_peak(x) for x in canvas] == [(size // 2, size // 2 - 2), (size // 2, size // 2 - 4)]
