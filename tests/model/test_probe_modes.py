"""The network model with a mixed-state probe: K = 1 is the single-mode model bit for bit, K
modes predict the incoherent sum of the modes' intensities, and build_model turns any probe
guess into K normalised modes."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pinn import ops
from pinn.config import Config, ModelConfig
from pinn.errors import ConfigError
from pinn.model import PtychoLoss, PtychoPINN, build_model, make_generator
from pinn.model.ptychopinn import coverage_window

N = 64


def small(**changes) -> ModelConfig:
    return ModelConfig(size_px=N, n_filters_scale=1, **changes)


def data(gridsize: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    c = gridsize**2
    counts = torch.poisson(torch.rand(2, c, N, N, generator=g) * 30, generator=g)
    return {"amplitude": counts.sqrt(), "offsets": torch.randn(2, c, 2, generator=g) * 3}


def single_mode_forward(model: PtychoPINN, amplitude, offsets):
    """The forward as it was before probe modes: one probe, illuminate, diffract."""
    positions = model.canvas_positions(offsets)
    canvas = model.merge(model.decode(amplitude), positions)
    obj = ops.center_crop(canvas, model.size)
    waves = ops.illuminate(ops.extract_patches(canvas, positions, model.size), model.probe,
                           model.probe_mask)
    amp = model.intensity_scale * ops.diffract(waves)
    return obj, amp, amp.square()


def ring(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return ops.default_probe(N) * (1 + 0.3 * torch.randn(N, N, generator=g,
                                                         dtype=torch.complex64))


# ---------------------------------------------------------------- K = 1 is unchanged


@pytest.mark.parametrize("changes", [{}, {"gridsize": 2, "probe_mask": True},
                                     {"probe_trainable": True}])
def test_one_mode_forward_loss_and_gradients_are_the_single_mode_ones_bit_for_bit(changes):
    torch.manual_seed(0)
    model = build_model(small(**changes), probe=ring(1), intensity_scale=3.0)
    assert model.probe.shape == (N, N) and model.probe_real.shape == (N, N, 2)
    batch = data(model.config.gridsize)
    out = model(**batch)
    obj, amp, intensity = single_mode_forward(model, **batch)
    assert torch.equal(out.object, obj)
    assert torch.equal(out.amplitude, amp)
    assert torch.equal(out.intensity, intensity)

    def gradients(loss):
        model.zero_grad()
        loss.backward()
        return [p.grad.clone() for p in model.parameters()]

    loss, _ = PtychoLoss(1.0, 0.5)(model, batch)
    new = gradients(loss)
    counts = batch["amplitude"].square()
    _, amp, intensity = single_mode_forward(model, **batch)
    old_loss = (ops.poisson_nll(intensity, counts).mean()
                + 0.5 * ops.amplitude_mae(amp, batch["amplitude"]).mean())
    assert torch.equal(loss, old_loss)
    assert all(torch.equal(a, b) for a, b in zip(new, gradients(old_loss), strict=True))


def test_a_one_mode_stack_is_stored_as_the_single_probe():
    probe = ring(2)
    a = build_model(small(), probe=probe)
    b = build_model(small(), probe=probe[None])
    assert torch.equal(a.probe_real, b.probe_real) and b.probe.shape == (N, N)
    assert torch.equal(a.probe, ops.normalize_probe(probe, 4.0))


# ---------------------------------------------------------------- K modes


def test_modes_predict_the_sum_of_the_single_mode_intensities():
    torch.manual_seed(0)
    model = build_model(small(gridsize=2, probe_modes=3), probe=ring(3),
                        intensity_scale=2.0).eval()
    assert model.probe.shape == (3, N, N) and model.probe_real.shape == (3, N, N, 2)
    batch = data(2, seed=4)
    with torch.no_grad():
        out = model(**batch)
        expected = torch.zeros_like(out.intensity)
        for k in range(3):
            config = small(gridsize=2)
            single = PtychoPINN(generator=make_generator(config), probe=model.probe[k],
                                intensity_scale=2.0, padded_size=config.padded_size_px,
                                object_big=True, coverage_window=coverage_window(config),
                                merge_eps=config.merge_eps, config=config).eval()
            single.generator.load_state_dict(model.generator.state_dict())
            part = single(**batch)
            assert torch.equal(part.object, out.object)  # the same network and object
            expected += part.intensity
    torch.testing.assert_close(out.intensity, expected, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(out.amplitude, expected.sqrt(), rtol=1e-5, atol=1e-4)
    assert torch.equal(out.intensity, out.amplitude.square())


def test_trainable_modes_all_get_gradients():
    model = build_model(small(probe_modes=2, probe_trainable=True), probe=ring(5))
    loss, _ = PtychoLoss()(model, data(1))
    loss.backward()
    grad = model.probe_real.grad
    assert grad.shape == (2, N, N, 2)
    assert all(float(grad[k].abs().sum()) > 0 for k in range(2))


def test_illumination_sums_the_modes_intensity():
    model = build_model(small(probe_modes=3), probe=ring(6))
    lit = model.illumination(torch.zeros(1, 1, 2))[0]
    total = model.probe.abs().square().sum(0)
    torch.testing.assert_close(lit, total / total.max())


# ---------------------------------------------------------------- the probe guess as K modes


def mean_total_amplitude_in_disk(modes: torch.Tensor) -> float:
    total = modes.abs().square().sum(0).sqrt()
    return float((total * ops.disk_mask(N)).mean())


def test_a_single_probe_gets_hermite_like_modes_and_one_normalisation():
    probe = ring(7)
    model = build_model(small(probe_modes=3, probe_mode_power=0.05), probe=probe)
    modes = model.probe.detach()
    fractions = ops.mode_powers(modes) / ops.mode_powers(modes).sum()
    torch.testing.assert_close(fractions, torch.tensor([0.9, 0.05, 0.05]), rtol=1e-4,
                               atol=1e-5)
    assert mean_total_amplitude_in_disk(modes) == pytest.approx(0.25, rel=1e-5)
    # the dominant mode is the guess up to one positive factor
    ratio = modes[0] / probe
    torch.testing.assert_close(ratio, ratio.mean().real.expand(N, N).to(ratio.dtype),
                               rtol=1e-4, atol=1e-6)


def test_more_modes_than_configured_keeps_the_strongest():
    modes = torch.stack([ring(8) * w for w in (0.5, 2.0, 0.1, 1.0)])
    two = build_model(small(probe_modes=2), probe=modes).probe.detach()
    expected = ops.normalize_probe_modes(modes[[1, 3]], 4.0)
    torch.testing.assert_close(two, expected)
    one = build_model(small(), probe=modes).probe.detach()
    assert one.shape == (N, N)
    assert torch.equal(one, ops.normalize_probe(modes[1], 4.0))  # the dominant mode
    four = build_model(small(probe_modes=4), probe=modes).probe.detach()
    torch.testing.assert_close(four, ops.normalize_probe_modes(modes, 4.0))  # as given


@pytest.mark.parametrize("shape", [(N + 2, N + 2), (3, N, N - 2), (0, N, N), (1, 1, N, N)])
def test_a_probe_of_the_wrong_shape_is_refused(shape):
    with pytest.raises(ValueError, match=r"probe has shape .*the model needs") as info:
        build_model(small(probe_modes=2), probe=torch.ones(shape, dtype=torch.complex64))
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize(("changes", "words"), [
    ({"probe_modes": 0}, "probe_modes is 0; use 1 or more"),
    ({"probe_modes": 3, "probe_mode_power": 0.4}, "probe_mode_power is 0.4; with 3 modes"),
    ({"probe_mode_power": 0.0}, "probe_mode_power is 0.0"),
])
def test_bad_mode_settings_are_one_line_errors(changes, words):
    with pytest.raises(ConfigError, match=words) as info:
        small(**changes)
    assert "\n" not in str(info.value)


def test_configs_before_modes_have_one_mode():
    raw = Config(model=small()).to_dict()
    raw["schema_version"] = 2
    for key in ("probe_modes", "probe_mode_power"):
        del raw["model"][key]
    config = Config.from_dict(raw)
    assert config.model.probe_modes == 1 and config.model.probe_mode_power == 0.02
    assert dataclasses.replace(config.model, probe_modes=1) == small()
