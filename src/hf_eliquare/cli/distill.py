"""``hf-eliquare distill`` / ``examples/run_distill.py``: the distillation job, as named steps.

start-up checks → teacher → corpus → vocabulary → sequences → student → train → save → export (ONNX, when
asked) → publish.

Each step is a function of a few lines that reads top to bottom; :func:`run_distillation` calls them in
order. Everything that can be checked without loading a model or reading the corpus is checked in
:func:`start` (flags, paths, publishing), then the teacher and tokenizer are checked against the flags
before a single line of text is read.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from ..config import DistillationTrainingArguments
from ..errors import ConfigurationError
from ..io import atomic_output_dir, check_output_dir, check_writable, holds_finished_model
from ..languages import LANGUAGES, Language, get_language
from ..runs import DistillationRun
from . import parse_args as parse_cli_args
from . import setup_logging
from .checkpoints import last_complete_checkpoint

if TYPE_CHECKING:
    from ..vocab import VocabSelection

# The heavy modules (models, datasets, the Trainer) are imported in the steps that use them, so that a
# mistake found at start-up (a flag, a path, a Hub id while offline) is reported within seconds.
from .checks import (
    check_global_batch,
    check_input_files,
    check_probability,
    check_resume_checkpoint,
    check_sample_limits,
    check_training_flags,
)

logger = logging.getLogger(__name__)


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
    student_hidden_size: int | None = field(
        default=None, metadata={"help": "Width of the student (default: the teacher's). See docs/narrow_students.md."}
    )
    student_num_attention_heads: int | None = field(
        default=None, metadata={"help": "Attention heads of the student (default: keep the teacher's head size)."}
    )
    student_intermediate_size: int | None = field(
        default=None, metadata={"help": "FFN size of the student (default: the teacher's FFN/width ratio)."}
    )
    student_init: str = field(
        default="teacher",
        metadata={
            "help": "'teacher': copy (or, narrower, weight-select) the teacher's weights; 'random': from scratch.",
            "choices": ["teacher", "random"],
        },
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
    export_onnx: bool = field(
        default=False,
        metadata={
            "help": "Also write onnx/model.onnx and onnx/model_quantized.onnx (int8), checked against PyTorch, "
            "and publish them with the student (needs pip install 'hf_eliquare[onnx]')."
        },
    )
    onnx_int8_min_agreement: float = field(
        default=0.99,
        metadata={
            "help": "--export_onnx: least share of masked positions where int8 and PyTorch agree on the argmax."
        },
    )

    def __post_init__(self):
        if self.vocab_reduction not in ("none", "pre", "post"):
            raise ConfigurationError(f"--vocab_reduction must be none, pre or post, got {self.vocab_reduction!r}.")
        self.selection  # noqa: B018 (validates --min_sentence_fraction / --max_vocab_size, with the flag's name)
        if self.max_seq_length < 3:
            raise ConfigurationError(f"--max_seq_length must be at least 3, got {self.max_seq_length}.")
        if not 0.0 <= self.onnx_int8_min_agreement <= 1.0:
            raise ConfigurationError(
                f"--onnx_int8_min_agreement must be in [0, 1], got {self.onnx_int8_min_agreement}."
            )

    @property
    def selection(self) -> VocabSelection:
        """The VocabReduce rule these flags give."""
        from ..vocab import VocabSelection

        try:
            return VocabSelection(min_sentence_fraction=self.min_sentence_fraction, max_vocab_size=self.max_vocab_size)
        except ConfigurationError as err:
            raise ConfigurationError(f"--{err}") from None


# ------------------------------------------------------------------------------------------ start-up


@dataclass
class Start:
    """What the start-up checks decided."""

    language: Language
    resume_from: str | None
    push: bool
    private: bool
    hub_token: str | None


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


def check_output_dir_for_run(model_args: ModelArguments, training_args: DistillationTrainingArguments) -> str | None:
    """The output-directory policy for distillation; returns the checkpoint to resume from, if any.

    A directory with checkpoints but no finished model is an interrupted run: it is resumed from its last
    complete checkpoint, with or without ``--overwrite_output_dir`` (which only allows replacing a finished
    model), so re-running a killed command never starts over.
    """
    out = training_args.output_dir
    check_output_dir(
        out,
        overwrite=training_args.overwrite_output_dir,
        resumable=True,
        inputs=[model_args.teacher_model_name_or_path, model_args.tokenizer_name],
    )
    check_writable(out)
    if training_args.resume_from_checkpoint:
        check_resume_checkpoint(training_args.resume_from_checkpoint)
        return training_args.resume_from_checkpoint
    if os.path.isdir(out) and not holds_finished_model(out):
        last = last_complete_checkpoint(out)
        if last is not None:
            logger.info("Resuming from the last checkpoint in the output directory: %s", last)
        return last
    return None


def check_flags(model_args: ModelArguments, data_args: DataArguments, training_args) -> None:
    """Flag values that are wrong whatever the model and the text (see :mod:`hf_eliquare.cli.checks`)."""
    check_training_flags(training_args)
    check_global_batch(training_args)
    check_probability("--mask_replace_prob", training_args.mask_replace_prob)
    check_probability("--random_replace_prob", training_args.random_replace_prob)
    if training_args.mask_replace_prob + training_args.random_replace_prob > 1:
        raise ConfigurationError(
            f"--mask_replace_prob {training_args.mask_replace_prob} + --random_replace_prob "
            f"{training_args.random_replace_prob} exceed 1 (the rest of the chosen tokens stay unchanged; BERT: 0.8 + 0.1)."
        )
    if not 0 < data_args.validation_split <= 0.5:
        raise ConfigurationError(
            f"--validation_split must be in (0, 0.5] (the share of sentences held out for validation; the paper: "
            f"0.1), got {data_args.validation_split}."
        )
    check_sample_limits(max_train_samples=data_args.max_train_samples, max_eval_samples=data_args.max_eval_samples)
    if data_args.min_seq_length > data_args.max_seq_length:
        raise ConfigurationError(
            f"--min_seq_length {data_args.min_seq_length} is above --max_seq_length {data_args.max_seq_length}: "
            "every sequence would be dropped. Lower --min_seq_length or raise --max_seq_length."
        )
    if model_args.num_student_layers < 1:
        raise ConfigurationError(f"--num_student_layers must be at least 1, got {model_args.num_student_layers}.")
    check_student_flags(model_args)
    check_input_files("--train_file", data_args.train_file or [])


def check_student_flags(model_args: ModelArguments) -> None:
    """The student's shape flags on their own (against the teacher in :func:`check_student_layers`)."""
    if model_args.student_init not in ("teacher", "random"):
        raise ConfigurationError(f"--student_init must be teacher or random, got {model_args.student_init!r}.")
    sizes = {
        "--student_hidden_size": model_args.student_hidden_size,
        "--student_num_attention_heads": model_args.student_num_attention_heads,
        "--student_intermediate_size": model_args.student_intermediate_size,
    }
    for flag, value in sizes.items():
        if value is not None and value < 1:
            raise ConfigurationError(f"{flag} must be at least 1, got {value}. Leave it out to use the teacher's.")
    hidden, heads = model_args.student_hidden_size, model_args.student_num_attention_heads
    if hidden is not None and heads is not None and hidden % heads:
        raise ConfigurationError(
            f"The student's hidden size {hidden} (--student_hidden_size) is not divisible by its {heads} attention "
            "heads (--student_num_attention_heads; each head gets hidden_size / num_attention_heads dimensions). "
            f"Choose a multiple, e.g. --student_hidden_size {heads * max(1, hidden // heads)}."
        )


