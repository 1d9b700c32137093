"""The hand-written training engine: loop, checkpoints, seeding, logging and DDP.

It knows nothing about ptychography: it trains a module with a ``loss_fn(model, batch)``.
"""

from pinn.engine.checkpoint import load_checkpoint, save_checkpoint
from pinn.engine.seed import seed_everything
from pinn.engine.train import TrainingInterrupted, TrainResult, train

__all__ = ["TrainResult", "TrainingInterrupted", "load_checkpoint", "save_checkpoint",
           "seed_everything", "train"]
