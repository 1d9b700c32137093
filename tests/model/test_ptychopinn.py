"""Tests of pinn.model.ptychopinn: the configuration the module carries, its forward contract
(shapes, dtypes, units) and the checks of its construction."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from pinn import ops
from pinn.config import ModelConfig
from pinn.model import CNNGenerator, ModelOutput, PtychoPINN, build_generator, build_model
from pinn.model.ptychopinn import coverage_window

N = 64


def small(**changes) -> ModelConfig:
    return ModelConfig(size_px=N, n_filters_scale=1, **changes)


def arguments(config: ModelConfig) -> dict:
    """The plain arguments build_model derives from ``config``."""
    return dict(generator=build_generator(config),
                probe=ops.normalize_probe(ops.default_probe(N), config.probe_scale),
                intensity_scale=2.0, padded_size=config.padded_size_px,
                object_big=config.object_big, coverage_window=coverage_window(config),
                merge_eps=config.merge_eps,
                probe_mask=ops.disk_mask(N) if config.probe_mask else None,
                probe_trainable=config.probe_trainable,
                intensity_scale_trainable=config.intensity_scale_trainable)


# ---------------------------------------------------------------- the configuration


@pytest.mark.parametrize("changes", [{}, {"gridsize": 2, "probe_trainable": True},
                                     {"probe_mask": True, "probe_big": False}])
def test_the_model_carries_the_config_it_was_built_from(changes):
    config = small(**changes)
    model = build_model(config)
    assert model.config is config
    assert isinstance(model.generator, CNNGenerator)
    # a description, not state: the weights alone do not carry it
    assert not any("config" in key for key in model.state_dict())


def test_the_config_is_a_constructor_argument():
    config = small(gridsize=2)
    model = PtychoPINN(**arguments(config), config=config)
    assert model.config is config
    with pytest.raises(TypeError, match="config"):
        PtychoPINN(**arguments(config))  # no model without its configuration


@pytest.mark.parametrize(("field", "value"), [
    ("gridsize", 2), ("max_position_jitter_px", 12), ("object_big", False), ("merge_eps", 0.01),
    ("probe_big", False), ("probe_mask", True), ("probe_trainable", True),
    ("intensity_scale_trainable", True), ("output", "real_imag")])
def test_a_config_that_disagrees_with_the_arguments_is_refused(field, value):
    built_for = small()
    claimed = dataclasses.replace(built_for, **{field: value})
    with pytest.raises(ValueError, match="disagree with its config"):
        PtychoPINN(**arguments(built_for), config=claimed)


def test_config_must_be_a_model_config():
    config = small()
    with pytest.raises(TypeError, match="ModelConfig"):
        PtychoPINN(**arguments(config), config=dataclasses.asdict(config))


# ---------------------------------------------------------------- construction checks


def test_probe_of_another_size_is_refused():
    with pytest.raises(ValueError, match=r"probe has shape \(32, 32\)"):
        build_model(small(), probe=ops.default_probe(32))


@pytest.mark.parametrize("scale", [0.0, -1.0, math.inf, math.nan])
def test_intensity_scale_must_be_finite_and_positive(scale):
    with pytest.raises(ValueError, match="intensity_scale"):
        build_model(small(), intensity_scale=scale)


@pytest.mark.parametrize(("trainable", "kind"), [(False, "buffer"), (True, "parameter")])
def test_probe_and_scale_are_parameters_only_when_trainable(trainable, kind):
    model = build_model(small(probe_trainable=trainable, intensity_scale_trainable=trainable),
                        intensity_scale=3.0)
    names = {name for name, _ in model.named_parameters()}
    assert ("probe_real" in names) is trainable and ("log_scale" in names) is trainable
    assert float(model.intensity_scale.detach()) == pytest.approx(3.0)
    torch.testing.assert_close(model.probe, ops.normalize_probe(ops.default_probe(N)))


# ---------------------------------------------------------------- the forward contract


@pytest.mark.parametrize("gridsize", [1, 2])
def test_forward_shapes_dtypes_and_units(gridsize):
    model = build_model(small(gridsize=gridsize), intensity_scale=5.0).eval()
    c = gridsize**2
    amplitude = torch.rand(3, c, N, N, generator=torch.Generator().manual_seed(0)) * 10
    offsets = torch.randn(3, c, 2, generator=torch.Generator().manual_seed(1)) * 2
    with torch.no_grad():
        out = model(amplitude, offsets)
    assert isinstance(out, ModelOutput)
    assert out.object.shape == (3, N, N) and out.object.dtype == torch.complex64
    assert out.amplitude.shape == (3, c, N, N) and out.amplitude.dtype == torch.float32
    assert torch.equal(out.intensity, out.amplitude.square())
    assert bool((out.amplitude >= 0).all())


@pytest.mark.parametrize("blur", [None, 0.0, 3.0])
def test_projection_steps_start_from_the_blurred_canvas(blur):
    """With steps the object is the projection of the blurred merged canvas (the config's
    blur unless given); without steps it is the network's, whatever the blur."""
    from pinn.model.ptychopinn import PROJECTION_STEP_SIZE

    model = build_model(small(gridsize=2, projection_blur_px=2.0), intensity_scale=5.0).eval()
    amplitude = torch.rand(2, 4, N, N, generator=torch.Generator().manual_seed(0)) * 10
    offsets = torch.randn(2, 4, 2, generator=torch.Generator().manual_seed(1)) * 2
    with torch.no_grad():
        positions = model.canvas_positions(offsets)
        canvas = model.merge(model.decode(amplitude), positions)
        sigma = 2.0 if blur is None else blur
        start = ops.gaussian_blur(canvas, sigma, weights=model.footprint(positions))
        expected = ops.project_amplitudes(start, positions,
                                          model.probe_modes, amplitude / model.intensity_scale,
                                          3, step_size=PROJECTION_STEP_SIZE)
        stepped = model(amplitude, offsets, steps=3, blur_px=blur).object
        plain = model(amplitude, offsets, blur_px=blur).object
    torch.testing.assert_close(stepped, ops.center_crop(expected, N))
    torch.testing.assert_close(plain, ops.center_crop(canvas, N))
    if sigma:
        unblurred = model(amplitude, offsets, steps=3, blur_px=0.0).object
        assert not torch.allclose(stepped, unblurred)