def _preflight_publishing(data_args: DataArguments, training_args: DistillationTrainingArguments):
    """Check a requested push / dry run before any work; return ``(push, private, token)``."""
    from ..hub.publish import preflight_dry_run, preflight_push

    push = bool(training_args.push_to_hub)
    private = True if training_args.hub_private_repo is None else bool(training_args.hub_private_repo)
    token = None
    if push:
        token = preflight_push(training_args.hub_model_id, token=training_args.hub_token, private=private)
    if data_args.hub_dry_run:
        preflight_dry_run(data_args.hub_dry_run, training_args.output_dir)
    if data_args.export_onnx:  # refuse before training when the onnx extra is missing
        from ..export import require_onnx_extra

        require_onnx_extra()
    # The student is pushed once, at the end, with its card; not every checkpoint by the Trainer.
    training_args.push_to_hub = False
    return push, private, token


def start(model_args: ModelArguments, data_args: DataArguments, training_args: DistillationTrainingArguments) -> Start:
    """Everything checkable before loading a model or reading text: language, flags, input files, output
    directory and checkpoint, publishing."""
    language = resolve_language(data_args)
    check_flags(model_args, data_args, training_args)
    resume_from = check_output_dir_for_run(model_args, training_args)
    push, private, hub_token = _preflight_publishing(data_args, training_args)
    return Start(language, resume_from, push, private, hub_token)


