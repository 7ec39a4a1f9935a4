"""hf_eliquare: distil one language out of a multilingual encoder with the Hugging Face Trainer."""

__version__ = "0.1.0"

from .errors import ConfigurationError, DataError, EliquareError, OfflineError, OutputDirError, TrainingDivergedError
from .losses import cosine_loss, distillation_loss, fused_head_distillation_loss, kl_div_loss, mlm_loss
from .student import create_student, default_teacher_layers, freeze_position_embeddings

__all__ = [
    "ConfigurationError",
    "DataError",
    "EliquareError",
    "OfflineError",
    "OutputDirError",
    "TrainingDivergedError",
    "cosine_loss",
    "create_student",
    "default_teacher_layers",
    "distillation_loss",
    "freeze_position_embeddings",
    "fused_head_distillation_loss",
    "kl_div_loss",
    "mlm_loss",
]
