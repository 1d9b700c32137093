"""The work behind :class:`PinnReconstructor`, and running it in a fresh process.

The functions here do the actual reading, training and reconstructing on plain arguments.
:func:`spawn` runs one of them in a new ``spawn``-started process so that Ptychodus' own
process never runs torch compute or touches a GPU (Ptychodus runs its other machine-learning
back ends the same way) and so that a training run can be stopped cleanly: ``SIGTERM`` makes
pinn's training loop write its checkpoint and stop, which it can only do in a main thread.
The child sends back one message, ``("ok", result)`` or ``("error", (type name, text))``;
the parent re-raises a known exception type by name (pinn's own and a few built-ins), anything
else as a RuntimeError, so no exception object is ever unpickled. Before it, the child sends
its log records as ``("log", fields)`` (at the parent's level), and the parent hands each to
its own logger of that name, so they appear as Ptychodus configured logging (its format, its
handlers) rather than as bare text on the child's stderr.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ptychodus.api.io import StandardFileLayout
from ptychodus.api.product import Product
from ptychodus.api.reconstruct import ReconstructInput

from pinn.archive import Archive, load_archive, read_manifest, save_archive
from pinn.data import ScanData, load_scan
from pinn.engine import TrainingInterrupted
from pinn.errors import ArchiveError, ConfigError, DataError, PinnError, TrainingError
from pinn.fit import train_scan
from pinn.interop.ptychodus.convert import (
    probe_to_product_units,
    product_from_reconstruction,
    read_input_folder,
    scan_from_input,
)
from pinn.interop.ptychodus.settings import PinnOptions
from pinn.reconstruct import reconstruct

__all__ = ["load_training_scan", "receive", "reconstruct_product", "spawn", "stop",
           "train_archive", "training_source"]

#: Seconds a stopped child gets to write its checkpoint before it is killed.
STOP_GRACE_S = 30.0


def training_source(path: str | os.PathLike) -> Path:
    """The file or Ptychodus folder that training reads at ``path``, checked without reading
    the data: a scan file as is (an NPZ exported by
    :meth:`PinnReconstructor.export_training_data`, or any file ``pinn train`` reads); a folder
    holding ``diffraction.h5`` + ``product.h5`` (Ptychodus' batch layout) as is; a folder
    holding exactly one ``.npz`` file: that file.

    Raises:
        DataError: nothing usable at ``path``.
    """
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise DataError(f"no training data at {path}; pass an .npz scan file or a folder with "
                        f"{StandardFileLayout.DIFFRACTION} and {StandardFileLayout.PRODUCT}")
    if (path / StandardFileLayout.DIFFRACTION).is_file() \
            or (path / StandardFileLayout.PRODUCT).is_file():
        return path
    scans = sorted(path.glob("*.npz"))
    if len(scans) != 1:
        raise DataError(f"{path} holds {len(scans)} .npz files and no "
                        f"{StandardFileLayout.DIFFRACTION} + {StandardFileLayout.PRODUCT}; put "
                        "exactly one exported .npz scan or the two Ptychodus files there")
    return scans[0]


def load_training_scan(path: str | os.PathLike, *, fill: str = "neighbors") -> ScanData:
    """Training data as a pinn scan, from what :func:`training_source` finds at ``path``
    (bad pixels of a Ptychodus folder filled by ``fill``).

    Raises:
        DataError: nothing usable at ``path``, or the data fail pinn's checks.
    """
    source = training_source(path)
    if source.is_dir():
        return scan_from_input(read_input_folder(source), fill=fill)
    return load_scan(source)


def train_archive(input_path: Path, run_dir: Path, archive_path: Path,
                  options: PinnOptions) -> list[dict[str, float]]:
    """Train on the data at ``input_path`` and write the single-file archive
    ``archive_path`` (``.zip``). ``run_dir`` receives pinn's run layout (``model/``,
    ``checkpoints/last.safetensors`` written every epoch, ``tb/``). Returns the per-epoch
    history (dicts with ``epoch``, ``train_loss``, ``val_loss``...).

    Raises:
        DataError: unusable training data; ConfigError: a pattern size the network does not
        support or invalid options; TrainingError, TrainingInterrupted: from training.
    """
    source = training_source(input_path)
    scan = load_training_scan(source, fill=options.bad_pixels)
    config = replace(options.config, model=replace(options.config.model, size_px=scan.N))
    data_path = source if source.is_file() else None
    result = train_scan(scan, config, run_dir, overwrite=True, device=options.train_device,
                        data_path=data_path, verbose=options.verbose)
    provenance = {k: v for k, v in read_manifest(result.archive)["provenance"].items()
                  if k not in ("pinn_version", "torch_version")}
    save_archive(result.model, archive_path, config=config,
                 provenance={**provenance, "trained_by": "pinn.interop.ptychodus",
                             "training_data": str(source)})
    return result.history


def reconstruct_product(archive: Archive | str | os.PathLike, inp: ReconstructInput,
                        options: PinnOptions) -> Product:
    """Reconstruct the scan of ``inp`` with a loaded archive (or the archive at that path) and
    return the input product with the stitched object (:func:`product_from_reconstruction`),
    or, when ``options.refine`` is set, with the refined object, probe modes and positions
    (:func:`pinn.interop.ptychodus.refinement.refine_product`).
    Groups are formed with the archive's own ``neighbors`` and ``grouping_seed``, as
    ``pinn reconstruct`` and :func:`pinn.reconstruct.reconstruct` do. A model trained with
    ``probe_trainable`` returns its trained probe (all its modes), in the input probe's units
    (:func:`probe_to_product_units`); otherwise the product keeps the input probe.

    Raises:
        DataError: the patterns are not the model's N x N, or the input fails conversion.
        ArchiveError: the archive cannot be loaded.
    """
    if not isinstance(archive, Archive):
        archive = load_archive(archive)
    size = archive.model.size
    scan = scan_from_input(inp, fill=options.bad_pixels)
    if scan.N != size:
        raise DataError(f"the patterns are {scan.N} x {scan.N} but the loaded model was trained "
                        f"on {size} x {size}; crop the detector to {size} "
                        "in Ptychodus or train a model on this size")
    # a refinement starts, as pinn reconstruct --refine does, from the stitched object without
    # the model's passes over the scan (docs/DESIGN.md §11.4)
    result = reconstruct(archive, scan, batch_size=options.infer_batch_size,
                         crop_px=options.crop_px, device=options.infer_device, progress=False,
                         projection_passes=0 if options.refine is not None else None)
    if options.refine is not None:
        from pinn.interop.ptychodus.refinement import refine_product

        return refine_product(archive, scan, result, inp.product, options.refine,
                              device=options.infer_device)
    probe = None
    if archive.config.model.probe_trainable:
        probe = probe_to_product_units(archive.model.probe, inp.product, archive.config.model)
    return product_from_reconstruction(inp.product, result, probe)


def spawn(function: Callable[..., Any], *args: Any) -> tuple[multiprocessing.Process,
                                                              Connection]:
    """Start ``function(*args)`` (a module-level function of this module) in a new
    ``spawn``-started daemon process; returns the process and the connection on which its one
    ``("ok", result)`` or ``("error", exception)`` message arrives."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    level = logging.getLogger().getEffectiveLevel()
    process = context.Process(target=_child_main, args=(function.__name__, args, sender, level),
                              name=f"pinn-{function.__name__}", daemon=True)
    process.start()
    sender.close()
    return process, receiver


