"""Tests of pinn.ops.illuminate (exit wave ``patches * probe [* mask]``) and of
pinn.ops.disk_mask (the reference's hard disk ``r < N//4`` about ``((N-1)/2, (N-1)/2)``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from _ops_helpers import compiled, generator, rand
from pinn.ops import diffract, disk_mask, illuminate

WAVE_DTYPE = {torch.float32: torch.complex64, torch.float64: torch.complex128,
              torch.complex64: torch.complex64, torch.complex128: torch.complex128,
              torch.bfloat16: torch.complex64, torch.float16: torch.complex64}


# ---------------------------------------------------------------- illuminate: shapes, dtypes


@pytest.mark.parametrize(
    ("patches_shape", "probe_shape"),
    [((8, 8), (8, 8)), ((3, 8, 8), (8, 8)), ((2, 4, 8, 8), (8, 8)), ((2, 4, 8, 8), (4, 8, 8)),
     ((2, 4, 8, 8), (2, 1, 8, 8)), ((0, 4, 6, 6), (6, 6))],
)
def test_shape_and_broadcast(patches_shape, probe_shape):
    gen = generator(1)
    patches = rand(patches_shape, torch.complex64, gen=gen)
    probe = rand(probe_shape, torch.complex64, gen=gen)
    out = illuminate(patches, probe)
    assert out.shape == patches_shape
    torch.testing.assert_close(out, patches * probe, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", list(WAVE_DTYPE))
def test_output_dtype(dtype):
    out = illuminate(rand((2, 6, 6), dtype), rand((6, 6), dtype))
    assert out.dtype == WAVE_DTYPE[dtype]


def test_real_patches_and_complex_probe():
    patches = torch.rand(2, 5, 5)
    probe = rand((5, 5), torch.complex64, gen=generator(2))
    out = illuminate(patches, probe)
    assert out.dtype == torch.complex64
    torch.testing.assert_close(out, patches * probe, rtol=0, atol=0)


def test_double_patches_with_single_probe_give_complex128():
    out = illuminate(rand((2, 4, 4), torch.complex128), rand((4, 4), torch.complex64))
    assert out.dtype == torch.complex128


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.complex64])
def test_autocast_keeps_full_precision(dtype):
    gen = generator(3)
    patches = rand((2, 6, 6), dtype, gen=gen)
    probe = rand((6, 6), torch.complex64, gen=gen)
    expected = illuminate(patches.to(torch.complex64), probe)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = illuminate(patches, probe, mask=disk_mask(6).bfloat16())
    assert out.dtype == torch.complex64
    torch.testing.assert_close(out, expected * disk_mask(6), rtol=0, atol=0)


# ---------------------------------------------------------------- illuminate: semantics


def test_mask_multiplies_the_exit_wave():
    gen = generator(4)
    patches = rand((3, 8, 8), torch.complex64, gen=gen)
    probe = rand((8, 8), torch.complex64, gen=gen)
    mask = disk_mask(8)
    out = illuminate(patches, probe, mask=mask)
    torch.testing.assert_close(out, patches * probe * mask, rtol=0, atol=0)
    assert torch.equal(out[:, mask == 0], torch.zeros_like(out[:, mask == 0]))


@given(phase=st.floats(-7, 7), seed=st.integers(0, 2**31 - 1))
def test_global_probe_phase_leaves_the_diffraction_unchanged(phase, seed):
    gen = generator(seed)
    patches = rand((2, 6, 6), torch.complex128, gen=gen)
    probe = rand((6, 6), torch.complex128, gen=gen)
    rotated = probe * np.exp(1j * phase)
    torch.testing.assert_close(diffract(illuminate(patches, rotated)),
                               diffract(illuminate(patches, probe)), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- illuminate: errors


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"patches": np.ones((4, 4))}, TypeError, "patches must be a torch.Tensor, got ndarray"),
        ({"probe": [[1.0] * 4] * 4}, TypeError, "probe must be a torch.Tensor, got list"),
        ({"mask": np.ones((4, 4))}, TypeError, "mask must be a torch.Tensor, got ndarray"),
        ({"patches": torch.ones(4)}, ValueError, r"patches has shape \(4,\); expected"),
        ({"probe": torch.ones(4)}, ValueError, r"probe has shape \(4,\); expected \(N, N\)"),
        ({"probe": torch.ones(5, 5)}, ValueError,
         r"probe has shape \(5, 5\) but the patches are \(4, 4\)"),
        ({"probe": torch.ones(3, 4, 4)}, ValueError,
         r"probe has shape \(3, 4, 4\), which does not broadcast against the patches \(2, 4, 4\)"),
    ],
)
def test_bad_arguments_raise(kwargs, error, match):
    arguments = {"patches": torch.ones(2, 4, 4), "probe": torch.ones(4, 4), **kwargs}
    with pytest.raises(error, match=match):
        illuminate(**arguments)


# ---------------------------------------------------------------- illuminate: gradients, compile


def test_gradcheck_patches_and_probe():
    gen = generator(5)
    patches = rand((2, 4, 4), torch.complex128, gen=gen).requires_grad_()
    probe = rand((4, 4), torch.complex128, gen=gen).requires_grad_()
    mask = disk_mask(4).double()
    assert torch.autograd.gradcheck(lambda o, p: illuminate(o, p, mask), (patches, probe))


def test_compiled_equals_eager():
    gen = generator(6)
    patches = rand((2, 3, 8, 8), torch.complex64, gen=gen)
    probe = rand((8, 8), torch.complex64, gen=gen)
    mask = disk_mask(8)
    fn = compiled(lambda o, p: illuminate(o, p, mask))
    torch.testing.assert_close(fn(patches, probe), illuminate(patches, probe, mask))


# ---------------------------------------------------------------- disk_mask


@pytest.mark.parametrize("size", [1, 2, 3, 4, 7, 8, 16, 33, 64])
def test_disk_mask_is_r_below_quarter_size_about_the_half_pixel_centre(size):
    coord = np.arange(size) - (size - 1) / 2
    radius = np.hypot(coord[:, None], coord[None, :])
    expected = (radius < size // 4).astype(np.float32)
    mask = disk_mask(size)
    assert mask.shape == (size, size) and mask.dtype == torch.float32
    np.testing.assert_array_equal(mask.numpy(), expected)


def test_disk_mask_64_by_hand():
    """N=64: radius 16 about (31.5, 31.5); the row through the centre spans 32 +- 16 pixels."""
    mask = disk_mask(64)
    assert mask[31].sum() == 32 and mask[31, 16] == 1 and mask[31, 15] == 0
    assert mask[31, 47] == 1 and mask[31, 48] == 0
    assert mask.sum() == 812


@pytest.mark.parametrize("size", [8, 9, 64])
def test_disk_mask_is_symmetric_about_the_half_pixel_centre(size):
    """Centred at (N-1)/2, so invariant under flips and transposition (for even N the centre
    pixel N//2 is half a pixel off its axis of symmetry)."""
    mask = disk_mask(size)
    assert torch.equal(mask, mask.flip(0)) and torch.equal(mask, mask.flip(1))
    assert torch.equal(mask, mask.T)
    assert mask[size // 2, size // 2] == 1


def test_disk_mask_device_argument():
    assert disk_mask(8, device="cpu").device.type == "cpu"
    assert disk_mask(8, device=torch.device("cpu")).device.type == "cpu"


@pytest.mark.parametrize("size", [0, -4, 2.5, "eight", None])
def test_disk_mask_bad_size_raises(size):
    with pytest.raises(ValueError, match="size must be a positive int, got"):
        disk_mask(size)
