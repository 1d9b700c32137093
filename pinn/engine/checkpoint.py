"""Training checkpoints: one safetensors file, written atomically, never pickled.

A checkpoint holds everything an exact resume needs: the model's weights and buffers, the
optimiser state (its tensors as tensors, the rest as JSON), the caller's JSON state (the
engine's :class:`~pinn.engine.state.TrainingState`) and further named tensors (the RNG state,
the best weights). Tensors go into the safetensors body; everything else is JSON in the file's
metadata header,
together with a sha256 of the whole content (the metadata, and every tensor's name, dtype,
shape and bytes), so that a damaged file is refused rather than resumed: a flipped digit in a
learning rate or a dtype letter in the tensor table is caught as surely as one in the weights.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from pinn.atomic import atomic_write_bytes
from pinn.errors import ArchiveError

FORMAT = "pinn-checkpoint"
#: The file layout's version; only this one is read (earlier ones were never released).
FORMAT_VERSION = 3
_META_KEY = "pinn_checkpoint"
_DIGEST_KEY = "content_sha256"


def _tensor_copy(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu").contiguous().clone()


def pack_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimiser's ``state_dict`` as tensors by name (``ID/KEY``) and JSON-able rest."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for param_id, entries in state["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{param_id}/{key}"] = _tensor_copy(value)
            else:
                scalars.setdefault(str(param_id), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def unpack_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`pack_optimizer`."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        param_id, key = name.split("/", 1)
        state.setdefault(int(param_id), {})[key] = value
    for param_id, entries in meta["scalars"].items():
        state.setdefault(int(param_id), {}).update(entries)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, state: dict[str, Any],
                    extra_tensors: dict[str, torch.Tensor] | None = None) -> None:
    """Write a checkpoint atomically (temp file, fsync, rename).

    Args:
        path: destination file.
        model: the unwrapped module (not the DDP or compiled wrapper).
        optimizer: its optimiser.
        state: JSON-able dict of the training loop's state (returned as ``meta["state"]``).
        extra_tensors: further tensors to keep (e.g. RNG states), by name.
    """
    tensors = {f"model/{k}": _tensor_copy(v) for k, v in model.state_dict().items()}
    optimizer_tensors, optimizer_meta = pack_optimizer(optimizer.state_dict())
    tensors.update(prefixed("optimizer/", optimizer_tensors))
    tensors.update(prefixed("extra/", {k: _tensor_copy(v) for k, v in
                                        (extra_tensors or {}).items()}))
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "state": state,
            "optimizer": optimizer_meta}
    meta = json.loads(json.dumps(meta))  # as it reads back: tuples become lists, keys strings
    meta[_DIGEST_KEY] = _content_digest(tensors, meta)
    atomic_write_bytes(path, save_safetensors(tensors, metadata={_META_KEY: json.dumps(meta)}))


def _content_digest(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> str:
    """sha256 of the metadata (canonical JSON, without the digest itself) and of the tensors
    as safetensors serialises them without metadata (names, dtypes, shapes, bytes, in
    safetensors' own deterministic order)."""
    content = {k: v for k, v in meta.items() if k != _DIGEST_KEY}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode())
    digest.update(save_safetensors(tensors))
    return digest.hexdigest()


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint; returns ``(tensors, meta)``. Nothing is unpickled.

    Raises:
        ArchiveError: when the file is missing, truncated, corrupt or of another format.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArchiveError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    try:
        tensors = load_safetensors(data)
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + header_len])
        meta = json.loads(header["__metadata__"][_META_KEY])
        if not isinstance(meta, dict):
            raise TypeError("its metadata is not a JSON object")
        if _DIGEST_KEY in meta:
            if _content_digest(tensors, meta) != meta[_DIGEST_KEY]:
                raise ValueError("its content does not match its sha256")
        elif meta.get("format") == FORMAT and meta.get("format_version") == FORMAT_VERSION:
            raise ValueError("it has no checksum")
    except (SafetensorError, ValueError, KeyError, TypeError, RecursionError) as exc:
        detail = " ".join(str(exc).split())  # safetensors quotes header bytes verbatim
        raise ArchiveError(f"checkpoint {path} is corrupt or not a pinn checkpoint ({detail}); "
                           "delete it to start over, or resume from another copy") from None
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise ArchiveError(f"checkpoint {path} has format {meta.get('format')!r} version "
                           f"{meta.get('format_version')!r}; this pinn reads {FORMAT} "
                           f"version {FORMAT_VERSION}. Start a new run, or resume with the pinn "
                           "that wrote it")
    return tensors, meta


def restore(tensors: dict[str, torch.Tensor], meta: dict[str, Any], model: torch.nn.Module,
            optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """Load a checkpoint's weights and optimiser state in place (strictly); returns the extra
    tensors by name.

    Raises:
        ArchiveError: when the checkpoint does not fit the model or the optimiser.
    """
    load_weights(model, unprefixed("model/", tensors))
    load_optimizer(optimizer, unprefixed("optimizer/", tensors), meta.get("optimizer"))
    return unprefixed("extra/", tensors)


def load_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """``model.load_state_dict(weights, strict=True)``, failing with :class:`ArchiveError`."""
    try:
        model.load_state_dict(weights, strict=True)
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise _mismatch(exc) from None


def load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                   meta: Any) -> None:
    """Load a packed optimiser state (:func:`pack_optimizer`) in place.

    Raises:
        ArchiveError: when it is not the state of this optimiser's layout.
    """
    try:
        optimizer.load_state_dict(optimizer_state(optimizer, tensors, meta))
    except (RuntimeError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        # (TypeError, AttributeError, IndexError: metadata of another structure)
        raise _mismatch(exc) from None


def optimizer_state(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                    meta: Any) -> dict[str, Any]:
    """A packed optimiser state as a ``state_dict`` for ``optimizer``: JSON turned tuples
    (Adam's betas) into lists, and they get the optimiser's types back."""
    state = unpack_optimizer(tensors, meta)
    for saved, live in zip(state["param_groups"], optimizer.param_groups):
        for key, value in saved.items():
            if isinstance(value, list) and isinstance(live.get(key), tuple):
                saved[key] = tuple(value)
    return state


def _mismatch(exc: Exception) -> ArchiveError:
    detail = " ".join(str(exc).split())  # torch's state-dict errors span several lines
    return ArchiveError("the checkpoint does not match this model/optimizer (was it written "
                        f"with another configuration?): {detail}")


def prefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``tensors`` with ``prefix`` before every name."""
    return {prefix + k: v for k, v in tensors.items()}


def unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors whose names start with ``prefix``, without it."""
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