# ------------------------------------------------------------------------------------------ teacher


def check_max_seq_length(teacher, tokenizer, max_seq_length: int) -> None:
    from ..student import is_roberta_like

    limit = teacher.config.max_position_embeddings
    if is_roberta_like(teacher):
        limit -= (tokenizer.pad_token_id or 1) + 1  # RoBERTa positions start after the padding index
    if max_seq_length > limit:
        raise ConfigurationError(
            f"--max_seq_length {max_seq_length} is longer than the teacher's position embeddings allow ({limit}). "
            f"Use --max_seq_length {limit} or less."
        )


def check_student_layers(teacher, model_args: ModelArguments, training_args=None) -> None:
    """Validate ``--num_student_layers`` / ``--student_layers``, the student's shape and (with ``training_args``)
    the optional loss terms (``--alpha_hidden``, ``--alpha_attn``, ``--alpha_rel``) against the teacher: an
    impossible shape is refused here, before any corpus work, not when the trainer is created."""
    from ..objectives import plan_objectives
    from ..student import default_teacher_layers, student_config, validate_teacher_layers

    depth = teacher.config.num_hidden_layers
    if model_args.student_layers is not None:
        layers = validate_teacher_layers(model_args.student_layers, depth)
    else:
        layers = default_teacher_layers(depth, model_args.num_student_layers)
    config = student_config(
        teacher.config,
        layers,
        model_args.student_hidden_size,
        model_args.student_num_attention_heads,
        model_args.student_intermediate_size,
    )
    config.eliquare = {"teacher_layers": layers}
    if training_args is not None:
        plan_objectives(training_args, teacher.config, config)


def load_teacher(model_args: ModelArguments, data_args: DataArguments, training_args=None):
    """The teacher and its tokenizer, checked against the flags before any corpus work (a typo costs seconds)."""
    from ..loading import load_teacher as load

    teacher, tokenizer = load(model_args.teacher_model_name_or_path, model_args.tokenizer_name, model_args.cache_dir)
    check_max_seq_length(teacher, tokenizer, data_args.max_seq_length)
    check_student_layers(teacher, model_args, training_args)
    if data_args.vocab_reduction != "none":
        from ..vocab import check_reducible

        check_reducible(tokenizer)
    return teacher, tokenizer


def read_teacher_pooler(model_args: ModelArguments) -> dict:
    """The teacher checkpoint's trained pooler (``{}`` when it has none), read from its files."""
    from ..hub import resolve_pretrained
    from ..loading import read_pooler_weights

    return read_pooler_weights(resolve_pretrained(model_args.teacher_model_name_or_path, "teacher model"))


# ------------------------------------------------------------------------------------------ corpus and vocabulary


def corpus_description(data_args: DataArguments, language: Language) -> tuple[str | None, str]:
    """``(wikipedia_config, description for the run summary)``."""
    wikipedia_config = data_args.wikipedia_config
    if not data_args.train_file and wikipedia_config is None:
        wikipedia_config = language.wikipedia_config
    if data_args.train_file:
        return wikipedia_config, ", ".join(os.path.basename(f) for f in data_args.train_file)
    return wikipedia_config, f"wikimedia/wikipedia:{wikipedia_config}"


def load_corpus(data_args: DataArguments, model_args: ModelArguments, language: Language, seed: int):
    """Train/validation sentences of the target language (local files or Wikipedia)."""
    from ..data import load_sentence_splits

    wikipedia_config, _ = corpus_description(data_args, language)
    return load_sentence_splits(
        train_files=data_args.train_file,
        wikipedia_config=wikipedia_config,
        text_column=data_args.text_column,
        validation_split=data_args.validation_split,
        seed=seed,
        num_proc=data_args.preprocessing_num_workers,
        cache_dir=model_args.cache_dir,
    )


