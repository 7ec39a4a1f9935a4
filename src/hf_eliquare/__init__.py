"""hf_eliquare: distil one language out of a multilingual encoder with the Hugging Face Trainer.

The public API is the names below; everything else is importable from its module
(``hf_eliquare.vocab``, ``hf_eliquare.evaluation``, ``hf_eliquare.hub``, ``hf_eliquare.losses``, …).
See docs/architecture.md for the layout. The names are imported on first use (as transformers does), so
that ``import hf_eliquare.cli`` — every command — starts without loading models, datasets or the Trainer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_PUBLIC = {
    "DistillationTrainingArguments": ".config",
    "build_mlm_datasets": ".data",
    "ConfigurationError": ".errors",
    "DataError": ".errors",
    "EliquareError": ".errors",
    "OfflineError": ".errors",
    "OutputDirError": ".errors",
    "TrainingDivergedError": ".errors",
    "run_eval_table": ".evaluation",
    "run_finetune": ".evaluation",
    "write_model_card": ".hub.cards",
    "push_student": ".hub.publish",
    "DataCollatorForDistillation": ".masking",
    "DistillationRun": ".runs",
    "FinetuneResult": ".runs",
    "create_student": ".student",
    "DistillationTrainer": ".trainer",
    "VocabSelection": ".vocab",
    "reduce_vocab": ".vocab",
}

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


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hf_eliquare' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from .config import DistillationTrainingArguments
    from .data import build_mlm_datasets
    from .errors import (
        ConfigurationError,
        DataError,
        EliquareError,
        OfflineError,
        OutputDirError,
        TrainingDivergedError,
    )
    from .evaluation import run_eval_table, run_finetune
    from .hub.cards import write_model_card
    from .hub.publish import push_student
    from .masking import DataCollatorForDistillation
    from .runs import DistillationRun, FinetuneResult
    from .student import create_student
    from .trainer import DistillationTrainer
    from .vocab import VocabSelection, reduce_vocab
