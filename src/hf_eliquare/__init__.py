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
from .student import create_student, default_teacher_layers, freeze_position_embeddings
from .publish import preflight_push, push_student, stage_upload
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
    "TASKS",
    "FinetuneDataArguments",
    "FinetuneModelArguments",
    "FinetuneTrainingArguments",
    "Task",
    "classification_metrics",
    "format_table4",
    "get_task",
    "ner_metrics",
    "pos_metrics",
    "read_classification",
    "read_conll",
    "read_conllu",
    "run_eval_table",
    "run_finetune",
    "StudentCardInfo",
    "count_sentence_occurrences",
    "preflight_push",
    "push_student",
    "reduce_model_vocab",
    "reduce_tokenizer",
    "reduce_vocab",
    "reduce_vocab_with_counts",
    "select_vocabulary",
    "stage_upload",
    "validate_card_locally",
    "write_model_card",
    "write_student_card",
    "LANGUAGES",
    "ConfigurationError",
    "DataCollatorForDistillation",
    "DataError",
    "DistillationTrainer",
    "DistillationTrainingArguments",
    "EliquareError",
    "Language",
    "OfflineError",
    "OutputDirError",
    "TrainingDivergedError",
    "build_mlm_datasets",
    "cosine_loss",
    "create_student",
    "default_teacher_layers",
    "distillation_loss",
    "freeze_position_embeddings",
    "fused_head_distillation_loss",
    "get_language",
    "kl_div_loss",
    "mlm_loss",
    "mlm_token_probs",
    "split_sentences",
    "token_counts",
]
