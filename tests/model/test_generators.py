"""Every generator (reference CNN, U-Net, FNO) with both output parameterisations: shapes,
gradients reaching every parameter, archive round trip, seeded determinism, bf16 autocast,
and the archive upgrade that loads schema-1 archives as the CNN."""

from __future__ import annotations

import json

import pytest
import torch

from pinn.archive import load_archive, save_archive
from pinn.config import ModelConfig
from pinn.engine import seed_everything
from pinn.model import PtychoLoss, build_model, make_generator
from pinn.model.fno import FNO
from pinn.model.generator import CNNGenerator
from pinn.model.unet import UNet

pytestmark = pytest.mark.usefixtures("one_thread")

N = 64
KINDS = [("cnn", CNNGenerator), ("unet", UNet), ("fno", FNO)]
OUTPUTS = ["amp_phase", "real_imag"]


def tiny(generator: str, output: str = "amp_phase", **overrides) -> ModelConfig:
    """The smallest network of each kind at N = 64, gridsize 2."""
    options = dict(size_px=N, gridsize=2, generator=generator, output=output,
                   n_filters_scale=1, width=8, fno_modes=4)
    return ModelConfig(**{**options, **overrides})


def batch(seed: int = 0, size: int = 2, channels: int = 4) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {"amplitude": 5 * torch.rand(size, channels, N, N, generator=gen),
            "offsets": 3 * torch.randn(size, channels, 2, generator=gen)}


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("kind, cls", KINDS)
@pytest.mark.parametrize("object_big", [True, False])
def test_shapes_and_dtypes(kind, cls, output, object_big):
    config = tiny(kind, output, object_big=object_big)
    generator = make_generator(config)
    assert isinstance(generator, cls)
    first, second = generator(torch.rand(3, 4, N, N))
    out_channels = 4 if object_big else 1
    assert first.shape == second.shape == (3, out_channels, N, N)
    assert first.dtype == second.dtype == torch.float32
    out = build_model(config, intensity_scale=10.0)(**batch())
    assert out.object.shape == (2, N, N) and out.object.dtype == torch.complex64
    assert out.amplitude.shape == (2, 4, N, N) and out.amplitude.dtype == torch.float32


@pytest.mark.parametrize("kind", ["unet", "fno"])
def test_amp_phase_heads_are_bounded_and_real_imag_heads_are_not(kind):
    x = 50 * torch.rand(2, 4, N, N)
    amp, phase = make_generator(tiny(kind, "amp_phase"))(x)
    assert amp.min() >= 0 and amp.max() <= 1  # sigmoid
    assert phase.abs().max() <= torch.pi
    generator = make_generator(tiny(kind, "real_imag"))
    with torch.no_grad():
        generator.head.bias.fill_(-3.0)  # a linear head passes it through
    real, imag = generator(x)
    assert real.mean() < -1 and imag.mean() < -1  # no sigmoid, no tanh


@pytest.mark.parametrize("kind", ["cnn", "unet", "fno"])
def test_real_imag_starts_near_a_clear_object(kind):
    """The real head starts at 0.5 (like sigmoid(0) in amp_phase), the imaginary one near 0,
    so the first predicted diffraction is neither zero nor huge."""
    real, imag = make_generator(tiny(kind, "real_imag", pad_object=False))(torch.rand(2, 4, N, N))
    centre = (slice(None), slice(None), slice(N // 4, 3 * N // 4), slice(N // 4, 3 * N // 4))
    assert 0.2 < real[centre].mean() < 0.8
    assert imag[centre].abs().mean() < 0.3


@pytest.mark.parametrize("kind", ["unet", "fno"])
def test_centre_only_zeroes_the_border(kind):
    """pad_object without the border branch fills only the centre N/2 window, like the CNN."""
    for output in OUTPUTS:
        amp, phase = make_generator(tiny(kind, output, probe_big=False))(torch.rand(2, 4, N, N))
        border = torch.ones(N, N, dtype=torch.bool)
        border[N // 4:3 * N // 4, N // 4:3 * N // 4] = False
        assert amp[..., border].abs().max() == 0 and phase[..., border].abs().max() == 0
        assert amp[..., ~border].abs().min() > 0


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("kind", ["cnn", "unet", "fno"])
def test_gradients_reach_every_parameter(kind, output):
    model = build_model(tiny(kind, output), intensity_scale=10.0)
    loss, _ = PtychoLoss()(model, batch())
    loss.backward()
    names = [name for name, p in model.named_parameters()]
    assert names and all(name.startswith("generator.") for name in names)
    dead = [name for name, p in model.named_parameters()
            if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().max() == 0]
    assert not dead


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("kind", ["cnn", "unet", "fno"])
def test_archive_round_trip(kind, output, tmp_path):
    model = build_model(tiny(kind, output), intensity_scale=12.5)
    with torch.no_grad():  # move every weight away from its initial value
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.eval()
    path = save_archive(model, tmp_path / "model.zip")
    archive = load_archive(path)
    assert archive.config.model.generator == kind and archive.config.model.output == output
    assert archive.config.model.width == 8 and archive.config.model.fno_modes == 4
    loaded, expected = archive.model.state_dict(), model.state_dict()
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[k], expected[k]) for k in expected)
    data = batch(1)
    with torch.no_grad():
        assert torch.equal(archive.model(**data).object, model(**data).object)


def test_schema_1_archive_loads_as_the_cnn(tmp_path):
    """An archive written before generators existed (no generator / output / width /
    fno_modes keys, schema_version 1) loads as the reference CNN with amplitude / phase."""
    model = build_model(ModelConfig(size_px=N, n_filters_scale=1), intensity_scale=3.0).eval()
    path = save_archive(model, tmp_path / "model")
    manifest = json.loads((path / "config.json").read_text())
    manifest["config"]["schema_version"] = 1
    for key in ("generator", "output", "width", "fno_modes"):
        del manifest["config"]["model"][key]
    (path / "config.json").write_text(json.dumps(manifest))
    archive = load_archive(path)
    assert archive.config.model.generator == "cnn"
    assert archive.config.model.output == "amp_phase"
    assert isinstance(archive.model.generator, CNNGenerator)
    data = batch(2, channels=1)
    with torch.no_grad():
        assert torch.equal(archive.model(**data).object, model(**data).object)


@pytest.mark.parametrize("kind", ["cnn", "unet", "fno"])
def test_seeded_builds_and_steps_are_bitwise_equal(kind):
    def run() -> dict[str, torch.Tensor]:
        seed_everything(123, True)
        model = build_model(tiny(kind, "real_imag"), intensity_scale=10.0)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        for step in range(2):
            loss, _ = PtychoLoss()(model, batch(step))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        return {k: v.clone() for k, v in model.state_dict().items()}

    first, second = run(), run()
    assert all(torch.equal(first[k], second[k]) for k in first)
    seed_everything(124, True)
    other = build_model(tiny(kind, "real_imag"), intensity_scale=10.0).state_dict()
    assert any(not torch.equal(first[k], other[k]) for k in first if first[k].is_floating_point()
               and first[k].numel() > 1000)


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("kind", ["cnn", "unet", "fno"])
def test_bf16_autocast_runs_and_stays_close(kind, output):
    model = build_model(tiny(kind, output), intensity_scale=10.0)
    data = batch(3)
    with torch.no_grad():
        reference = model(**data).amplitude
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = PtychoLoss()(model, data)
        with torch.no_grad():
            out = model(**data)
    loss.backward()
    assert out.object.dtype == torch.complex64 and out.amplitude.dtype == torch.float32
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    error = (out.amplitude - reference).abs().max() / reference.abs().max()
    assert error < 0.05
