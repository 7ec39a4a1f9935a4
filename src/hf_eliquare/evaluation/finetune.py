"""Fine-tune an encoder (teacher, student or reduced student) on a downstream task, the paper's way.

:func:`run_finetune` reads the data (:mod:`.readers`), fills missing splits and builds the label set
(:mod:`.splits`), turns words into sub-word features (:mod:`.features`), trains with
:class:`transformers.Trainer` under the paper's protocol (:class:`FinetuneTrainingArguments`), keeps
the best validation checkpoint and scores the test split (:mod:`.metrics`). The results are a
:class:`~hf_eliquare.runs.FinetuneResult` (``all_results.json``) and one Markdown table row; the output
directory appears only when complete.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from transformers import TrainingArguments

from ..errors import ConfigurationError, DataError, OfflineError
from ..io import check_output_dir, commit_dir, temp_dir_beside
from ..runs import FinetuneResult
from .features import (
    merge_window_predictions,
    tokenize_classification_examples,
    tokenize_token_examples,
)
from .metrics import compute_task_metrics
from .readers import load_hub_splits, read_split_file
from .splits import SPLITS, build_label_list, fill_missing_splits
from .tasks import MAIN_METRIC, TASK_TYPES, TASKS, TOKEN_TASKS, Task, data_provenance, get_task, shared_data_dir

logger = logging.getLogger(__name__)


@dataclass
class FinetuneModelArguments:
    model_name_or_path: str = field(metadata={"help": "Model directory (or cached Hub id) to fine-tune."})
    tokenizer_name: str | None = field(default=None, metadata={"help": "Tokenizer, if not the model's."})
    model_label: str | None = field(
        default=None, metadata={"help": "Name of the model in results tables (default: the directory name)."}
    )


@dataclass
class FinetuneDataArguments:
    task: str | None = field(default=None, metadata={"help": f"Registered task: {', '.join(sorted(TASKS))}."})
    data_dir: str | None = field(
        default=None,
        metadata={
            "help": "Offline copy of the task data (the folder holding ud/, ner/, cls/). Default: "
            "$ELIQUARE_SHARED_DATA, else ../shared/data beside the working directory."
        },
    )
    task_type: str | None = field(default=None, metadata={"help": "ner | pos | classification (given by --task)."})
    train_file: str | None = field(default=None, metadata={"help": "Overrides the task's train file."})
    validation_file: str | None = field(default=None, metadata={"help": "Overrides the task's validation file."})
    test_file: str | None = field(default=None, metadata={"help": "Overrides the task's test file."})
    data_format: str | None = field(
        default=None, metadata={"help": "conllu | conll | tsv | csv | jsonl (default: from the file extension)."}
    )
    dataset_name: str | None = field(default=None, metadata={"help": "Hub dataset (needs the Hub)."})
    dataset_config_name: str | None = field(default=None)
    text_column: str | None = field(default=None, metadata={"help": "Classification: the text column."})
    label_column: str | None = field(
        default=None, metadata={"help": "Classification: the label column; CoNLL-U: upos | xpos | ner (MISC NER=)."}
    )
    max_seq_length: int = field(
        default=128, metadata={"help": "Sub-tokens per window; longer sentences are split into windows."}
    )
    label_all_tokens: bool = field(
        default=False, metadata={"help": "Label every sub-token (default: first sub-token only, others -100)."}
    )
    split_seed: int = field(default=42, metadata={"help": "Seed of the 80/10/10 split for missing splits."})
    max_train_samples: int | None = field(default=None)
    max_eval_samples: int | None = field(default=None)
    max_test_samples: int | None = field(default=None)
    results_md: str | None = field(
        default=None, metadata={"help": "Also append the Markdown results row to this file (header added if new)."}
    )
    write_predictions: bool = field(default=True, metadata={"help": "Write test_predictions.jsonl."})


@dataclass
class FinetuneTrainingArguments(TrainingArguments):
    """TrainingArguments with the paper's fine-tuning protocol as defaults.

    10 epochs, lr 5e-5, weight decay 0.01, 500 warm-up steps, evaluation and checkpoint every epoch and
    the best validation checkpoint (on the task's main metric) at the end. The 500 warm-up steps are used as
    written, even where they are a large share of (or longer than) a small dataset's run. Capping them to a
    fraction of the run is an opt-in deviation (``--warmup_max_fraction 0.1``), recorded in ``all_results.json``
    under ``protocol_deviations``.
    """

    num_train_epochs: float = field(default=10.0)
    learning_rate: float = field(default=5e-5)
    weight_decay: float = field(default=0.01)
    warmup_steps: float = field(default=500)
    per_device_train_batch_size: int = field(default=32)
    per_device_eval_batch_size: int = field(default=64)
    eval_strategy: str = field(default="epoch")
    save_strategy: str = field(default="epoch")
    logging_strategy: str = field(default="epoch")
    load_best_model_at_end: bool = field(default=True)
    metric_for_best_model: str | None = field(
        default="main",
        metadata={
            "help": "'main' (default) = the task's main metric (NER f1, POS accuracy = micro-F1, classification "
            "macro-F1, Dutch DBRD accuracy)."
        },
    )
    save_total_limit: int | None = field(default=1)
    save_only_model: bool = field(default=True)
    report_to: None | str | list[str] = field(default="none")
    warmup_max_fraction: float | None = field(
        default=None,
        metadata={
            "help": "Opt-in deviation from the paper: cap the warm-up steps to this fraction of all optimisation "
            "steps (e.g. 0.1). Default: none, the paper's 500 steps as written."
        },
    )
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Replace an existing output directory (default: refuse)."}
    )


def resolve_data(data_args: FinetuneDataArguments) -> tuple[str, Task | None, dict[str, list[dict]], dict]:
    """Task type, task and raw splits from ``--task`` / files / Hub dataset; explicit files win."""
    task = get_task(data_args.task) if data_args.task else None
    task_type = data_args.task_type or (task.task_type if task else None)
    if task_type not in TASK_TYPES:
        raise ConfigurationError(f"Pass --task or --task_type (one of {', '.join(TASK_TYPES)}), got {task_type!r}.")
    if task and data_args.task_type and data_args.task_type != task.task_type:
        raise ConfigurationError(f"--task {task.name} is {task.task_type}, not --task_type {data_args.task_type}.")
    explicit = {s: getattr(data_args, f"{s}_file") for s in SPLITS if getattr(data_args, f"{s}_file")}
    text_column = data_args.text_column or (task.text_column if task else None)
    label_column = data_args.label_column or (task.label_column if task else None)
    source: dict = {}
    local = task.local_paths(data_args.data_dir) if task and not data_args.dataset_name else {}
    if task and local and not explicit and len(local) < len(task.local_files):
        missing = sorted(set(task.local_files) - set(local))
        raise DataError(
            f"Task {task.name}: local files for {missing} are missing under {shared_data_dir(data_args.data_dir)}; "
            "pass them with --train_file/--validation_file/--test_file."
        )
    if explicit or local:
        files = {**local, **explicit}  # explicit files override the task's, split by split
        raw = {
            s: read_split_file(p, task_type, data_args.data_format, text_column, label_column)
            for s, p in files.items()
        }
        source = {"files": files, "explicit_splits": sorted(explicit)}
    else:
        name = data_args.dataset_name or (task.hub_dataset if task else None)
        if not name:
            hint = f" ({task.note})" if task and task.note else ""
            raise DataError(
                f"No data for {'task ' + task.name if task else 'this run'}: no local files and no Hub dataset{hint}. "
                "Pass --train_file/--validation_file/--test_file."
            )
        config = data_args.dataset_config_name or (task.hub_config if task and not data_args.dataset_name else None)
        revision = task.hub_revision if task and not data_args.dataset_name else None
        try:
            raw = load_hub_splits(
                name,
                config,
                task_type,
                data_args.text_column or (task.hub_text_column if task else None),
                data_args.label_column or (task.hub_label_column if task else None),
                revision,
            )
        except OfflineError as err:
            if not (task and task.local_files):
                raise
            raise OfflineError(
                f"{err} Task {task.name} also has an offline copy, looked for under "
                f"{shared_data_dir(data_args.data_dir)} (files {sorted(task.local_files.values())}); point "
                "--data_dir or $ELIQUARE_SHARED_DATA at the folder that holds them."
            ) from None
        source = {"dataset_name": name, "dataset_config_name": config}
    return task_type, task, raw, source


def _cap(examples: list[dict], n: int | None, seed: int) -> list[dict]:
    """At most ``n`` examples, drawn at random with ``seed`` and kept in file order (the first ``n`` rows of a
    label-sorted file would all have one label)."""
    if n is None or n >= len(examples):
        return examples
    keep = sorted(random.Random(seed).sample(range(len(examples)), n))
    return [examples[i] for i in keep]


def capped_warmup_steps(warmup_steps: float, total_steps: int, max_fraction: float | None) -> float:
    """Warm-up steps as given (the paper's 500), or capped to ``max_fraction`` of ``total_steps`` when that
    opt-in deviation is asked for. A value below 1 is already a ratio (transformers' convention), kept as is."""
    if warmup_steps < 1 or max_fraction is None:
        return warmup_steps
    cap = int(max_fraction * total_steps)
    return float(min(int(warmup_steps), cap))


RESULTS_MD_HEADER = (
    "| model | task | seed | test main | test metrics | best validation | epochs | train time (s) |\n"
    "|---|---|---|---|---|---|---|---|\n"
)


def results_markdown_row(result: FinetuneResult) -> str:
    main = result.main_metric
    test = result.test_metrics
    fmt = ", ".join(f"{k} {100 * v:.2f}" for k, v in test.items())
    return (
        f"| {result.model} | {result.task} | {result.seed} | {main} {100 * test[main]:.2f} | {fmt} | "
        f"{main} {100 * result.validation_metrics[main]:.2f} | {result.num_train_epochs:g} | "
        f"{result.train_runtime:.1f} |\n"
    )


def append_results_md(path: str | os.PathLike, row: str) -> None:
    path = Path(path)
    new = not path.exists() or path.stat().st_size == 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        if new:
            f.write(RESULTS_MD_HEADER)
        f.write(row)


@dataclass
class _Prepared:
    """The data of one run, ready for the Trainer."""

    task_type: str
    task: Task | None
    splits: dict[str, list[dict]]  # plain examples per split (after caps)
    split_info: dict
    source: dict
    labels: list[str]
    unseen: dict[str, dict[str, int]]


def prepare_data(data_args: FinetuneDataArguments) -> _Prepared:
    """Read the splits, fill the missing ones, apply the sample caps and build the label set."""
    task_type, task, raw, source = resolve_data(data_args)
    splits, split_info = fill_missing_splits(raw, seed=data_args.split_seed)
    seed = data_args.split_seed
    splits = {
        "train": _cap(splits["train"], data_args.max_train_samples, seed),
        "validation": _cap(splits["validation"], data_args.max_eval_samples, seed),
        "test": _cap(splits["test"], data_args.max_test_samples, seed),
    }
    split_info["used"] = {s: len(v) for s, v in splits.items()}
    logger.info(
        "Task %s (%s); examples used: %s; splits: %s",
        task.name if task else "-",
        task_type,
        split_info["used"],
        split_info["strategy"],
    )
    labels, unseen = build_label_list(splits, task_type)
    return _Prepared(task_type, task, splits, split_info, source, labels, unseen)


class _SplitMetrics:
    """``compute_metrics`` for one split: word-level (token tasks) or example-level predictions scored with
    the task's metrics; the last predictions are kept for ``test_predictions.jsonl``."""

    def __init__(self, data: _Prepared, split: str, features, id2label: dict[int, str]):
        self.task_type, self.id2label = data.task_type, id2label
        self.examples = data.splits[split]
        self.token_level = data.task_type in TOKEN_TASKS
        if self.token_level:
            self.example_ids, self.word_index = features["example_id"], features["word_index"]
            self.lengths = [len(ex["tokens"]) for ex in self.examples]
        self.predictions: list | None = None

    def __call__(self, prediction_output) -> dict[str, float]:
        import numpy as np

        preds = prediction_output.predictions
        if self.token_level:
            words = merge_window_predictions(preds, self.example_ids, self.word_index, self.lengths, self.id2label)
            self.predictions = words
            return compute_task_metrics(self.task_type, [ex["labels"] for ex in self.examples], words)
        self.predictions = [self.id2label[int(i)] for i in np.asarray(preds).reshape(-1)]
        return compute_task_metrics(self.task_type, [ex["label"] for ex in self.examples], self.predictions)


def _features(data: _Prepared, tokenizer, label2id: dict[str, int], data_args: FinetuneDataArguments):
    """Per-split features, the collator and the number of truncated texts (classification)."""
    from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding

    if data.task_type in TOKEN_TASKS:
        features = {
            s: tokenize_token_examples(
                data.splits[s], tokenizer, label2id, data_args.max_seq_length, data_args.label_all_tokens
            )
            for s in SPLITS
        }
        return features, DataCollatorForTokenClassification(tokenizer), 0
    features, truncated = {}, 0
    for s in SPLITS:
        features[s], n_long = tokenize_classification_examples(
            data.splits[s], tokenizer, label2id, data_args.max_seq_length
        )
        truncated += n_long
    return features, DataCollatorWithPadding(tokenizer), truncated


def _protocol(args: FinetuneTrainingArguments, num_train_features: int) -> tuple[float, int, list[str]]:
    """The paper's warm-up as written (a cap is an opt-in, recorded deviation):
    ``(warmup_steps, total_steps, deviations)``."""
    world = max(1, args.world_size)
    steps_per_epoch = math.ceil(num_train_features / (args.per_device_train_batch_size * world))
    steps_per_epoch = max(1, steps_per_epoch // max(1, args.gradient_accumulation_steps))
    total_steps = (
        args.max_steps if args.max_steps and args.max_steps > 0 else math.ceil(steps_per_epoch * args.num_train_epochs)
    )
    warmup = capped_warmup_steps(args.warmup_steps, total_steps, args.warmup_max_fraction)
    deviations = []
    if warmup != args.warmup_steps:
        deviations.append(
            f"warm-up capped from {args.warmup_steps:g} to {warmup:g} steps "
            f"(--warmup_max_fraction {args.warmup_max_fraction:g} of {total_steps} steps)"
        )
        logger.info("Deviation from the paper: %s.", deviations[-1])
    elif warmup >= 1 and warmup >= total_steps:
        logger.warning(
            "Warm-up (%g steps, as the paper) is not shorter than the whole run (%d steps): the learning rate never "
            "reaches its peak. --warmup_max_fraction 0.1 caps it (a recorded deviation).",
            warmup,
            total_steps,
        )
    return warmup, total_steps, deviations


def _metrics(metrics: dict, prefix: str) -> dict[str, float]:
    """``eval_f1`` → ``f1``; losses, run times and the epoch left out."""
    return {
        key[len(prefix) :]: float(value)
        for key, value in metrics.items()
        if key.startswith(prefix)
        and not key.endswith(("runtime", "per_second", "loss"))
        and key[len(prefix) :] not in ("epoch",)
    }


def _write_predictions(path: Path, data: _Prepared, predictions: list) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for example, pred in zip(data.splits["test"], predictions):
            if data.task_type in TOKEN_TASKS:
                row = {"tokens": example["tokens"], "gold": example["labels"], "pred": pred}
            else:
                row = {"text": example["text"], "gold": example["label"], "pred": pred}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def check_start(
    model_args: FinetuneModelArguments, data_args: FinetuneDataArguments, training_args: FinetuneTrainingArguments
):
    """Everything checkable before the data are read and the weights loaded; returns the tokenizer.

    Flags, the output directory (policy of :mod:`hf_eliquare.io`, writable, not the model's directory), the
    input files and ``--data_dir``, the model's ``config.json`` and tokenizer files (present, vocabularies matching) and
    ``--max_seq_length`` against the model's position embeddings.
    """
    from ..cli.checks import check_input_files, check_sample_limits, check_training_flags
    from ..io import check_writable
    from ..loading import check_tokenizer_matches, load_config, load_tokenizer

    if not training_args.output_dir:
        raise ConfigurationError("Pass --output_dir.")
    check_training_flags(training_args)
    check_sample_limits(
        max_train_samples=data_args.max_train_samples,
        max_eval_samples=data_args.max_eval_samples,
        max_test_samples=data_args.max_test_samples,
    )
    check_output_dir(
        training_args.output_dir,
        overwrite=training_args.overwrite_output_dir,
        inputs=[model_args.model_name_or_path, model_args.tokenizer_name],
    )
    check_writable(training_args.output_dir)
    for split in SPLITS:
        check_input_files(f"--{split}_file", [getattr(data_args, f"{split}_file")])
    if data_args.data_dir is not None:
        shared_data_dir(data_args.data_dir)  # an explicitly named data directory must exist
    config = load_config(model_args.model_name_or_path)
    tokenizer = load_tokenizer(model_args.tokenizer_name or model_args.model_name_or_path, flag="--tokenizer_name")
    check_tokenizer_matches(tokenizer, config.vocab_size)
    positions = getattr(config, "max_position_embeddings", None)
    if positions is not None:
        if getattr(config, "model_type", None) in ("roberta", "xlm-roberta", "camembert"):
            positions -= (config.pad_token_id or 1) + 1  # RoBERTa positions start after the padding index
        if data_args.max_seq_length > positions:
            raise ConfigurationError(
                f"--max_seq_length {data_args.max_seq_length} is longer than the model's position embeddings allow "
                f"({positions}). Use --max_seq_length {positions} or less (longer sentences are split into windows)."
            )
    if data_args.max_seq_length < 3:
        raise ConfigurationError(f"--max_seq_length must be at least 3, got {data_args.max_seq_length}.")
    return tokenizer


def run_finetune(
    model_args: FinetuneModelArguments, data_args: FinetuneDataArguments, training_args: FinetuneTrainingArguments
) -> FinetuneResult:
    """Fine-tune, pick the best validation checkpoint, score the test split; returns the
    :class:`~hf_eliquare.runs.FinetuneResult` (also written to ``<output_dir>/all_results.json``)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    from ..loading import load_model
    from .trainer import InOrderEvalTrainer

    start = time.time()
    tokenizer = check_start(model_args, data_args, training_args)
    output_dir = training_args.output_dir
    data = prepare_data(data_args)
    label2id = {label: i for i, label in enumerate(data.labels)}
    id2label = dict(enumerate(data.labels))

    auto = AutoModelForTokenClassification if data.task_type in TOKEN_TASKS else AutoModelForSequenceClassification
    model = load_model(
        model_args.model_name_or_path, auto, num_labels=len(data.labels), id2label=id2label, label2id=label2id
    )
    features, collator, truncated = _features(data, tokenizer, label2id, data_args)
    warmup, total_steps, deviations = _protocol(training_args, len(features["train"]))
    if truncated:
        deviations.append(f"{truncated} texts truncated to --max_seq_length {data_args.max_seq_length} sub-tokens")
    provenance = data_provenance(data.task, data.source, data.split_info["strategy"])
    main_metric = data.task.main_metric if data.task else MAIN_METRIC[data.task_type]

    tmp_dir = temp_dir_beside(output_dir)
    try:
        changes = {"warmup_steps": warmup, "output_dir": str(tmp_dir)}
        if not torch.cuda.is_available():
            changes["dataloader_pin_memory"] = False  # pinning needs an accelerator; on CPU it only warns
        if training_args.metric_for_best_model in (None, "main", "eval_main"):
            changes.update(metric_for_best_model=main_metric, greater_is_better=True)
        args = dataclasses.replace(training_args, **changes)  # the caller's arguments stay untouched
        trainer = InOrderEvalTrainer(
            model=model,
            args=args,
            train_dataset=features["train"],
            eval_dataset=features["validation"],
            processing_class=tokenizer,
            data_collator=collator,
            compute_metrics=_SplitMetrics(data, "validation", features["validation"], id2label),
            preprocess_logits_for_metrics=lambda logits, labels: logits.argmax(dim=-1),
        )
        train_output = trainer.train()
        validation = trainer.evaluate(metric_key_prefix="eval")
        trainer.compute_metrics = test_metrics = _SplitMetrics(data, "test", features["test"], id2label)
        test = trainer.predict(features["test"], metric_key_prefix="test")
        for checkpoint in tmp_dir.glob("checkpoint-*"):
            shutil.rmtree(checkpoint, ignore_errors=True)
        trainer.save_model(str(tmp_dir))

        result = FinetuneResult(
            model=model_args.model_label or Path(model_args.model_name_or_path.rstrip("/")).name,
            model_name_or_path=model_args.model_name_or_path,
            task=data.task.name if data.task else f"custom_{data.task_type}",
            lang=data.task.language if data.task else None,
            task_type=data.task_type,
            main_metric=main_metric,
            seed=args.seed,
            validation_metrics=_metrics(validation, "eval_"),
            test_metrics=_metrics(test.metrics, "test_"),
            train_loss=float(train_output.training_loss),
            train_runtime=float(train_output.metrics.get("train_runtime", 0.0)),
            total_runtime=time.time() - start,
            num_train_epochs=float(args.num_train_epochs),
            learning_rate=args.learning_rate,
            weight_decay=args.weight_decay,
            per_device_train_batch_size=args.per_device_train_batch_size,
            warmup_steps=warmup,
            warmup_steps_requested=training_args.warmup_steps,
            warmup_max_fraction=training_args.warmup_max_fraction,
            protocol_deviations=deviations,
            total_steps=total_steps,
            max_seq_length=data_args.max_seq_length,
            label_all_tokens=data_args.label_all_tokens,
            num_labels=len(data.labels),
            labels=data.labels,
            unseen_labels=data.unseen,
            truncated_texts=truncated,
            splits=data.split_info,
            data_source=data.source,
            data_provenance=provenance,
            best_checkpoint_metric=f"eval_{args.metric_for_best_model.removeprefix('eval_')}",
        )
        if data_args.write_predictions:
            _write_predictions(tmp_dir / "test_predictions.jsonl", data, test_metrics.predictions)
        result.save(tmp_dir)
        row = results_markdown_row(result)
        (tmp_dir / "results.md").write_text(RESULTS_MD_HEADER + row, encoding="utf-8")
        commit_dir(tmp_dir, output_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    if data_args.results_md:
        append_results_md(data_args.results_md, row)
    logger.info("Test %s: %.4f  (%s)", main_metric, result.test_metrics[main_metric], output_dir)
    return result