@pytest.mark.parametrize("changes", [{"gridsize": 2}, {"gridsize": 1},
                                     {"gridsize": 1, "object_big": False}])
def test_the_footprint_is_where_the_merge_puts_the_network_object(changes):
    model = build_model(small(**changes)).eval()
    c = model.config.channels
    offsets = torch.randn(2, c, 2, generator=torch.Generator().manual_seed(3)) * 3
    positions = model.canvas_positions(offsets)
    footprint = model.footprint(positions)
    assert footprint.shape == (2, model.padded_size, model.padded_size)
    ones = torch.ones(2, c, N, N, dtype=torch.complex64)
    with torch.no_grad():
        merged = model.merge(ones, positions)
    assert torch.equal(footprint > 0, merged.abs() > 0)


def test_predicted_amplitude_scales_with_the_intensity_scale():
    """The network sees ``amplitude / scale`` and the prediction is ``scale * |F(...)|``: with
    the input scaled too, the prediction scales by the same factor."""
    torch.manual_seed(0)
    low = build_model(small(), intensity_scale=1.0).eval()
    high = build_model(small(), intensity_scale=4.0).eval()
    high.generator.load_state_dict(low.generator.state_dict())
    amplitude = torch.rand(2, 1, N, N, generator=torch.Generator().manual_seed(2))
    offsets = torch.zeros(2, 1, 2)
    with torch.no_grad():
        a = low(amplitude, offsets)
        b = high(4.0 * amplitude, offsets)
    torch.testing.assert_close(b.object, a.object)
    torch.testing.assert_close(b.amplitude, 4.0 * a.amplitude, rtol=1e-5, atol=1e-5)


def test_illumination_sums_the_members_probe_intensity():
    """At gridsize 1 and zero offset the group's illumination is ``|probe|**2`` (peak 1)."""
    model = build_model(small())
    lit = model.illumination(torch.zeros(1, 1, 2))
    expected = model.probe.abs().square()
    torch.testing.assert_close(lit[0], expected / expected.max())
