"""Model archives: ``config.json`` + ``model.safetensors``, as a directory or one ``.zip``.

``config.json`` holds the schema version, the full configuration, the intensity scale, probe
metadata (shape, number of incoherent modes and each mode's share of the power), training
provenance and the sha256 of the weights file. ``model.safetensors`` holds every weight and
buffer, the probe included (all its modes). Loading never unpickles anything: safetensors is a
JSON header plus raw little-endian arrays, and the configuration is JSON. It checks the schema
version and the checksum, rebuilds the model from the configuration and loads the weights
strictly. Writes are atomic: a crash leaves the previous archive intact.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import shutil
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

import pinn
from pinn.atomic import atomic_write_bytes, directory_mode
from pinn.config import ARCHIVE_FORMAT, Config, ModelConfig, upgrade
from pinn.engine.distributed import resolve_device
from pinn.errors import ArchiveError, ConfigError
from pinn.model import PtychoPINN, build_model

__all__ = ["Archive", "describe", "load_archive", "locate_archive", "power_fractions",
           "read_manifest", "save_archive"]

FORMAT = ARCHIVE_FORMAT
SCHEMA_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
#: Refuse archive members larger than this (a guard against zip bombs).
MAX_MEMBER_BYTES = 4 << 30


@dataclass
class Archive:
    """A loaded archive: the ready ``model``, its full ``config`` and the ``manifest``
    (everything in ``config.json``)."""

    model: PtychoPINN
    config: Config
    manifest: dict[str, Any] = field(default_factory=dict)


def _weights_bytes(model: PtychoPINN) -> bytes:
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    return save_safetensors(tensors, metadata={"format": FORMAT})


def power_fractions(model: PtychoPINN) -> list[float]:
    """Each probe mode's share of the total probe power, ``sum |mode|**2 / total`` (K floats,
    ``[1.0]`` for a single probe)."""
    powers = model.probe_modes.detach().to("cpu", torch.complex128).abs().square().sum(
        dim=(-2, -1))
    return [float(p) for p in powers / powers.sum()]


def save_archive(model: PtychoPINN, path: str | os.PathLike, *, config: Config | None = None,
                 provenance: dict[str, Any] | None = None) -> Path:
    """Save ``model`` as an archive at ``path`` (a directory, or a single file if it ends in
    ``.zip``). Returns the path.

    Args:
        model: the unwrapped :class:`PtychoPINN` (not a DDP or compiled wrapper); its
            :attr:`~PtychoPINN.config` is the model section that is saved.
        config: the full run configuration (data and training sections); defaults to the
            model's configuration with default data and training sections. Its model section
            must be the model's.
        provenance: JSON-able facts about training (data file hash, epochs, final losses...).
    """
    if not isinstance(model, PtychoPINN):
        raise TypeError("save_archive expects the unwrapped PtychoPINN module "
                        f"(got {type(model).__name__}); pass model.module or model._orig_mod")
    model_config = model.config
    config = config or Config(model=model_config)
    if config.model != model_config:
        raise ConfigError("config.model differs from the model's own configuration")
    weights = _weights_bytes(model)
    manifest = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "config": config.to_dict(),
        "intensity_scale": float(model.intensity_scale.detach()),
        "probe": {
            "shape": list(model.probe.shape),
            "dtype": "complex64",
            "stored_as": ("probe_real (N, N, 2) float32 in model.safetensors"
                          if model.probe.dim() == 2 else
                          "probe_real (K, N, N, 2) float32 in model.safetensors"),
            "modes": int(model.probe_modes.shape[0]),
            "power_fraction": power_fractions(model),
            "normalized_with_probe_scale": model_config.probe_scale,
            "trainable": model_config.probe_trainable,
        },
        "provenance": {"pinn_version": pinn.__version__, "torch_version": torch.__version__,
                       **(provenance or {})},
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
    }
    config_bytes = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    path = Path(path)
    if path.suffix == ".zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr(CONFIG_NAME, config_bytes)
            archive.writestr(WEIGHTS_NAME, weights)
        atomic_write_bytes(path, buffer.getvalue())
    else:
        _write_directory(path, {CONFIG_NAME: config_bytes, WEIGHTS_NAME: weights})
    return path


def _write_directory(path: Path, files: dict[str, bytes]) -> None:
    """Write the files into a fresh temporary directory, then swap it in place of ``path``.

    An existing archive is first renamed aside and put back if the second rename fails, so an
    error leaves the previous archive in place. (Between the two renames a crash leaves it in
    the ``.NAME.*.old`` directory beside ``path``: POSIX has no atomic directory exchange.)
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not path.is_dir():
        raise ArchiveError(f"{path} exists and is not a directory; choose another archive path")
    if path.is_dir():
        foreign = sorted(p.name for p in path.iterdir() if p.name not in files)
        if foreign:
            raise ArchiveError(f"{path} is not a pinn archive (it holds {foreign[:5]}); "
                               "refusing to replace it, choose another archive path")
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        os.chmod(staging, directory_mode(path))
        for name, data in files.items():
            atomic_write_bytes(staging / name, data)
        if path.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old",
                                            dir=path.parent))
            os.rmdir(retired)
            os.replace(path, retired)
            try:
                os.replace(staging, path)
            except BaseException:
                os.replace(retired, path)
                raise
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, path)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError) and exc.errno is not None and str(
                exc.filename or "").startswith(str(staging)):  # name the archive, not staging
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


