"""pinn inside Ptychodus 1.7: a trainable reconstructor, its settings and a launcher.

Needs Ptychodus (``pip install "pinn[ptychodus]"``). ``pinn-ptychodus`` starts Ptychodus with
the ``PINN`` library installed (:mod:`.launcher`); select ``pinn_ptychopinn`` as the algorithm.
:class:`PinnReconstructor` implements Ptychodus' ``TrainableReconstructor`` (:mod:`.reconstructor`);
:mod:`.convert`, :mod:`.counts` and :mod:`.geometry` convert data between the two;
:mod:`.refinement` refines a reconstruction and returns its object, probe modes and positions.
"""

try:
    import ptychodus.api.reconstruct  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a process without Ptychodus
    raise ImportError("pinn.interop.ptychodus needs Ptychodus 1.7: pip install "
                      f"\"pinn[ptychodus]\" ({exc})") from exc

from pinn.interop.ptychodus.convert import (
    object_frame,
    product_from_reconstruction,
    product_from_scan,
    read_input_folder,
    scan_from_input,
    write_input_folder,
)
from pinn.interop.ptychodus.counts import counts_to_amplitude
from pinn.interop.ptychodus.geometry import ObjectFrame, positions_from_pinn, positions_to_pinn
from pinn.interop.ptychodus.launcher import install
from pinn.interop.ptychodus.library import ALGORITHM, PinnLibrary
from pinn.interop.ptychodus.reconstructor import PinnReconstructor
from pinn.interop.ptychodus.refinement import product_from_refinement
from pinn.interop.ptychodus.settings import PinnOptions, PinnSettings

__all__ = [
    "ALGORITHM",
    "ObjectFrame",
    "PinnLibrary",
    "PinnOptions",
    "PinnReconstructor",
    "PinnSettings",
    "counts_to_amplitude",
    "install",
    "object_frame",
    "positions_from_pinn",
    "positions_to_pinn",
    "product_from_reconstruction",
    "product_from_refinement",
    "product_from_scan",
    "read_input_folder",
    "scan_from_input",
    "write_input_folder",
]
