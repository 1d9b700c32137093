"""The PtychoPINN network: the generators (reference CNN, U-Net, FNO) and the generator +
physics module."""

from pinn.model.generator import CNNGenerator, build_generator
from pinn.model.loss import PtychoLoss
from pinn.model.ptychopinn import (ModelOutput, PtychoPINN, build_model, coverage_window,
                                   make_generator)

__all__ = ["CNNGenerator", "ModelOutput", "PtychoLoss", "PtychoPINN", "build_generator",
           "build_model", "coverage_window", "make_generator"]