def count_vocabulary(data_args: DataArguments, tokenizer, sentences):
    """Document frequencies over the training sentences (the paper: ≥ 0.05% of the sentences), or ``None``."""
    if data_args.vocab_reduction == "none":
        return None
    from ..vocab import count_sentence_occurrences

    return count_sentence_occurrences(tokenizer, sentences["train"], num_proc=data_args.preprocessing_num_workers)


def reduce(model, tokenizer, sentence_counts, data_args: DataArguments, what: str):
    """VocabReduce ``model`` and ``tokenizer`` with the counts of :func:`count_vocabulary`."""
    from ..vocab import reduce_vocab_with_counts

    counts, num_sentences = sentence_counts
    before_vocab, before_params = model.config.vocab_size, model.num_parameters()
    model, tokenizer = reduce_vocab_with_counts(model, tokenizer, counts, num_sentences, data_args.selection)
    logger.info(
        "VocabReduce (%s): vocabulary %d → %d, parameters %d → %d",
        what,
        before_vocab,
        model.config.vocab_size,
        before_params,
        model.num_parameters(),
    )
    return model, tokenizer


def build_sequences(data_args: DataArguments, sentences, tokenizer):
    """Token sequences of at most ``max_seq_length`` (longer sentences are cut into several)."""
    from ..data import tokenize_splits

    datasets = tokenize_splits(
        sentences,
        tokenizer,
        max_seq_length=data_args.max_seq_length,
        min_seq_length=data_args.min_seq_length,
        max_train_samples=data_args.max_train_samples,
        max_eval_samples=data_args.max_eval_samples,
        num_proc=data_args.preprocessing_num_workers,
    )
    logger.info(
        "Sentences: %d train, %d validation → sequences: %d train, %d validation",
        len(sentences["train"]),
        len(sentences["validation"]),
        len(datasets["train"]),
        len(datasets["validation"]),
    )
    return datasets["train"], datasets["validation"]


# ------------------------------------------------------------------------------------------ student and training


def build_student(teacher, model_args: ModelArguments):
    """The 2n−1 student (narrower and weight-selected, or random, when asked), position embeddings frozen for
    RoBERTa-like models unless told otherwise."""
    from ..student import create_student, freeze_position_embeddings, is_roberta_like

    student = create_student(
        teacher,
        num_layers=model_args.num_student_layers,
        layers=model_args.student_layers,
        hidden_size=model_args.student_hidden_size,
        num_attention_heads=model_args.student_num_attention_heads,
        intermediate_size=model_args.student_intermediate_size,
        init=model_args.student_init,
    )
    freeze = model_args.freeze_position_embeddings
    if freeze if freeze is not None else is_roberta_like(student):
        freeze_position_embeddings(student)
    logger.info(
        "Teacher: %d layers, %d parameters; student: %d layers (teacher layers %s), hidden size %d (%s), "
        "%d parameters",
        teacher.config.num_hidden_layers,
        teacher.num_parameters(),
        student.config.num_hidden_layers,
        student.config.eliquare["teacher_layers"],
        student.config.hidden_size,
        student.config.eliquare["distillation_init"]["method"],
        student.num_parameters(),
    )
    return student


def train(student, teacher, tokenizer, train_dataset, eval_dataset, counts, training_args, resume_from):
    """Masking collator + :class:`DistillationTrainer`; returns ``(trainer, metrics, runtime in s)``, the trainer's
    ``model`` being the plain best student (the learned projections of a narrow student are taken off)."""
    from ..masking import DataCollatorForDistillation, mlm_token_probs
    from ..objectives import detach_projections
    from ..trainer import DistillationTrainer

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
    detach_projections(trainer.model)  # the learned projections (narrow students) are not part of the model
    return trainer, metrics, runtime


# ------------------------------------------------------------------------------------------ save and publish


