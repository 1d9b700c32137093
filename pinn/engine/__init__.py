"""The hand-written training engine: loop, checkpoints and resume, seeding, logging and DDP.

It knows nothing about ptychography: it trains a module with a ``loss_fn(model, batch)`` and
logs whatever scalars that function returns. Other code reads a run through
:func:`checkpoint_file`, :func:`read_history` and :func:`read_training_state`.
"""

from pinn.engine.resume import checkpoint_file, read_history, read_training_state
from pinn.engine.seed import seed_everything
from pinn.engine.state import TrainingState
from pinn.engine.train import TrainingInterrupted, TrainResult, train

__all__ = ["TrainResult", "TrainingInterrupted", "TrainingState", "checkpoint_file",
           "read_history", "read_training_state", "seed_everything", "train"]
