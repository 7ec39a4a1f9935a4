"""The end-to-end distillation job behind ``examples/run_distill.py``.

teacher + tokenizer → corpus → sequences → (vocabulary reduction) → 2n−1 student → masking collator
→ :class:`DistillationTrainer` → best student saved (safetensors), with tokenizer, run summary and card.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import time
from dataclasses import dataclass, field

import torch
from transformers import AutoTokenizer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ._io import MODEL_MARKER_FILES, atomic_output_dir
from .config import DistillationTrainingArguments
from .data import load_sentence_splits, token_counts, tokenize_splits
from .errors import ConfigurationError, OutputDirError
from .hub import resolve_pretrained
from .languages import LANGUAGES, Language, get_language
from .masking import DataCollatorForDistillation, mlm_token_probs
from .student import (
    add_pooler_to_saved_model,
    check_supported,
    create_student,
    default_teacher_layers,
    freeze_position_embeddings,
    is_roberta_like,
    load_masked_lm,
    read_pooler_weights,
    validate_teacher_layers,
)
from .trainer import DistillationTrainer

logger = logging.getLogger(__name__)

_CHECKPOINT = re.compile(rf"{PREFIX_CHECKPOINT_DIR}-(\d+)")


@dataclass
class ModelArguments:
    """Which teacher to distil and what the student looks like."""

    teacher_model_name_or_path: str = field(
        default="bert-base-multilingual-cased",
        metadata={"help": "Teacher: a Hub id or a local directory of a *ForMaskedLM model (BERT, RoBERTa, XLM-R)."},
    )
    tokenizer_name: str | None = field(default=None, metadata={"help": "Tokenizer, if not the teacher's."})
    num_student_layers: int = field(default=6, metadata={"help": "Encoder layers of the student."})
    student_layers: list[int] | None = field(
        default=None,
        metadata={"help": "0-based teacher layers to copy, increasing (default: every other layer from the first)."},
    )
    freeze_position_embeddings: bool | None = field(
        default=None,
        metadata={"help": "Freeze the student's position embeddings (default: yes for RoBERTa/XLM-R, as the paper)."},
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where to cache Hub downloads."})


@dataclass
class DataArguments:
    """The target-language corpus."""

    lang: str | None = field(default=None, metadata={"help": "Target language code (e.g. sl, sw, fr, nl, he, hi)."})
    train_file: list[str] | None = field(
        default=None, metadata={"help": "Local text file(s), plain or .gz, one paragraph or sentence per line."}
    )
    wikipedia_config: str | None = field(
        default=None, metadata={"help": "wikimedia/wikipedia config (default for --lang xx: 20231101.xx)."}
    )
    text_column: str = field(default="text", metadata={"help": "Text column of the corpus."})
    max_seq_length: int = field(default=512, metadata={"help": "Longer sentences are cut into several sequences."})
    min_seq_length: int = field(
        default=12, metadata={"help": "Sequences with fewer tokens ([CLS]/[SEP] included) are dropped (DistilBERT)."}
    )
    validation_split: float = field(default=0.1, metadata={"help": "Share held out for validation (paper: 0.1)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Truncate the training set (debugging)."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Truncate the validation set."})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for datasets.map."})
    vocab_reduction: str = field(
        default="none",
        metadata={
            "help": "Reduce the vocabulary to the language: 'pre' (the teacher, before distillation: faster), "
            "'post' (the best student, after) or 'none'.",
            "choices": ["none", "pre", "post"],
        },
    )
    min_sentence_fraction: float = field(
        default=0.0005,
        metadata={"help": "VocabReduce: keep sub-words present in at least this share of training sentences."},
    )
    max_vocab_size: int | None = field(
        default=None,
        metadata={
            "help": "VocabReduce: instead of --min_sentence_fraction, keep the N most frequent sub-words (special "
            "tokens included). Read literally, 0.05%% of the sentences keeps ~3.3k mBERT tokens for sl; the paper's "
            "66 M-parameter student needs ~29k (see docs/vocab.md)."
        },
    )
    hub_dry_run: str | None = field(
        default=None,
        metadata={"help": "Stage exactly the files a Hub push would upload into this (new) folder, and list them."},
    )

    def __post_init__(self):
        if self.vocab_reduction not in ("none", "pre", "post"):
            raise ConfigurationError(f"--vocab_reduction must be none, pre or post, got {self.vocab_reduction!r}.")
        if not 0.0 < self.min_sentence_fraction <= 1.0:
            raise ConfigurationError(
                f"--min_sentence_fraction must be in (0, 1], got {self.min_sentence_fraction} (the paper: 0.0005)."
            )
        if self.max_vocab_size is not None and self.max_vocab_size < 1:
            raise ConfigurationError(
                f"--max_vocab_size must be a positive number of tokens, got {self.max_vocab_size}."
            )
        if self.max_seq_length < 3:
            raise ConfigurationError(f"--max_seq_length must be at least 3, got {self.max_seq_length}.")


def resolve_language(data_args: DataArguments) -> Language:
    """The language of the run; any code is fine when the corpus is given explicitly."""
    if data_args.lang is None:
        if not data_args.train_file:
            raise ConfigurationError(
                f"Say which language to distil with --lang (known: {', '.join(sorted(LANGUAGES))}), "
                "or give local text with --train_file."
            )
        return Language("und", "undetermined")
    if data_args.train_file or data_args.wikipedia_config:
        return LANGUAGES.get(data_args.lang, Language(data_args.lang, data_args.lang))
    return get_language(data_args.lang)


def check_output_dir(training_args: DistillationTrainingArguments) -> str | None:
    """Refuse to overwrite a finished model; return the checkpoint to resume from, if any."""
    out = training_args.output_dir
    finished = all(os.path.isfile(os.path.join(out, f)) for f in MODEL_MARKER_FILES)
    if finished and not training_args.overwrite_output_dir:
        raise OutputDirError(
            f"{out!r} already holds a finished model. Choose another --output_dir, or pass "
            "--overwrite_output_dir to replace it."
        )
    if training_args.resume_from_checkpoint:
        return training_args.resume_from_checkpoint
    if os.path.isdir(out) and not training_args.overwrite_output_dir:
        last = last_complete_checkpoint(out)
        if last is not None:
            logger.info("Resuming from the last checkpoint in the output directory: %s", last)
        return last
    return None


def last_complete_checkpoint(output_dir: str) -> str | None:
    """The newest ``checkpoint-N`` in ``output_dir`` that was written completely.

    The Trainer writes a checkpoint in place and ``trainer_state.json`` last, so a run killed while
    saving leaves a newer, incomplete checkpoint; resuming from it would fail or silently restart the
    schedule. Such checkpoints are skipped with a warning.
    """
    steps = []
    for name in os.listdir(output_dir):
        match = _CHECKPOINT.fullmatch(name)
        if match and os.path.isdir(os.path.join(output_dir, name)):
            steps.append((int(match.group(1)), name))
    for _, name in sorted(steps, reverse=True):
        path = os.path.join(output_dir, name)
        if os.path.isfile(os.path.join(path, "trainer_state.json")):
            return path
        logger.warning("Skipping %s: it was not written completely (no trainer_state.json).", path)
    return None


def load_teacher_and_tokenizer(model_args: ModelArguments):
    teacher_path = resolve_pretrained(model_args.teacher_model_name_or_path, "teacher model")
    tokenizer_path = (
        resolve_pretrained(model_args.tokenizer_name, "tokenizer") if model_args.tokenizer_name else teacher_path
    )
    # The architecture and the MLM head are checked first: a wrong model is the likelier mistake.
    teacher = load_masked_lm(teacher_path, "teacher", cache_dir=model_args.cache_dir)
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_path, cache_dir=model_args.cache_dir)
    except (OSError, ValueError, TypeError) as err:
        raise ConfigurationError(
            f"No usable tokenizer in {tokenizer_path!r} ({type(err).__name__}: {str(err).splitlines()[0][:200]}). "
            "Save the teacher's tokenizer there, or pass it with --tokenizer_name."
        ) from None
    check_supported(teacher, "teacher")
    if len(tokenizer) > teacher.config.vocab_size:
        raise ConfigurationError(
            f"The tokenizer has {len(tokenizer)} tokens but the teacher's vocabulary has "
            f"{teacher.config.vocab_size}: they do not belong together. Use the teacher's own tokenizer."
        )
    return teacher, tokenizer


def check_max_seq_length(teacher, tokenizer, max_seq_length: int) -> None:
    limit = teacher.config.max_position_embeddings
    if is_roberta_like(teacher):
        limit -= (tokenizer.pad_token_id or 1) + 1  # RoBERTa positions start after the padding index
    if max_seq_length > limit:
        raise ConfigurationError(
            f"--max_seq_length {max_seq_length} is longer than the teacher's position embeddings allow ({limit}). "
            f"Use --max_seq_length {limit} or less."
        )


def check_student_layers(teacher, model_args: ModelArguments) -> None:
    """Validate ``--num_student_layers`` / ``--student_layers`` against the teacher's depth."""
    depth = teacher.config.num_hidden_layers
    if model_args.student_layers is not None:
        validate_teacher_layers(model_args.student_layers, depth)
    else:
        default_teacher_layers(depth, model_args.num_student_layers)