def _hardware(training_args) -> str:
    if torch.cuda.is_available():
        return f"{training_args.world_size} × {torch.cuda.get_device_name(0)}"
    return f"{training_args.world_size} process(es) on CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def summarize(
    begun: Start, model_args, data_args, training_args, trainer, metrics, runtime, sentences, counts, student
) -> DistillationRun:
    """The run summary (``eliquare_run.json``) of a finished run."""
    train_dataset, eval_dataset = trainer.train_dataset, trainer.eval_dataset
    return DistillationRun(
        lang=begun.language.code,
        language_name=begun.language.name,
        teacher=model_args.teacher_model_name_or_path,
        alpha_ce=training_args.alpha_ce,
        alpha_mlm=training_args.alpha_mlm,
        alpha_cos=training_args.alpha_cos,
        temperature=training_args.temperature,
        alpha_hidden=training_args.alpha_hidden,
        hidden_loss=training_args.hidden_loss,
        hidden_layer_map=training_args.hidden_layer_map,
        alpha_attn=training_args.alpha_attn,
        alpha_rel=training_args.alpha_rel,
        relation_heads=training_args.relation_heads,
        relation_teacher_layer=training_args.relation_teacher_layer,
        relation_student_layer=training_args.relation_student_layer,
        distillation_init=(getattr(student.config, "eliquare", None) or {}).get("distillation_init"),
        restrict_ce_to_mask=training_args.restrict_ce_to_mask,
        mlm_probability=training_args.mlm_probability,
        mlm_smoothing=training_args.mlm_smoothing,
        dataset=corpus_description(data_args, begun.language)[1],
        train_sentences=len(sentences["train"]),
        train_sequences=len(train_dataset),
        validation_sequences=len(eval_dataset),
        train_tokens=int(counts.sum()),
        vocab_reduction_stage=data_args.vocab_reduction,
        num_train_epochs=training_args.num_train_epochs,
        global_steps=trainer.state.global_step,
        per_device_train_batch_size=training_args.per_device_train_batch_size,
        gradient_accumulation_steps=training_args.gradient_accumulation_steps,
        global_batch_size=training_args.global_batch_size,
        train_sampling_strategy=training_args.train_sampling_strategy,
        learning_rate=training_args.learning_rate,
        num_processes=training_args.world_size,
        precision="bf16" if training_args.bf16 else "fp16" if training_args.fp16 else "fp32",
        hardware=_hardware(training_args),
        train_runtime_s=round(runtime, 1),
        best_eval_loss=trainer.state.best_metric,
        best_checkpoint=trainer.state.best_model_checkpoint,
        student_parameters=student.num_parameters(),
        seed=training_args.seed,
        metrics=metrics,
    )


def save(student, tokenizer, run: DistillationRun, language: Language, training_args, teacher_pooler=None) -> None:
    """Student, tokenizer, run summary and card into a temporary directory, moved beside the checkpoints with
    the weights and ``config.json`` last. ``teacher_pooler`` (:func:`hf_eliquare.loading.read_pooler_weights`)
    is written into the student's weights, so that a classifier fine-tuned from it starts from the teacher's
    trained pooler (``*ForMaskedLM`` has none)."""
    from ..student import add_pooler_to_saved_model

    out_dir = training_args.output_dir
    run.pooler_from_teacher = bool(teacher_pooler)
    if teacher_pooler:
        student.config.eliquare = {**student.config.eliquare, "pooler": "copied from the teacher"}
    with atomic_output_dir(out_dir, keep_existing=True) as tmp_dir:
        student.save_pretrained(tmp_dir)
        add_pooler_to_saved_model(tmp_dir, teacher_pooler or {})
        tokenizer.save_pretrained(tmp_dir)
        run.save(tmp_dir)
        write_card(tmp_dir, language, training_args)
    logger.info("Best student saved to %s (validation loss %s)", out_dir, run.best_eval_loss)


def write_card(model_dir, language: Language, training_args) -> None:
    """The student's card ``README.md`` (what :func:`save` and :func:`export` write)."""
    from ..hub.cards import write_student_card

    write_student_card(
        model_dir,
        lang=language.code,
        hub_model_id=training_args.hub_model_id,
        model_name=os.path.basename(os.path.abspath(training_args.output_dir)),
    )


