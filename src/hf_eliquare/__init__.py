"""hf_eliquare: distil one language out of a multilingual encoder with the Hugging Face Trainer.

The public API is the names below; everything else is importable from its module
(``hf_eliquare.vocab``, ``hf_eliquare.evaluation``, ``hf_eliquare.hub``, ``hf_eliquare.losses``, …).
See docs/architecture.md for the layout.
"""

__version__ = "0.1.0"

from .config import DistillationTrainingArguments
from .data import build_mlm_datasets
from .errors import ConfigurationError, DataError, EliquareError, OfflineError, OutputDirError, TrainingDivergedError
from .evaluation import run_eval_table, run_finetune
from .hub.cards import write_model_card
from .hub.publish import push_student
from .masking import DataCollatorForDistillation
from .runs import DistillationRun, FinetuneResult
from .student import create_student
from .trainer import DistillationTrainer
from .vocab import VocabSelection, reduce_vocab

__all__ = [
    "ConfigurationError",
    "DataCollatorForDistillation",
    "DataError",
    "DistillationRun",
    "DistillationTrainer",
    "DistillationTrainingArguments",
    "EliquareError",
    "FinetuneResult",
    "OfflineError",
    "OutputDirError",
    "TrainingDivergedError",
    "VocabSelection",
    "build_mlm_datasets",
    "create_student",
    "push_student",
    "reduce_vocab",
    "run_eval_table",
    "run_finetune",
    "write_model_card",
]
