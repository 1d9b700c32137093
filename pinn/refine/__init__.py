"""Physics refinement: object, mixed-state probe and positions fitted to the measured counts.

:func:`refine_scan` is the entry point (``pinn refine`` on the command line); the module it
trains with :mod:`pinn.engine` is :class:`Refiner`. :func:`reconstruct_and_refine` starts it
from a trained network's reconstruction (``pinn reconstruct --refine E``). See docs/DESIGN.md,
"Refinement".
"""

from pinn.refine.model import Refiner
from pinn.refine.network import (NetworkRefinement, network_refine_config,
                                 reconstruct_and_refine, refine_from_network)
from pinn.refine.run import RefineConfig, RefineResult, refine_scan

__all__ = ["NetworkRefinement", "RefineConfig", "RefineResult", "Refiner",
           "network_refine_config", "reconstruct_and_refine", "refine_from_network",
           "refine_scan"]