def receive(process: multiprocessing.Process, connection: Connection,
            timeout_s: float | None = None) -> tuple[bool, Any]:
    """Wait for the child's message: ``(True, result)`` once it arrived, ``(False, None)``
    if ``timeout_s`` passed first (None: wait until it arrives). A child's exception is
    raised here.

    Raises:
        TrainingError: the child died without a message (killed, out of memory...).
    """
    wait_s = 0.5 if timeout_s is None else timeout_s
    while True:
        if not connection.poll(wait_s):
            if not process.is_alive() and not connection.poll(0):
                raise _died(process)
            if timeout_s is not None:
                return False, None
            continue
        try:
            kind, value = connection.recv()
        except EOFError:
            raise _died(process) from None
        if kind == "log":
            _relay(value)
            if timeout_s is not None:
                wait_s = 0.0  # hand on what has arrived, then return
            continue
        if kind == "error":
            raise _rebuild(*value)
        return True, value


def _relay(fields: dict[str, Any]) -> None:
    """Hand a child's log record to this process's logger of the same name."""
    record = logging.makeLogRecord(fields)
    target = logging.getLogger(record.name)
    if target.isEnabledFor(record.levelno):
        target.handle(record)


def _died(process: multiprocessing.Process) -> TrainingError:
    process.join(5)
    return TrainingError(f"the pinn worker process died (exit code {process.exitcode}) "
                         "without a result; see its output above")


def stop(process: multiprocessing.Process, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM the child if it still runs, give it ``grace_s`` to finish, then kill it."""
    if process.is_alive():
        process.terminate()
        process.join(grace_s)
    if process.is_alive():
        process.kill()
    process.join()


class _PipeHandler(logging.Handler):
    """Sends each log record to the parent as ``("log", fields)``: plain fields only (the
    message already formatted with its arguments), so nothing but built-ins is pickled."""

    def __init__(self, sender: Connection) -> None:
        super().__init__()
        self.sender = sender

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.exc_info:
            message = f"{message}\n{logging.Formatter().formatException(record.exc_info)}"
        fields = {"name": record.name, "levelno": record.levelno,
                  "levelname": record.levelname, "msg": message, "created": record.created,
                  "msecs": record.msecs, "pathname": record.pathname,
                  "lineno": record.lineno, "funcName": record.funcName,
                  "process": record.process, "processName": record.processName,
                  "threadName": record.threadName}
        try:
            self.sender.send(("log", fields))
        except OSError:  # the parent is gone; nobody is left to read it
            pass


def _child_main(name: str, args: tuple[Any, ...], sender: Connection, level: int) -> None:
    handler = _PipeHandler(sender)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    try:
        message = ("ok", globals()[name](*args))
    except BaseException as exc:  # noqa: BLE001 - the parent re-raises it
        if not isinstance(exc, PinnError):
            traceback.print_exc(file=sys.stderr)
        message = ("error", (type(exc).__name__, str(exc)))
    with handler.lock, contextlib.suppress(OSError):  # not inside a log record's send
        sender.send(message)
        sender.close()


# Exception types re-raised by name in the parent; others arrive as RuntimeError.
_KNOWN_ERRORS = {cls.__name__: cls for cls in (
    PinnError, DataError, ConfigError, ArchiveError, TrainingError, TrainingInterrupted,
    ValueError, TypeError, RuntimeError, OSError, MemoryError, KeyboardInterrupt)}


def _rebuild(name: str, text: str) -> BaseException:
    """The parent's copy of a child's exception, from its type name and text."""
    cls = _KNOWN_ERRORS.get(name)
    return cls(text) if cls is not None else RuntimeError(f"{name}: {text}")