def locate_archive(path: str | os.PathLike) -> Path:
    """The archive ``path`` names: ``path`` itself, or ``path/model`` when ``path`` is the
    output directory of ``pinn train`` (``RUN``), whose archive is ``RUN/model``."""
    path = Path(path)
    if path.is_dir() and not (path / CONFIG_NAME).exists() and (path / "model").is_dir():
        return path / "model"
    return path


def _read_members(path: Path) -> tuple[bytes, bytes]:
    """The raw ``config.json`` and ``model.safetensors`` of a directory or zip archive."""
    if (path.is_dir() and not (path / CONFIG_NAME).exists()
            and (path / "checkpoints").is_dir()):
        raise ArchiveError(f"{path} is a training run without a model yet (it has checkpoints "
                           "but no RUN/model: the run was interrupted); finish it with "
                           "`pinn train ... --resume`, then pass RUN/model")
    if path.is_dir():
        try:
            return (path / CONFIG_NAME).read_bytes(), (path / WEIGHTS_NAME).read_bytes()
        except FileNotFoundError as exc:
            raise ArchiveError(f"archive {path} lacks {Path(exc.filename).name}; an archive "
                               f"holds {CONFIG_NAME} and {WEIGHTS_NAME}") from None
        except OSError as exc:
            raise ArchiveError(f"cannot read {exc.filename} in archive {path}: "
                               f"{exc.strerror or exc}") from None
    if not path.exists():
        raise ArchiveError(f"no archive at {path}; pass a directory written by `pinn train` "
                           "(RUN/model) or a .zip archive")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            names = [info.filename for info in infos]
            if sorted(names) != sorted([CONFIG_NAME, WEIGHTS_NAME]):
                raise ArchiveError(f"zip archive {path} holds {names}; expected exactly "
                                   f"{CONFIG_NAME} and {WEIGHTS_NAME} (extra, missing or "
                                   "nested entries are refused)")
            for info in infos:
                if info.file_size > MAX_MEMBER_BYTES:
                    raise ArchiveError(f"zip archive {path}: {info.filename} claims "
                                       f"{info.file_size} bytes, more than allowed")
            return archive.read(CONFIG_NAME), archive.read(WEIGHTS_NAME)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError,
            NotImplementedError, RuntimeError, ValueError) as exc:
        # NotImplementedError: unknown compression or zip version; RuntimeError: encrypted
        raise ArchiveError(f"{path} is not a readable zip archive ({_oneline(exc)}); it may be "
                           "truncated or not an archive") from None


