"""pinn: PtychoPINN in pure PyTorch.

The public API, imported lazily (``import pinn`` does not import torch until a name is used,
so the ``pinn`` command can configure OpenMP first)::

    scan = pinn.simulate("lines", n_scans=400, zoom=3, scan="raster")
    fit = pinn.train_scan(scan, pinn.Config(), "run")
    model = pinn.load_archive("run/model").model
    refined = pinn.refine_scan(scan, pinn.RefineConfig(probe_modes=3))   # physics refinement

The stitching and evaluation functions share their modules' names, so they are imported from
them: ``from pinn.reconstruct import reconstruct``, ``from pinn.evaluate import evaluate``.

Submodules: :mod:`pinn.ops` (physics), :mod:`pinn.data`, :mod:`pinn.model`,
:mod:`pinn.engine`, :mod:`pinn.metrics`, :mod:`pinn.archive`, :mod:`pinn.reconstruct`,
:mod:`pinn.refine`.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Config": "pinn.config",
    "DataConfig": "pinn.config",
    "ModelConfig": "pinn.config",
    "PtychoPINN": "pinn.model",
    "ScanData": "pinn.data",
    "TrainingConfig": "pinn.config",
    "Reconstruction": "pinn.reconstruct",
    "RefineConfig": "pinn.refine",
    "build_model": "pinn.model",
    "load_archive": "pinn.archive",
    "load_scan": "pinn.data",
    "read_npz": "pinn.data",
    "reconstruct_and_refine": "pinn.refine",
    "refine_scan": "pinn.refine",
    "save_archive": "pinn.archive",
    "simulate": "pinn.data",
    "train_scan": "pinn.fit",
    "write_npz": "pinn.data",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pinn' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
