"""``PinnReconstructor``: pinn as a Ptychodus trainable reconstructor.

It implements Ptychodus 1.7's ``TrainableReconstructor``:

- the model file is pinn's single-file archive (``.zip``: ``config.json`` +
  ``model.safetensors``); loading validates it, saving always writes that one file;
- ``reconstruct`` converts the input (counts, bad pixels, metres) to a pinn scan, runs the
  loaded model over every scan point and yields one output (progress 1 of 1) whose object is
  the stitched reconstruction in the input object's frame, and whose probe is the trained one
  if the probe trained;
- ``export_training_data`` writes the input as a pinn NPZ scan (amplitude, pinn positions);
- ``train`` reads an exported NPZ, or a ``diffraction.h5`` + ``product.h5`` folder, trains in
  a fresh process and yields the training and validation losses after every epoch (read from
  the checkpoint pinn's training loop writes each epoch); the result is written to
  ``OUTPUT/model.zip`` and loaded, and pinn's run directory goes to ``OUTPUT/pinn-training``.

Settings are read from a :class:`PinnOptions` or a callable returning one (the library passes
the live Ptychodus settings), at the start of each call.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from ptychodus.api.product import LossValue
from ptychodus.api.reconstruct import (
    ReconstructInput,
    ReconstructOutput,
    TrainableReconstructor,
    TrainOutput,
)

from pinn.archive import Archive, load_archive, save_archive
from pinn.data import write_npz
from pinn.engine import read_history
from pinn.errors import ArchiveError, ConfigError, DataError
from pinn.fit import run_files
from pinn.interop.ptychodus import worker
from pinn.interop.ptychodus.convert import scan_from_input
from pinn.interop.ptychodus.settings import PinnOptions

__all__ = ["MODEL_EXTENSION", "RUN_DIRECTORY", "PinnReconstructor"]

logger = logging.getLogger(__name__)

MODEL_EXTENSION = ".zip"
#: pinn's run directory (checkpoints, TensorBoard, the model directory) inside ``train``'s
#: output folder.
RUN_DIRECTORY = "pinn-training"


class PinnReconstructor(TrainableReconstructor):
    """pinn as a Ptychodus ``TrainableReconstructor``.

    Args:
        options: the settings, or a callable returning them when a call starts (default:
            pinn's defaults).
        name: the name Ptychodus lists (its key is ``<library>_<name>``, lower-cased).
        isolate: run ``reconstruct`` in a fresh process too (``train`` always does). The
            library sets it, so that Ptychodus' own process never computes with torch.
    """

    def __init__(self, options: PinnOptions | Callable[[], PinnOptions] | None = None, *,
                 name: str = "PtychoPINN", isolate: bool = False) -> None:
        super().__init__()
        self._options = options if options is not None else PinnOptions()
        self._name = name
        self._isolate = isolate
        self._archive: Archive | None = None
        self._model_path: Path | None = None
        self._reconstructing = False

    @property
    def name(self) -> str:
        return self._name

    def options(self) -> PinnOptions:
        """The settings in force now.

        Raises:
            ConfigError: the settings callable returned something else, or a value is invalid.
        """
        options = self._options() if callable(self._options) else self._options
        if not isinstance(options, PinnOptions):
            raise ConfigError(f"the settings are a {type(options).__name__}, not PinnOptions")
        return options

    def get_progress_goal(self) -> int:
        """The work a call does, in the units its outputs' ``progress`` counts: 1 (one pass
        over the scan) while a reconstruction runs, else the number of training epochs."""
        if self._reconstructing:
            return 1
        return self.options().config.training.epochs

    # --- model file -----------------------------------------------------------------------

    @property
    def archive(self) -> Archive | None:
        """The loaded model archive (model on the CPU, configuration, manifest), or None."""
        return self._archive

    def is_model_loaded(self) -> bool:
        return self._archive is not None

    def get_model_file_filter(self) -> str:
        return "pinn model archives (*.zip)"

    def get_model_file_extension(self) -> str:
        return MODEL_EXTENSION

    def load_model_from_file(self, file_path: Path) -> None:
        """Load a pinn archive (the ``.zip`` file, or an archive directory) on the CPU.

        Raises:
            ArchiveError: not a readable, intact pinn archive.
        """
        path = Path(file_path)
        self._archive = load_archive(path, device="cpu")
        self._model_path = path
        logger.info("loaded pinn model %s", path)

    def save_model(self, file_path: Path) -> None:
        """Write the loaded model as one single-file ``.zip`` archive at exactly ``file_path``
        (whatever its suffix), atomically.

        Raises:
            ArchiveError: no model is loaded.
        """
        if self._archive is None:
            raise ArchiveError("no pinn model is loaded; load a model file or train one first")
        path = Path(file_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        manifest = self._archive.manifest
        provenance = {k: v for k, v in manifest.get("provenance", {}).items()
                      if k not in ("pinn_version", "torch_version")}
        if path.suffix == MODEL_EXTENSION:
            save_archive(self._archive.model, path, config=self._archive.config,
                         provenance=provenance)
            return
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=MODEL_EXTENSION,
                                    dir=path.parent)
        os.close(fd)
        try:
            save_archive(self._archive.model, temp, config=self._archive.config,
                         provenance=provenance)
            os.replace(temp, path)
        finally:
            if os.path.exists(temp):
                os.unlink(temp)

    # --- reconstruct ----------------------------------------------------------------------

    def reconstruct(self, parameters: ReconstructInput) -> Iterator[ReconstructOutput]:
        """Yield one ``ReconstructOutput`` whose product carries the stitched object (and the
        trained probe, for a model trained with ``probe_trainable``), with ``progress`` 1: the
        work done is one pass over the scan, whatever the training settings say (Ptychodus
        names the saved product after it, ``product.000001.h5``).

        Raises:
            ArchiveError: no model is loaded.
            DataError: the input cannot be converted or does not fit the model.
        """
        options = self.options()
        if self._archive is None:
            raise ArchiveError("no pinn model is loaded; load a model file (.zip) or train one "
                               "before reconstructing")
        if self._isolate:
            process, connection = worker.spawn(worker.reconstruct_product, self._model_path,
                                               parameters, options)
            try:
                _, product = worker.receive(process, connection)
            finally:
                worker.stop(process)
        else:
            product = worker.reconstruct_product(self._archive, parameters, options)
        self._reconstructing = True  # Ptychodus asks for the goal again with this output
        try:
            yield ReconstructOutput(product=product, progress=1, status=0)
        finally:
            self._reconstructing = False

    # --- training -------------------------------------------------------------------------

    def get_training_data_file_filter(self) -> str:
        return "pinn scan files (*.npz)"

    def export_training_data(self, file_path: Path, parameters: ReconstructInput) -> None:
        """Write the input as a pinn NPZ scan at exactly ``file_path``: amplitude with bad
        pixels filled, pinn positions, probe, object, ``amplitude_from_counts=True``.

        Raises:
            DataError: the input cannot be converted, or the folder does not exist.
        """
        scan = scan_from_input(parameters, fill=self.options().bad_pixels)
        write_npz(file_path, scan)

    def train(self, input_path: Path, output_path: Path) -> Iterator[TrainOutput]:
        """Train a new model; yield the losses after every epoch; load the result.

        Args:
            input_path: an NPZ scan file, or a folder with ``diffraction.h5`` + ``product.h5``
                or exactly one ``.npz`` (see :func:`worker.training_source`).
            output_path: a folder (created if missing) that receives ``model.zip`` and
                ``pinn-training/``.

        Yields:
            One ``TrainOutput`` per finished epoch, with the losses of every epoch so far
            (``LossValue`` epochs count from 1) and ``progress`` = epochs finished. The trained
            model is loaded when the generator is exhausted.

        Raises:
            DataError, ConfigError, TrainingError: from reading the data or training (raised
            here from the training process). Closing the generator early stops training
            (after the checkpoint of the running epoch is written).
        """
        options = self.options()
        input_path, output_path = worker.training_source(input_path), Path(output_path)
        if output_path.exists() and not output_path.is_dir():
            raise DataError(f"the training output {output_path} is a file; pass a folder")
        output_path.mkdir(parents=True, exist_ok=True)
        run_dir = output_path / RUN_DIRECTORY
        archive_path = output_path / f"model{MODEL_EXTENSION}"
        checkpoint = run_files(run_dir).checkpoint
        checkpoint.unlink(missing_ok=True)  # a previous run's history is not this run's
        process, connection = worker.spawn(worker.train_archive, input_path, run_dir,
                                           archive_path, options)
        reported, seen = 0, None
        try:
            while True:
                done, history = worker.receive(process, connection, timeout_s=0.5)
                if done:
                    break
                stamp = _stamp(checkpoint)
                if stamp is not None and stamp != seen:
                    seen, epochs = stamp, _history(checkpoint)
                    for count in range(reported + 1, len(epochs) + 1):
                        yield _train_output(epochs[:count])
                    reported = max(reported, len(epochs))
        finally:
            worker.stop(process)
        self.load_model_from_file(archive_path)
        for count in range(reported + 1, len(history) + 1):
            yield _train_output(history[:count])


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_size


def _history(checkpoint: Path) -> list[dict[str, float]]:
    """The per-epoch history stored in a training checkpoint ([] if it cannot be read now)."""
    try:
        return read_history(checkpoint)
    except ArchiveError:
        return []


def _train_output(history: list[dict[str, float]]) -> TrainOutput:
    training = [LossValue(epoch=int(h["epoch"]), value=float(h["train_loss"]))
                for h in history if "train_loss" in h]
    validation = [LossValue(epoch=int(h["epoch"]), value=float(h["val_loss"]))
                  for h in history if "val_loss" in h]
    return TrainOutput(training_loss=training, validation_loss=validation,
                       progress=len(history), status=0)
