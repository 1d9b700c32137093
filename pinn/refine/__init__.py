"""Physics refinement: object, mixed-state probe and positions fitted to the measured counts.

:func:`refine_scan` is the entry point (``pinn refine`` on the command line); the module it
trains with :mod:`pinn.engine` is :class:`Refiner`. See docs/DESIGN.md, "Refinement".
"""

from pinn.refine.model import Refiner
from pinn.refine.run import RefineConfig, RefineResult, refine_scan

__all__ = ["RefineConfig", "RefineResult", "Refiner", "refine_scan"]
