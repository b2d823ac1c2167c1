"""Training: the paper's recipe, callbacks, checkpoints that resume exactly, torchrun/DDP.

>>> from squeezenet.train import TrainConfig
>>> TrainConfig().lr, TrainConfig().effective_batch
(0.04, 512)
"""
from .checkpoint import STATE_FILE, load_train_state, save_model_checkpoint
from .config import SCHEDULES, TrainConfig, lr_at
from .run import FinetuneSetup, RunResult, TrainRun, Validation
from .trainer import Callback, ShardSampler, Trainer, TrainingDiverged, default_loss

__all__ = ["TrainConfig", "Trainer", "Callback", "TrainingDiverged", "ShardSampler", "lr_at",
           "SCHEDULES", "STATE_FILE", "load_train_state", "save_model_checkpoint", "default_loss",
           "FinetuneSetup", "TrainRun", "RunResult", "Validation"]
