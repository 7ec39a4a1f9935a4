"""hf_eliquare: distil one language out of a multilingual encoder with the Hugging Face Trainer.

from hf_eliquare import DistillationTrainer, DistillationTrainingArguments, create_student
"""

__version__ = "0.1.0"

from .cards import StudentCardInfo, validate_card_locally, write_model_card, write_student_card
from .config import DistillationTrainingArguments
from .data import build_mlm_datasets, split_sentences, token_counts
from .errors import ConfigurationError, DataError, EliquareError, OfflineError, OutputDirError, TrainingDivergedError
from .finetune import (
    FinetuneDataArguments,
    FinetuneModelArguments,
    FinetuneTrainingArguments,
    format_table4,
    read_classification,
    read_conll,
    read_conllu,
    run_eval_table,
    run_finetune,
)
from .languages import LANGUAGES, Language, get_language
from .losses import cosine_loss, distillation_loss, fused_head_distillation_loss, kl_div_loss, mlm_loss
from .masking import DataCollatorForDistillation, mlm_token_probs
from .metrics import classification_metrics, ner_metrics, pos_metrics
from .publish import preflight_push, push_student, stage_upload
from .student import create_student, default_teacher_layers, freeze_position_embeddings
from .tasks import TASKS, Task, get_task
from .trainer import DistillationTrainer
from .vocab import (
    count_sentence_occurrences,
    reduce_model_vocab,
    reduce_tokenizer,
    reduce_vocab,
    reduce_vocab_with_counts,
    select_vocabulary,
)

__all__ = [
    "LANGUAGES",
    "TASKS",
    "build_mlm_datasets",
    "classification_metrics",
    "ConfigurationError",
    "cosine_loss",
    "count_sentence_occurrences",
    "create_student",
    "DataCollatorForDistillation",
    "DataError",
    "default_teacher_layers",
    "distillation_loss",
    "DistillationTrainer",
    "DistillationTrainingArguments",
    "EliquareError",
    "FinetuneDataArguments",
    "FinetuneModelArguments",
    "FinetuneTrainingArguments",
    "format_table4",
    "freeze_position_embeddings",
    "fused_head_distillation_loss",
    "get_language",
    "get_task",
    "kl_div_loss",
    "Language",
    "mlm_loss",
    "mlm_token_probs",
    "ner_metrics",
    "OfflineError",
    "OutputDirError",
    "pos_metrics",
    "preflight_push",
    "push_student",
    "read_classification",
    "read_conll",
    "read_conllu",
    "reduce_model_vocab",
    "reduce_tokenizer",
    "reduce_vocab",
    "reduce_vocab_with_counts",
    "run_eval_table",
    "run_finetune",
    "select_vocabulary",
    "split_sentences",
    "stage_upload",
    "StudentCardInfo",
    "Task",
    "token_counts",
    "TrainingDivergedError",
    "validate_card_locally",
    "write_model_card",
    "write_student_card",
]