def _oneline(exc: BaseException) -> str:
    """An embedded error's text on one line (safetensors quotes header bytes verbatim)."""
    return " ".join(str(exc).split())


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``config.json`` of an archive, after checking format and schema version."""
    path = locate_archive(path)
    config_bytes, _ = _read_members(path)
    return _parse_manifest(config_bytes, path)


def _parse_manifest(config_bytes: bytes, path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(config_bytes)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ArchiveError(f"{path}: {CONFIG_NAME} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArchiveError(f"{path}: {CONFIG_NAME} is not a pinn model manifest")
    version = manifest.get("schema_version")
    if (not isinstance(version, int) or isinstance(version, bool) or version > SCHEMA_VERSION
            or version < 1):
        raise ArchiveError(f"{path}: archive schema version {version!r} is not supported by "
                           f"this pinn (reads 1 to {SCHEMA_VERSION}); upgrade pinn")
    for key in ("config", "intensity_scale", "weights_sha256"):
        if key not in manifest:
            raise ArchiveError(f"{path}: {CONFIG_NAME} lacks the key {key!r}; the archive is "
                               "incomplete, save it again")
    return manifest


def _require_complete_model(model: Any) -> None:
    """An archive's model section must name every ModelConfig field (after the schema
    upgrade): a missing one would silently take today's default, which may build another
    network (activation, masks, probe scale) that still fits the weights."""
    if not isinstance(model, dict):
        return  # Config.from_dict reports it
    missing = sorted({f.name for f in dataclasses.fields(ModelConfig)} - set(model))
    if missing:
        raise ConfigError(f"the 'model' section lacks {missing}; an archive records every "
                          "model option, so this one is incomplete or was edited. Add the "
                          "keys or save the archive again")


def load_archive(path: str | os.PathLike, device: str | torch.device = "cpu") -> Archive:
    """Load an archive (a directory, a ``.zip``, or a run directory ``RUN`` of ``pinn train``,
    whose ``RUN/model`` is read) and return the ready model (eval mode) on ``device`` ("cpu",
    "cuda", "cuda:N" or "auto").

    Raises:
        ArchiveError: missing/extra files, bad JSON, newer schema, checksum mismatch, an
            invalid or incomplete model configuration, missing, extra or misshapen tensors.
        ConfigError: ``device`` is not a valid or available device.
    """
    path = locate_archive(path)
    device = resolve_device(device)
    config_bytes, weights = _read_members(path)
    manifest = _parse_manifest(config_bytes, path)
    if hashlib.sha256(weights).hexdigest() != manifest["weights_sha256"]:
        raise ArchiveError(f"{path}: {WEIGHTS_NAME} does not match the checksum in "
                           f"{CONFIG_NAME}; the file is corrupt or was modified")
    try:
        if not isinstance(manifest["config"], dict) or "model" not in manifest["config"]:
            raise ConfigError("the 'model' section is missing")
        raw = upgrade(manifest["config"])
        _require_complete_model(raw["model"])
        config = Config.from_dict(raw)
    except ConfigError as exc:
        raise ArchiveError(f"{path}: invalid configuration in {CONFIG_NAME}: {exc}") from None
    try:
        tensors = load_safetensors(weights)
    except (SafetensorError, ValueError) as exc:
        raise ArchiveError(f"{path}: {WEIGHTS_NAME} is not a valid safetensors file "
                           f"({_oneline(exc)})"
                           ) from None
    scale = manifest["intensity_scale"]
    if (not isinstance(scale, (int, float)) or isinstance(scale, bool) or not scale > 0
            or not math.isfinite(scale)):
        raise ArchiveError(f"{path}: intensity_scale is {scale!r}; expected a finite positive "
                           "number")
    model = build_model(config.model, intensity_scale=float(scale))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise ArchiveError(f"{path}: the weights do not fit the configured model "
                           f"(missing {missing[:5]}, unexpected {extra[:5]})")
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape or tensor.dtype != expected[name].dtype:
            raise ArchiveError(f"{path}: tensor {name} has shape {tuple(tensor.shape)} "
                               f"{tensor.dtype}; the model needs {tuple(expected[name].shape)} "
                               f"{expected[name].dtype}")
    model.load_state_dict(tensors, strict=True)
    model.to(device).eval()
    return Archive(model=model, config=config, manifest=manifest)


def _describe_projection(model) -> str:
    """The model's projection steps at inference, for ``pinn info``."""
    passes = (f"; then {model.projection_passes} passes over the whole scan"
              if model.projection_passes else "")
    if not model.projection_steps:
        return "none (the network's object as it is)" + passes
    start = (f"from the network's object blurred by {model.blur_px:g} px"
             if model.blur_px else "from the network's object as it is")
    sync = (f"{model.sync_rounds} rounds of phase synchronisation"
            if model.sync_rounds else "no phase synchronisation")
    return f"{model.projection_steps} per group at inference, {start}; {sync}{passes}"


def _describe_generator(model: ModelConfig) -> str:
    size = {"cnn": f"n_filters_scale {model.n_filters_scale}", "unet": f"width {model.width}",
            "fno": f"width {model.width}, {model.fno_modes} modes"}[model.generator]
    return f"{model.generator} ({size}), output {model.output}"


def _describe_probe(archive: Archive) -> str:
    """Shape, modes and their power fractions (as the manifest records them; archives from
    before probe modes have one), fixed or trained."""
    model = archive.model
    stored = archive.manifest.get("probe")
    fractions = stored.get("power_fraction") if isinstance(stored, dict) else None
    if not isinstance(fractions, list):
        fractions = power_fractions(model)
    k = int(model.probe_modes.shape[0])
    modes = f"{k} mode{'s' if k > 1 else ''}"
    if k > 1:
        modes += f" (power {' / '.join(f'{100 * float(f):.1f}' for f in fractions)} %)"
    state = "trained" if archive.config.model.probe_trainable else "fixed"
    return f"{list(model.probe.shape)} complex64, {modes}, {state}"


def describe(path: str | os.PathLike) -> str:
    """A human-readable summary of an archive (what ``pinn info`` prints)."""
    path = locate_archive(path)
    archive = load_archive(path)
    manifest, config = archive.manifest, archive.config
    model = config.model
    params = sum(p.numel() for p in archive.model.parameters())
    rows = [
        ("archive", path),
        ("schema version", manifest["schema_version"]),
        ("patch size N", model.size_px),
        ("gridsize", f"{model.gridsize} ({model.channels} patterns per group)"),
        ("grouping", f"{config.data.neighbors} neighbours, seed {config.data.grouping_seed} "
                     "(used by reconstruct unless overridden)"),
        ("generator", _describe_generator(model)),
        ("parameters", f"{params:,}"),
        ("projection steps", _describe_projection(model)),
        ("intensity scale", f"{manifest['intensity_scale']:.6g}"),
        ("probe", _describe_probe(archive)),
        ("amp activation", f"{model.amp_activation}; object_big {model.object_big}; "
                           f"probe_big {model.probe_big}; probe_mask {model.probe_mask}"),
        ("weights sha256", manifest["weights_sha256"]),
    ]
    provenance = manifest.get("provenance")
    rows += sorted(provenance.items() if isinstance(provenance, dict) else [])
    width = max(len(str(key)) for key, _ in rows)
    lines = [f"{key:<{width}}  {value}" for key, value in rows]
    return "\n".join(lines)