def _hardware(training_args) -> str:
    if torch.cuda.is_available():
        return f"{training_args.world_size} × {torch.cuda.get_device_name(0)}"
    return f"{training_args.world_size} process(es) on CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def _preflight_publishing(data_args: DataArguments, training_args: DistillationTrainingArguments):
    """Check a requested push / dry run before any work; return ``(push, private, token)``."""
    from .publish import preflight_dry_run, preflight_push

    push = bool(training_args.push_to_hub)
    private = True if training_args.hub_private_repo is None else bool(training_args.hub_private_repo)
    token = None
    if push:
        token = preflight_push(training_args.hub_model_id, token=training_args.hub_token, private=private)
    if data_args.hub_dry_run:
        preflight_dry_run(data_args.hub_dry_run, training_args.output_dir)
    # The student is pushed once, at the end, with its card; not every checkpoint by the Trainer.
    training_args.push_to_hub = False
    return push, private, token


def _reduce(model, tokenizer, sentence_counts, data_args: DataArguments, what: str):
    from .vocab import reduce_vocab_with_counts

    counts, num_sentences = sentence_counts
    before_vocab, before_params = model.config.vocab_size, model.num_parameters()
    model, tokenizer = reduce_vocab_with_counts(
        model,
        tokenizer,
        counts,
        num_sentences,
        min_sentence_fraction=data_args.min_sentence_fraction,
        max_vocab_size=data_args.max_vocab_size,
    )
    logger.info(
        "VocabReduce (%s): vocabulary %d → %d, parameters %d → %d",
        what,
        before_vocab,
        model.config.vocab_size,
        before_params,
        model.num_parameters(),
    )
    return model, tokenizer