def export(data_args: DataArguments, language: Language, training_args) -> None:
    """``--export_onnx``: ``onnx/`` beside the saved student, checked against PyTorch on the first ``--train_file``
    (a plain or .gz text file; else the built-in sentences), then the card again so that it lists the files.

    A failed check leaves the saved student as it is, without ``onnx/`` and unpublished, and stops the run.
    """
    if not data_args.export_onnx:
        return
    from ..export import ExportCheckError, export_onnx

    out_dir = training_args.output_dir
    text_files = [f for f in data_args.train_file or [] if not f.endswith((".json", ".jsonl"))]
    try:
        export_onnx(
            out_dir,
            check_file=text_files[0] if text_files else None,
            int8_min_agreement=data_args.onnx_int8_min_agreement,
        )
    except ExportCheckError as err:
        raise ExportCheckError(
            f"{err} The student was saved to {out_dir} without onnx/ and was not published; export it with "
            f"`hf-eliquare export --model_dir {out_dir}` and the options named above."
        ) from None
    write_card(out_dir, language, training_args)


def publish(start_: Start, data_args: DataArguments, training_args) -> None:
    """The Hub dry run (``--hub_dry_run``) and the push (``--push_to_hub``), both checked at start-up."""
    from ..hub.publish import format_listing, push_student, stage_upload

    out_dir = training_args.output_dir
    if data_args.hub_dry_run:
        files = stage_upload(out_dir, data_args.hub_dry_run)
        logger.info(
            "Hub dry run: %s holds what a push would upload:\n%s",
            data_args.hub_dry_run,
            format_listing(data_args.hub_dry_run, files),
        )
    if start_.push:
        push_student(
            out_dir,
            training_args.hub_model_id,
            private=start_.private,
            token=start_.hub_token,
            commit_message=f"Eliquare student ({start_.language.code})",
        )


# ------------------------------------------------------------------------------------------ the job


def run_distillation(
    model_args: ModelArguments, data_args: DataArguments, training_args: DistillationTrainingArguments
):
    """Run the whole job; returns the trainer (its ``model`` is the best student)."""
    from ..data import token_counts

    begun = start(model_args, data_args, training_args)
    teacher, tokenizer = load_teacher(model_args, data_args, training_args)
    teacher_parameters = teacher.num_parameters()
    # *ForMaskedLM has no pooler; the checkpoint's trained one is carried into the saved student.
    teacher_pooler = read_teacher_pooler(model_args)
    with training_args.main_process_first(desc="corpus preparation"):
        sentences = load_corpus(data_args, model_args, begun.language, training_args.seed)
        sentence_counts = count_vocabulary(data_args, tokenizer, sentences)
        if data_args.vocab_reduction == "pre":
            teacher, tokenizer = reduce(teacher, tokenizer, sentence_counts, data_args, "pre-distillation, teacher")
        train_dataset, eval_dataset = build_sequences(data_args, sentences, tokenizer)
    counts = token_counts(train_dataset, teacher.config.vocab_size)
    student = build_student(teacher, model_args)
    trainer, metrics, runtime = train(
        student, teacher, tokenizer, train_dataset, eval_dataset, counts, training_args, begun.resume_from
    )
    if trainer.is_world_process_zero():
        best_student, final_tokenizer = trainer.model, tokenizer
        if data_args.vocab_reduction == "post":
            best_student, final_tokenizer = reduce(
                best_student, tokenizer, sentence_counts, data_args, "post-distillation, student"
            )
        run = summarize(
            begun, model_args, data_args, training_args, trainer, metrics, runtime, sentences, counts, best_student
        )
        run.teacher_parameters = teacher_parameters
        save(best_student, final_tokenizer, run, begun.language, training_args, teacher_pooler)
        export(data_args, begun.language, training_args)
        publish(begun, data_args, training_args)
    trainer.accelerator.wait_for_everyone()
    return trainer


def parse_args(argv: Sequence[str] | None = None, prog: str | None = None):
    """Command-line flags, or one .json/.yaml config file followed by flags that override it."""
    return parse_cli_args((ModelArguments, DataArguments, DistillationTrainingArguments), argv, prog=prog)


def main(argv: Sequence[str] | None = None):
    setup_logging()
    model_args, data_args, training_args = parse_args(argv)
    return run_distillation(model_args, data_args, training_args)
