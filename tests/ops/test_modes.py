"""Mixed-state probe ops: incoherent sums, orthogonalisation, added modes, ptycho_intensity."""

from __future__ import annotations

import pytest
import torch

from pinn import ops
from pinn.ops.fourier_shift import fourier_shift
from pinn.ops.modes import (add_probe_modes, far_field_amplitude, far_field_intensity,
                            mode_powers, orthogonalize_modes)
from pinn.ops.ptycho_intensity import ptycho_intensity


def _complex(*shape, seed=0, dtype=torch.complex64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, dtype=dtype, generator=g)


def test_one_mode_is_the_single_mode_forward_bit_for_bit():
    waves = _complex(4, 3, 1, 16, 16)
    single = ops.diffract(waves[..., 0, :, :])
    assert torch.equal(far_field_amplitude(waves), single)
    assert torch.equal(far_field_intensity(waves), single.square())


def test_modes_add_incoherently():
    waves = _complex(2, 3, 16, 16)
    expected = sum(ops.diffract(waves[:, k]).square() for k in range(3))
    torch.testing.assert_close(far_field_intensity(waves), expected)
    torch.testing.assert_close(far_field_amplitude(waves), expected.sqrt())
    # energy: the summed intensity equals the summed power of the modes
    torch.testing.assert_close(far_field_intensity(waves).sum(dim=(-2, -1)),
                               waves.abs().square().sum(dim=(-3, -2, -1)))


def test_mode_sum_gradients():
    waves = _complex(2, 3, 6, 6, dtype=torch.complex128).requires_grad_()
    assert torch.autograd.gradcheck(far_field_intensity, (waves,))
    assert torch.autograd.gradcheck(far_field_amplitude, (waves,))


def test_orthogonalisation_keeps_the_total_intensity_and_sorts_by_power():
    modes = _complex(4, 12, 12, seed=1)
    out = orthogonalize_modes(modes)
    torch.testing.assert_close(out.abs().square().sum(0), modes.abs().square().sum(0),
                               rtol=1e-5, atol=1e-5)
    flat = out.reshape(4, -1).to(torch.complex128)
    overlap = flat.conj() @ flat.T
    off_diagonal = overlap - torch.diag(torch.diagonal(overlap))
    assert off_diagonal.abs().max() < 1e-4 * overlap.abs().max()
    powers = mode_powers(out)
    assert torch.all(powers[:-1] >= powers[1:])
    # every predicted pattern is unchanged, for any object
    obj = _complex(12, 12, seed=2)
    torch.testing.assert_close(far_field_intensity(out * obj), far_field_intensity(modes * obj),
                               rtol=1e-4, atol=1e-3)


def test_added_modes_take_their_share_and_are_orthogonal():
    n = 32
    y, x = torch.meshgrid(torch.arange(n) - n / 2, torch.arange(n) - n / 2, indexing="ij")
    probe = torch.exp(-(y**2 + x**2) / 40).to(torch.complex64) * 30
    modes = add_probe_modes(probe, 4, 0.05)
    assert modes.shape == (4, n, n)
    powers = mode_powers(modes)
    total = float(mode_powers(probe[None]).sum())
    torch.testing.assert_close(powers.sum(), torch.tensor(total), rtol=1e-5, atol=0)
    torch.testing.assert_close(powers / powers.sum(), torch.tensor([0.85, 0.05, 0.05, 0.05]),
                               rtol=1e-4, atol=1e-5)
    assert add_probe_modes(probe, 1).shape == (1, n, n)
    with pytest.raises(ValueError, match="modes"):
        add_probe_modes(probe, 0)
    with pytest.raises(ValueError, match="power fraction"):
        add_probe_modes(probe, 4, 0.3)


def test_ptycho_intensity_is_the_composed_physics():
    windows = _complex(5, 16, 16, seed=3)
    modes = _complex(3, 16, 16, seed=4)
    shifts = torch.rand(5, 2) - 0.5
    expected = far_field_intensity(ops.illuminate(fourier_shift(modes, shifts[:, None]),
                                                  windows[:, None]))
    out = ptycho_intensity(windows, modes, shifts)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-3)
    uncentred = ptycho_intensity(windows, modes, shifts, centered=False)
    torch.testing.assert_close(torch.fft.fftshift(uncentred, dim=(-2, -1)), out)


@pytest.mark.parametrize("centered", [True, False])
def test_ptycho_intensity_gradients(centered):
    windows = _complex(3, 6, 6, seed=5, dtype=torch.complex128).requires_grad_()
    modes = _complex(2, 6, 6, seed=6, dtype=torch.complex128).requires_grad_()
    shifts = (torch.rand(3, 2, dtype=torch.float64) - 0.5).requires_grad_()
    assert torch.autograd.gradcheck(lambda w, m, s: ptycho_intensity(w, m, s, centered),
                                    (windows, modes, shifts))


def test_ptycho_intensity_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="shifts for"):
        ptycho_intensity(_complex(3, 8, 8), _complex(2, 8, 8), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="one size"):
        ptycho_intensity(_complex(3, 8, 8), _complex(2, 6, 6), torch.zeros(3, 2))


def test_dominant_mode_is_the_strongest():
    modes = _complex(3, 8, 8, seed=4)
    modes[2] *= 3
    assert torch.equal(ops.dominant_mode(modes), modes[2])
    assert torch.equal(ops.dominant_mode(modes[0]), modes[0])  # (N, N) is its own
    tied = torch.stack([modes[0], modes[0]])
    assert ops.dominant_mode(tied).data_ptr() == tied[0].data_ptr()  # the first of equals
    with pytest.raises(ValueError, match=r"probe has shape \(0, 8, 8\)"):
        ops.dominant_mode(modes[:0])
    with pytest.raises(ValueError, match="probe has shape"):
        ops.dominant_mode(modes[None])


def test_mode_sums_compile_to_one_graph():
    from _ops_helpers import compiled

    waves = _complex(2, 3, 16, 16, seed=5)
    torch.testing.assert_close(compiled(far_field_amplitude)(waves), far_field_amplitude(waves))
    torch.testing.assert_close(compiled(far_field_intensity)(waves), far_field_intensity(waves))