def run_distillation(
    model_args: ModelArguments, data_args: DataArguments, training_args: DistillationTrainingArguments
):
    """Run the whole job; returns the trainer (its ``model`` is the best student)."""
    language = resolve_language(data_args)
    resume_from = check_output_dir(training_args)
    push, private, hub_token = _preflight_publishing(data_args, training_args)
    teacher, tokenizer = load_teacher_and_tokenizer(model_args)
    check_max_seq_length(teacher, tokenizer, data_args.max_seq_length)
    check_student_layers(teacher, model_args)  # before any corpus work: a typo should cost seconds
    teacher_parameters = teacher.num_parameters()
    # *ForMaskedLM has no pooler; the checkpoint's trained one is carried into the saved student.
    teacher_pooler = read_pooler_weights(resolve_pretrained(model_args.teacher_model_name_or_path, "teacher model"))

    wikipedia_config = data_args.wikipedia_config
    if not data_args.train_file and wikipedia_config is None:
        wikipedia_config = language.wikipedia_config
    with training_args.main_process_first(desc="corpus preparation"):
        sentences = load_sentence_splits(
            train_files=data_args.train_file,
            wikipedia_config=wikipedia_config,
            text_column=data_args.text_column,
            validation_split=data_args.validation_split,
            seed=training_args.seed,
            num_proc=data_args.preprocessing_num_workers,
            cache_dir=model_args.cache_dir,
        )
        sentence_counts = None
        if data_args.vocab_reduction != "none":
            from .vocab import count_sentence_occurrences

            # Document frequencies over the training sentences (the paper: ≥ 0.05% of the sentences).
            sentence_counts = count_sentence_occurrences(
                tokenizer, sentences["train"], num_proc=data_args.preprocessing_num_workers
            )
        if data_args.vocab_reduction == "pre":
            teacher, tokenizer = _reduce(teacher, tokenizer, sentence_counts, data_args, "pre-distillation, teacher")
        datasets = tokenize_splits(
            sentences,
            tokenizer,
            max_seq_length=data_args.max_seq_length,
            min_seq_length=data_args.min_seq_length,
            max_train_samples=data_args.max_train_samples,
            max_eval_samples=data_args.max_eval_samples,
            num_proc=data_args.preprocessing_num_workers,
        )
    train_dataset, eval_dataset = datasets["train"], datasets["validation"]
    logger.info(
        "Sentences: %d train, %d validation → sequences: %d train, %d validation",
        len(sentences["train"]),
        len(sentences["validation"]),
        len(train_dataset),
        len(eval_dataset),
    )

    counts = token_counts(train_dataset, teacher.config.vocab_size)
    student = create_student(teacher, num_layers=model_args.num_student_layers, layers=model_args.student_layers)
    freeze = model_args.freeze_position_embeddings
    if freeze is None:
        freeze = is_roberta_like(student)
    if freeze:
        freeze_position_embeddings(student)
    logger.info(
        "Teacher: %d layers, %d parameters; student: %d layers (teacher layers %s), %d parameters",
        teacher.config.num_hidden_layers,
        teacher.num_parameters(),
        student.config.num_hidden_layers,
        student.config.eliquare["teacher_layers"],
        student.num_parameters(),
    )

    collator = DataCollatorForDistillation(
        tokenizer=tokenizer,
        token_probs=mlm_token_probs(counts, tokenizer.all_special_ids, smoothing=training_args.mlm_smoothing),
        mlm_probability=training_args.mlm_probability,
        mask_replace_prob=training_args.mask_replace_prob,
        random_replace_prob=training_args.random_replace_prob,
        seed=training_args.seed,
    )
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=training_args,
        data_collator=collator,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
    )
    started = time.time()
    train_result = trainer.train(resume_from_checkpoint=resume_from)
    runtime = time.time() - started
    metrics = dict(train_result.metrics)
    metrics.update(trainer.evaluate())
    trainer.log_metrics("train", metrics)

    if trainer.is_world_process_zero():
        best_student, final_tokenizer = trainer.model, tokenizer
        if data_args.vocab_reduction == "post":
            best_student, final_tokenizer = _reduce(
                best_student, tokenizer, sentence_counts, data_args, "post-distillation, student"
            )
        summary = {
            "lang": language.code,
            "language_name": language.name,
            "teacher": model_args.teacher_model_name_or_path,
            "alpha_ce": training_args.alpha_ce,
            "alpha_mlm": training_args.alpha_mlm,
            "alpha_cos": training_args.alpha_cos,
            "temperature": training_args.temperature,
            "restrict_ce_to_mask": training_args.restrict_ce_to_mask,
            "mlm_probability": training_args.mlm_probability,
            "mlm_smoothing": training_args.mlm_smoothing,
            "dataset": (
                ", ".join(os.path.basename(f) for f in data_args.train_file)
                if data_args.train_file
                else f"wikimedia/wikipedia:{wikipedia_config}"
            ),
            "train_sentences": len(sentences["train"]),
            "train_sequences": len(train_dataset),
            "validation_sequences": len(eval_dataset),
            "train_tokens": int(counts.sum()),
            "vocab_reduction_stage": data_args.vocab_reduction,  # sizes are in config.json (eliquare.vocab_reduction)
            "num_train_epochs": training_args.num_train_epochs,
            "global_steps": trainer.state.global_step,
            "per_device_train_batch_size": training_args.per_device_train_batch_size,
            "gradient_accumulation_steps": training_args.gradient_accumulation_steps,
            "global_batch_size": training_args.global_batch_size,
            "train_sampling_strategy": training_args.train_sampling_strategy,
            "pooler_from_teacher": bool(teacher_pooler),
            "learning_rate": training_args.learning_rate,
            "num_processes": training_args.world_size,
            "precision": "bf16" if training_args.bf16 else "fp16" if training_args.fp16 else "fp32",
            "hardware": _hardware(training_args),
            "train_runtime_s": round(runtime, 1),
            "best_eval_loss": trainer.state.best_metric,
            "best_checkpoint": trainer.state.best_model_checkpoint,
            "student_parameters": best_student.num_parameters(),
            "teacher_parameters": teacher_parameters,
            "seed": training_args.seed,
            "metrics": metrics,
        }
        out_dir = training_args.output_dir
        # Into a temporary directory first; moved beside the checkpoints with weights and config last.
        if teacher_pooler:
            best_student.config.eliquare = {**best_student.config.eliquare, "pooler": "copied from the teacher"}
        with atomic_output_dir(out_dir, keep_existing=True) as tmp_dir:
            best_student.save_pretrained(tmp_dir)
            add_pooler_to_saved_model(tmp_dir, teacher_pooler)
            final_tokenizer.save_pretrained(tmp_dir)
            with open(os.path.join(tmp_dir, "eliquare_run.json"), "w") as handle:
                json.dump(summary, handle, indent=2, default=str)
            from .cards import write_student_card

            write_student_card(
                tmp_dir,
                lang=language.code,
                hub_model_id=training_args.hub_model_id,
                model_name=os.path.basename(os.path.abspath(out_dir)),
            )
        logger.info("Best student saved to %s (validation loss %s)", out_dir, trainer.state.best_metric)
        if data_args.hub_dry_run:
            from .publish import format_listing, stage_upload

            files = stage_upload(out_dir, data_args.hub_dry_run)
            logger.info(
                "Hub dry run: %s holds what a push would upload:\n%s",
                data_args.hub_dry_run,
                format_listing(data_args.hub_dry_run, files),
            )
        if push:
            from .publish import push_student

            push_student(
                out_dir,
                training_args.hub_model_id,
                private=private,
                token=hub_token,
                commit_message=f"Eliquare student ({language.code})",
            )
    trainer.accelerator.wait_for_everyone()
    return trainer
