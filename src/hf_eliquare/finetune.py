"""Fine-tune an encoder (teacher, student or reduced student) on a downstream task, the paper's way.

The pieces, in the order :func:`run_finetune` uses them:

1. **Readers** turn files into plain examples: token tasks give ``{"tokens": [...], "labels": [...]}``
   (CoNLL-U ``UPOS``/``XPOS`` or MISC ``NER=``; CoNLL ``token TAG``), classification gives
   ``{"text": str, "label": str}`` (TSV/CSV/JSONL). Malformed input raises :class:`DataError` with
   file and line number.
2. **Splits**: provided splits are used; missing ones get a seeded 80/10/10 split (recorded in the results).
3. **Labels**: the label set comes from the training split; a label seen only in validation/test is
   reported and appended (the model never learns it, so it always counts as an error).
4. **Features**: words are split into sub-words; the first sub-token of a word carries its label and
   the rest get ``-100`` (or the label, with ``label_all_tokens``). A sentence longer than
   ``max_seq_length`` is cut into windows at word boundaries; predictions of the windows are merged
   back so that every word gets exactly one prediction. Nothing is truncated silently.
5. **Training** with :class:`transformers.Trainer` under the paper's protocol (see
   :class:`FinetuneTrainingArguments`), best validation checkpoint, then test scores, written to
   ``all_results.json`` and one Markdown table row. The output directory appears only when complete.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import os
import random
import shutil
import statistics
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from transformers import TrainingArguments

from ._io import commit_dir, temp_dir_beside
from .errors import ConfigurationError, DataError, OfflineError, OutputDirError
from .metrics import MAIN_METRIC, compute_task_metrics
from .tasks import PAPER_TASKS, PROVENANCE_CODES, TASKS, Task, data_provenance, get_task, shared_data_dir

logger = logging.getLogger(__name__)

TOKEN_TASKS = ("ner", "pos")
TASK_TYPES = ("ner", "pos", "classification")
SPLITS = ("train", "validation", "test")
#: The paper's split for a dataset without one: 80 % train, 10 % validation, 10 % test.
SPLIT_FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}
IGNORE_INDEX = -100

# --------------------------------------------------------------------------------------------------
# Arguments (the script's dataclasses live here so the driver and tests share them)
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------------------

_EXTENSIONS = {
    ".conllu": "conllu",
    ".conll": "conll",
    ".txt": "conll",
    ".iob": "conll",
    ".bio": "conll",
    ".tsv": "tsv",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".json": "jsonl",
}
CONLLU_COLUMNS = {"form": 1, "lemma": 2, "upos": 3, "xpos": 4, "feats": 5, "deprel": 7}


def infer_data_format(path: str | os.PathLike) -> str:
    ext = Path(path).suffix.lower()
    if ext not in _EXTENSIONS:
        raise DataError(
            f"Cannot tell the format of {str(path)!r} from its extension {ext!r}; pass --data_format "
            "(conllu, conll, tsv, csv or jsonl)."
        )
    return _EXTENSIONS[ext]


def _open_text(path: str | os.PathLike):
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Data file {str(path)!r} does not exist. Check --train_file/--validation_file/--test_file.")
    return open(path, encoding="utf-8", newline="")


def _read_tagged_sentences(path: str | os.PathLike, parse_line) -> list[dict]:
    """Blank-line separated sentences of ``path`` as ``{"tokens", "labels"}``.

    ``parse_line(line, lineno)`` returns ``(token, label)``, or ``None`` for a line to skip
    (comments, multi-word ranges, …), and raises :class:`DataError` for a malformed one.
    """
    sentences, tokens, labels = [], [], []
    with _open_text(path) as f:
        for lineno, raw in enumerate(f, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                if tokens:
                    sentences.append({"tokens": tokens, "labels": labels})
                tokens, labels = [], []
                continue
            parsed = parse_line(line, lineno)
            if parsed is not None:
                tokens.append(parsed[0])
                labels.append(parsed[1])
    if tokens:
        sentences.append({"tokens": tokens, "labels": labels})
    if not sentences:
        raise DataError(f"{path} holds no sentences.")
    return sentences


def read_conllu(path: str | os.PathLike, label_column: str = "upos") -> list[dict]:
    """Sentences of a CoNLL-U file as ``{"tokens", "labels"}``.

    Syntactic words (integer IDs) are kept; multi-word-token ranges (``1-2``) and empty nodes
    (``8.1``) are skipped, so tokens and UPOS tags align as UD defines them. ``label_column`` is a
    column name (``upos``, ``xpos``, …) or ``ner`` for the ``NER=`` key of the MISC column.
    """
    label_column = (label_column or "upos").lower()
    if label_column != "ner" and label_column not in CONLLU_COLUMNS:
        raise ConfigurationError(
            f"--label_column {label_column!r} is not a CoNLL-U column; use upos, xpos, feats, deprel or ner."
        )

    def parse(line: str, lineno: int):
        if line.startswith("#"):
            return None
        cols = line.split("\t")
        if len(cols) != 10:
            raise DataError(
                f"{path}:{lineno}: malformed CoNLL-U line (expected 10 tab-separated columns, found "
                f"{len(cols)}): {line[:80]!r}. Fix the file or check that it is CoNLL-U (--data_format)."
            )
        tid = cols[0]
        if "-" in tid or "." in tid:  # multi-word token range / empty node
            return None
        if not tid.isdigit():
            raise DataError(f"{path}:{lineno}: CoNLL-U ID {tid!r} is not an integer, range or empty node.")
        if label_column == "ner":
            misc = dict(kv.split("=", 1) for kv in cols[9].split("|") if "=" in kv)
            if "NER" not in misc:
                raise DataError(
                    f"{path}:{lineno}: no NER= entry in the MISC column ({cols[9]!r}); "
                    "--label_column ner needs it on every word."
                )
            return cols[1], misc["NER"]
        label = cols[CONLLU_COLUMNS[label_column]]
        if label == "_":
            raise DataError(f"{path}:{lineno}: the {label_column.upper()} column is empty ('_').")
        return cols[1], label

    return _read_tagged_sentences(path, parse)


def read_conll(path: str | os.PathLike) -> list[dict]:
    """``token TAG`` lines (space- or tab-separated; the tag is the last field), blank line between sentences."""

    def parse(line: str, lineno: int):
        if line.startswith("-DOCSTART-"):
            return None
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) < 2 or not parts[0] or not parts[-1]:
            raise DataError(
                f"{path}:{lineno}: malformed line, expected 'token TAG': {line[:80]!r}. "
                "Fix the file or pass the right --data_format."
            )
        return parts[0], parts[-1].strip()

    return _read_tagged_sentences(path, parse)


_TEXT_COLUMN_GUESSES = ("text", "sentence", "tweet", "review", "content")


def read_classification(
    path: str | os.PathLike, data_format: str, text_column: str | None = None, label_column: str | None = None
) -> list[dict]:
    """Rows of a TSV/CSV (with header) or JSONL file as ``{"text", "label"}`` (labels as strings)."""
    rows: list[dict] = []
    with _open_text(path) as f:
        if data_format in ("tsv", "csv"):
            reader = csv.DictReader(
                f,
                delimiter="\t" if data_format == "tsv" else ",",
                quoting=csv.QUOTE_NONE if data_format == "tsv" else csv.QUOTE_MINIMAL,
            )
            columns = reader.fieldnames or []
            for row in reader:
                rows.append((reader.line_num, row))
        elif data_format == "jsonl":
            columns = None
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataError(f"{path}:{lineno}: not valid JSON ({err.msg}).") from None
                if not isinstance(row, dict):
                    raise DataError(f"{path}:{lineno}: each JSONL line must be an object.")
                columns = columns or list(row)
                rows.append((lineno, row))
            columns = columns or []
        else:
            raise ConfigurationError(f"Format {data_format!r} is not a classification format (tsv, csv, jsonl).")
    if text_column is None:
        text_column = next((c for c in _TEXT_COLUMN_GUESSES if c in columns), None)
    label_column = label_column or "label"
    for name, col in (("--text_column", text_column), ("--label_column", label_column)):
        if col is None or col not in columns:
            raise DataError(f"{path}: no column {col!r} for {name}; the file has columns {columns}. Pass {name}.")
    out = []
    for lineno, row in rows:
        text, label = row.get(text_column), row.get(label_column)
        if text is None or label is None or str(label).strip() == "":
            raise DataError(f"{path}:{lineno}: missing {text_column!r} or {label_column!r} value.")
        out.append({"text": str(text), "label": str(label).strip()})
    if not out:
        raise DataError(f"{path} holds no rows.")
    return out


def read_split_file(
    path: str,
    task_type: str,
    data_format: str | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
) -> list[dict]:
    """Read one split with the reader its format (or ``data_format``) calls for."""
    fmt = data_format or infer_data_format(path)
    if task_type in TOKEN_TASKS:
        if fmt == "conllu":
            return read_conllu(path, label_column or ("ner" if task_type == "ner" else "upos"))
        if fmt == "conll":
            return read_conll(path)
        raise DataError(f"{path}: format {fmt!r} cannot hold {task_type} tags; use .conllu or 'token TAG' files.")
    if fmt in ("conllu", "conll"):
        raise DataError(f"{path}: format {fmt!r} cannot hold classification data; use tsv, csv or jsonl.")
    return read_classification(path, fmt, text_column, label_column)


def load_hub_splits(
    name: str,
    config: str | None,
    task_type: str,
    text_column: str | None,
    label_column: str | None,
    revision: str | None = None,
) -> dict[str, list[dict]]:
    """A Hub dataset as plain examples (ClassLabel ids turned into names). Fails fast when offline."""
    import datasets

    from .errors import OfflineError
    from .hub import hub_offline_mode, require_hub

    try:
        require_hub(f"The dataset {name!r}", "Pass local files with --train_file/--validation_file/--test_file.")
    except OfflineError:
        if not hub_offline_mode():
            raise
        try:  # HF_HUB_OFFLINE=1: a dataset already in the local cache still loads
            dsd = datasets.load_dataset(name, config, revision=revision)
        except Exception:
            raise OfflineError(
                f"The dataset {name!r} is not in the local cache and HF_HUB_OFFLINE=1 is set. "
                "Pass local files with --train_file/--validation_file/--test_file."
            ) from None
    else:
        dsd = datasets.load_dataset(name, config, revision=revision)
    aliases = {
        "train": "train",
        "validation": "validation",
        "dev": "validation",
        "valid": "validation",
        "test": "test",
    }
    out: dict[str, list[dict]] = {}
    for split_name, ds in dsd.items():
        if split_name not in aliases:
            continue
        text_col = text_column or ("tokens" if task_type in TOKEN_TASKS else "text")
        label_col = label_column or ("ner_tags" if task_type == "ner" else "upos" if task_type == "pos" else "label")
        for col in (text_col, label_col):
            if col not in ds.column_names:
                raise DataError(f"Dataset {name!r} split {split_name!r} has no column {col!r}: {ds.column_names}.")
        feat = ds.features[label_col]
        names = getattr(getattr(feat, "feature", feat), "names", None)
        to_name = (lambda i: names[i]) if names else str  # noqa: B023 (used within the iteration)
        if task_type in TOKEN_TASKS:
            out[aliases[split_name]] = [
                {"tokens": list(r[text_col]), "labels": [to_name(x) for x in r[label_col]]} for r in ds
            ]
        else:
            out[aliases[split_name]] = [{"text": str(r[text_col]), "label": to_name(r[label_col])} for r in ds]
    return out


# --------------------------------------------------------------------------------------------------
# Splits and labels
# --------------------------------------------------------------------------------------------------


def fill_missing_splits(splits: dict[str, list[dict]], seed: int = 42) -> tuple[dict[str, list[dict]], dict]:
    """Provided splits first; missing ones come from a seeded 80/10/10 split.

    * no train split: all provided examples are pooled, shuffled with ``seed`` and split 80/10/10
      (UD_Slovenian-SSJ offline has only dev and test);
    * train but no validation and/or test: each missing split takes 10 % of the train examples.

    Returns the splits and a record of what was done (saved in ``all_results.json``).
    """
    given = {k: v for k, v in splits.items() if v}
    if not given:
        raise DataError("No data: give --train_file/--validation_file/--test_file, --dataset_name or --task.")
    info = {"provided": {k: len(v) for k, v in given.items()}, "seed": seed, "strategy": "provided"}
    rng = random.Random(seed)
    if all(s in given for s in SPLITS):
        out = {s: given[s] for s in SPLITS}
    elif "train" not in given:
        pool = [ex for s in SPLITS for ex in given.get(s, [])]
        rng.shuffle(pool)
        n_val = n_test = max(1, round(len(pool) * SPLIT_FRACTIONS["test"]))
        if len(pool) < 3:
            raise DataError(f"Only {len(pool)} examples in {sorted(given)}; not enough for an 80/10/10 split.")
        out = {"test": pool[:n_test], "validation": pool[n_test : n_test + n_val], "train": pool[n_test + n_val :]}
        info["strategy"] = f"pooled {'+'.join(s for s in SPLITS if s in given)} and re-split 80/10/10"
    else:
        train = list(given["train"])
        rng.shuffle(train)
        n_take = max(1, round(len(given["train"]) * SPLIT_FRACTIONS["test"]))
        out, taken = {}, []
        for s in ("validation", "test"):
            if s in given:
                out[s] = given[s]
            else:
                out[s], train = train[:n_take], train[n_take:]
                taken.append(s)
        out["train"] = train
        info["strategy"] = f"{' and '.join(taken)} taken from train (10 % each)"
    info["sizes"] = {s: len(out[s]) for s in SPLITS}
    if info["strategy"] != "provided":
        logger.warning("Splits: %s (seed %d): %s", info["strategy"], seed, info["sizes"])
    return out, info


def _label_sort_key(label: str) -> tuple:
    # "O" first, then by entity type with B- before I- (readable id2label for NER; plain sort otherwise)
    if label == "O":
        return (0, "", "")
    if len(label) > 2 and label[1] == "-" and label[0] in "BIES":
        return (1, label[2:], label[0])
    return (1, label, "")


def build_label_list(splits: dict[str, list[dict]], task_type: str) -> tuple[list[str], dict[str, dict[str, int]]]:
    """Labels of the train split, then labels seen only in validation/test (reported, appended).

    Returns ``(labels, unseen)`` with ``unseen[split][label] = count``.
    """

    def counts(examples):
        if task_type in TOKEN_TASKS:
            return Counter(l for ex in examples for l in ex["labels"])
        return Counter(ex["label"] for ex in examples)

    labels = sorted(counts(splits["train"]), key=_label_sort_key)
    known = set(labels)
    unseen: dict[str, dict[str, int]] = {}
    for split in ("validation", "test"):
        extra = {k: v for k, v in counts(splits.get(split, [])).items() if k not in known}
        if extra:
            unseen[split] = dict(sorted(extra.items()))
            logger.warning(
                "Labels in %s but not in train (the model cannot learn them; they count as errors): %s",
                split,
                unseen[split],
            )
    for label in sorted({l for d in unseen.values() for l in d}, key=_label_sort_key):
        labels.append(label)
    return labels, unseen


# --------------------------------------------------------------------------------------------------
# Sub-word alignment, windows and merging
# --------------------------------------------------------------------------------------------------


def align_labels(
    word_ids: Sequence[int | None],
    word_label_ids: Sequence[int],
    label_all_tokens: bool = False,
    b_to_i: dict[int, int] | None = None,
) -> list[int]:
    """Per-sub-token labels: the first sub-token of a word gets the word's label, special tokens and the
    other sub-tokens ``-100`` (with ``label_all_tokens`` they get the label, ``B-X`` turned ``I-X`` via
    ``b_to_i``). ``word_ids``: the tokenizer's ``word_ids()`` for one sequence."""
    out, prev = [], None
    for w in word_ids:
        if w is None:
            out.append(IGNORE_INDEX)
        elif w != prev:
            out.append(word_label_ids[w])
        elif label_all_tokens:
            lab = word_label_ids[w]
            out.append((b_to_i or {}).get(lab, lab))
        else:
            out.append(IGNORE_INDEX)
        prev = w
    return out


def first_subtoken_word_index(word_ids: Sequence[int | None], offset: int = 0) -> list[int]:
    """``offset + word`` at the first sub-token of each word, ``-1`` elsewhere (where predictions are read)."""
    out, prev = [], None
    for w in word_ids:
        out.append(offset + w if w is not None and w != prev else -1)
        prev = w
    return out


def window_word_spans(subtokens_per_word: Sequence[int], max_tokens: int) -> list[tuple[int, int]]:
    """Cut a sentence at word boundaries into ``[start, end)`` word spans of at most ``max_tokens``
    sub-tokens each (a single longer word gets a span of its own). Every word is in exactly one span."""
    spans, start, count = [], 0, 0
    for i, n in enumerate(subtokens_per_word):
        if count and count + n > max_tokens:
            spans.append((start, i))
            start, count = i, 0
        count += n
    if len(subtokens_per_word):
        spans.append((start, len(subtokens_per_word)))
    return spans


def tokenize_token_examples(
    examples: list[dict],
    tokenizer,
    label2id: dict[str, int],
    max_seq_length: int,
    label_all_tokens: bool = False,
):
    """Token-classification features, one row per window.

    Columns: ``input_ids``, ``attention_mask`` (+ ``token_type_ids``), ``labels`` (sub-token labels,
    ``-100`` where ignored), ``example_id`` and ``word_index`` (sentence word index at each word's
    first sub-token, ``-1`` elsewhere) — the last two let :func:`merge_window_predictions` rebuild
    one prediction per word. Words the tokenizer drops (e.g. a lone zero-width space) become the
    unknown token so they still get a prediction.
    """
    from datasets import Dataset

    budget = max_seq_length - tokenizer.num_special_tokens_to_add(pair=False)
    if budget < 1:
        raise ConfigurationError(f"--max_seq_length {max_seq_length} leaves no room for words.")
    b_to_i = {label2id[l]: label2id["I" + l[1:]] for l in label2id if l.startswith("B-") and "I" + l[1:] in label2id}
    words_per_example = [list(ex["tokens"]) for ex in examples]
    enc = tokenizer(words_per_example, is_split_into_words=True, add_special_tokens=False)
    windows, n_replaced, n_long_words = [], 0, 0
    for i, words in enumerate(words_per_example):
        per_word = Counter(w for w in enc.word_ids(i) if w is not None)
        empty = [j for j in range(len(words)) if per_word[j] == 0]
        if empty:
            for j in empty:
                words[j] = tokenizer.unk_token
            n_replaced += len(empty)
            per_word.update({j: 1 for j in empty})
        counts = [per_word[j] for j in range(len(words))]
        n_long_words += sum(c > budget for c in counts)
        windows.extend((i, s, e) for s, e in window_word_spans(counts, budget))
    n_split = len(windows) - len(examples)
    if n_split:
        logger.info(
            "%d sentence windows for %d sentences (longer than %d sub-tokens are split at word "
            "boundaries; predictions are merged back per word).",
            len(windows),
            len(examples),
            max_seq_length,
        )
    if n_replaced:
        logger.warning(
            "%d words produce no sub-token with this tokenizer; they are fed as %s.", n_replaced, tokenizer.unk_token
        )
    if n_long_words:
        logger.warning(
            "%d single words exceed %d sub-tokens; their extra sub-tokens are cut (the first, which "
            "carries the prediction, is kept).",
            n_long_words,
            max_seq_length,
        )
    wenc = tokenizer(
        [words_per_example[i][s:e] for i, s, e in windows],
        is_split_into_words=True,
        truncation=True,
        max_length=max_seq_length,
    )
    rows = {k: [] for k in ("input_ids", "attention_mask", "labels", "example_id", "word_index")}
    has_tt = "token_type_ids" in wenc
    if has_tt:
        rows["token_type_ids"] = []
    for j, (i, s, e) in enumerate(windows):
        wids = wenc.word_ids(j)
        word_labels = [label2id[l] for l in examples[i]["labels"][s:e]]
        rows["input_ids"].append(wenc["input_ids"][j])
        rows["attention_mask"].append(wenc["attention_mask"][j])
        if has_tt:
            rows["token_type_ids"].append(wenc["token_type_ids"][j])
        rows["labels"].append(align_labels(wids, word_labels, label_all_tokens, b_to_i))
        rows["example_id"].append(i)
        rows["word_index"].append(first_subtoken_word_index(wids, offset=s))
    return Dataset.from_dict(rows)


def merge_window_predictions(
    pred_ids,
    example_ids: Sequence[int],
    word_index: Sequence[Sequence[int]],
    sentence_lengths: Sequence[int],
    id2label: dict[int, str],
) -> list[list[str]]:
    """Per-word predicted labels for each sentence from per-window sub-token predictions.

    ``pred_ids``: ``(n_windows, seq_len)`` label ids (padding may be ``-100``). Raises if a word gets no
    prediction or two — the windows must partition every sentence.
    """
    out: list[list[str | None]] = [[None] * n for n in sentence_lengths]
    for row, (ex, widx) in enumerate(zip(example_ids, word_index)):
        preds = pred_ids[row]
        for pos, w in enumerate(widx):
            if w < 0:
                continue
            if out[ex][w] is not None:
                raise RuntimeError(f"sentence {ex}, word {w} predicted twice")
            out[ex][w] = id2label[int(preds[pos])]
    for ex, sent in enumerate(out):
        if any(p is None for p in sent):
            raise RuntimeError(f"sentence {ex}: {sum(p is None for p in sent)} words without a prediction")
    return out  # type: ignore[return-value]


def tokenize_classification_examples(examples: list[dict], tokenizer, label2id: dict[str, int], max_seq_length: int):
    """Sequence-classification features; texts over ``max_seq_length`` are truncated and counted in the log."""
    from datasets import Dataset

    texts = [ex["text"] for ex in examples]
    lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    n_long = sum(n > max_seq_length for n in lengths)
    if n_long:
        logger.warning(
            "%d of %d texts exceed %d sub-tokens and are truncated (raise --max_seq_length to keep more).",
            n_long,
            len(texts),
            max_seq_length,
        )
    enc = tokenizer(texts, truncation=True, max_length=max_seq_length)
    rows = {k: enc[k] for k in enc.keys()}
    rows["labels"] = [label2id[ex["label"]] for ex in examples]
    return Dataset.from_dict(rows), n_long


# --------------------------------------------------------------------------------------------------
# Running one fine-tuning
# --------------------------------------------------------------------------------------------------


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


def _cap(examples: list[dict], n: int | None) -> list[dict]:
    return examples if n is None else examples[:n]


def capped_warmup_steps(warmup_steps: float, total_steps: int, max_fraction: float | None) -> float:
    """Warm-up steps as given (the paper's 500), or capped to ``max_fraction`` of ``total_steps`` when that
    opt-in deviation is asked for. A value below 1 is already a ratio (transformers' convention), kept as is."""
    if warmup_steps < 1 or max_fraction is None:
        return warmup_steps
    cap = int(max_fraction * total_steps)
    return float(min(int(warmup_steps), cap))


def _prepare_output_dir(output_dir: str, overwrite: bool) -> Path:
    out = Path(output_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise OutputDirError(
            f"Output directory {output_dir!r} exists and is not empty. Pass --overwrite_output_dir to replace it "
            "or choose another --output_dir."
        )
    return temp_dir_beside(out)


RESULTS_MD_HEADER = (
    "| model | task | seed | test main | test metrics | best validation | epochs | train time (s) |\n"
    "|---|---|---|---|---|---|---|---|\n"
)


def results_markdown_row(results: dict) -> str:
    main = results["main_metric"]
    test = results["test_metrics"]
    fmt = ", ".join(f"{k} {100 * v:.2f}" for k, v in test.items())
    return (
        f"| {results['model']} | {results['task']} | {results['seed']} | {main} {100 * test[main]:.2f} | {fmt} | "
        f"{main} {100 * results['validation_metrics'][main]:.2f} | {results['epochs']:g} | "
        f"{results['train_runtime']:.1f} |\n"
    )


def append_results_md(path: str | os.PathLike, row: str) -> None:
    path = Path(path)
    new = not path.exists() or path.stat().st_size == 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        if new:
            f.write(RESULTS_MD_HEADER)
        f.write(row)


def run_finetune(
    model_args: FinetuneModelArguments, data_args: FinetuneDataArguments, training_args: FinetuneTrainingArguments
) -> dict:
    """Fine-tune, pick the best validation checkpoint, score the test split; returns the results dict
    (also written to ``<output_dir>/all_results.json``)."""
    import numpy as np
    from transformers import (
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        DataCollatorWithPadding,
        Trainer,
    )

    from .hub import resolve_pretrained

    start = time.time()
    if not training_args.output_dir:
        raise ConfigurationError("Pass --output_dir.")
    task_type, task, raw, source = resolve_data(data_args)
    splits, split_info = fill_missing_splits(raw, seed=data_args.split_seed)
    splits = {
        "train": _cap(splits["train"], data_args.max_train_samples),
        "validation": _cap(splits["validation"], data_args.max_eval_samples),
        "test": _cap(splits["test"], data_args.max_test_samples),
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
    label2id = {l: i for i, l in enumerate(labels)}
    id2label = dict(enumerate(labels))

    model_path = resolve_pretrained(model_args.model_name_or_path, "model")
    tok_path = resolve_pretrained(model_args.tokenizer_name, "tokenizer") if model_args.tokenizer_name else model_path
    tokenizer = AutoTokenizer.from_pretrained(tok_path)
    auto = AutoModelForTokenClassification if task_type in TOKEN_TASKS else AutoModelForSequenceClassification
    model = auto.from_pretrained(model_path, num_labels=len(labels), id2label=id2label, label2id=label2id)

    n_truncated = 0
    if task_type in TOKEN_TASKS:
        feats = {
            s: tokenize_token_examples(
                splits[s], tokenizer, label2id, data_args.max_seq_length, data_args.label_all_tokens
            )
            for s in SPLITS
        }
        collator = DataCollatorForTokenClassification(tokenizer)
    else:
        feats = {}
        for s in SPLITS:
            feats[s], n_long = tokenize_classification_examples(
                splits[s], tokenizer, label2id, data_args.max_seq_length
            )
            n_truncated += n_long
        collator = DataCollatorWithPadding(tokenizer)

    def metrics_for(split: str):
        examples, ds = splits[split], feats[split]
        if task_type in TOKEN_TASKS:
            example_ids, word_index = ds["example_id"], ds["word_index"]
            lengths = [len(ex["tokens"]) for ex in examples]

        def compute(p):
            preds = p.predictions
            if task_type in TOKEN_TASKS:
                words = merge_window_predictions(preds, example_ids, word_index, lengths, id2label)
                compute.last_predictions = words
                return compute_task_metrics(task_type, [ex["labels"] for ex in examples], words)
            pred_labels = [id2label[int(i)] for i in np.asarray(preds).reshape(-1)]
            compute.last_predictions = pred_labels
            return compute_task_metrics(task_type, [ex["label"] for ex in examples], pred_labels)

        return compute

    # The paper's protocol: 500 warm-up steps as written (a cap is an opt-in, recorded deviation), best
    # checkpoint on the task's main metric.
    args = training_args
    args_warmup_requested = args.warmup_steps
    world = max(1, args.world_size)
    steps_per_epoch = math.ceil(len(feats["train"]) / (args.per_device_train_batch_size * world))
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
    if n_truncated:
        deviations.append(f"{n_truncated} texts truncated to --max_seq_length {data_args.max_seq_length} sub-tokens")
    provenance = data_provenance(task, source, split_info["strategy"])
    main_metric = task.main_metric if task else MAIN_METRIC[task_type]
    output_dir = args.output_dir
    tmp_dir = _prepare_output_dir(output_dir, args.overwrite_output_dir)
    try:
        changes = {"warmup_steps": warmup, "output_dir": str(tmp_dir)}
        if args.metric_for_best_model in (None, "main", "eval_main"):
            changes.update(metric_for_best_model=main_metric, greater_is_better=True)
        args = dataclasses.replace(args, **changes)  # the caller's arguments stay untouched
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=feats["train"],
            eval_dataset=feats["validation"],
            processing_class=tokenizer,
            data_collator=collator,
            compute_metrics=metrics_for("validation"),
            preprocess_logits_for_metrics=lambda logits, labels: logits.argmax(dim=-1),
        )
        train_result = trainer.train()
        val_metrics = trainer.evaluate(metric_key_prefix="eval")
        test_compute = metrics_for("test")
        trainer.compute_metrics = test_compute
        test_out = trainer.predict(feats["test"], metric_key_prefix="test")
        for ckpt in tmp_dir.glob("checkpoint-*"):
            shutil.rmtree(ckpt, ignore_errors=True)
        trainer.save_model(str(tmp_dir))

        strip = (
            lambda d, prefix: {
                k[len(prefix) :]: float(v)
                for k, v in d.items()  # noqa: E731
                if k.startswith(prefix)
                and not k.endswith(("runtime", "per_second", "loss"))
                and k[len(prefix) :] not in ("epoch",)
            }
        )
        results = {
            "model": model_args.model_label or Path(model_args.model_name_or_path.rstrip("/")).name,
            "model_name_or_path": model_args.model_name_or_path,
            "task": task.name if task else f"custom_{task_type}",
            "language": task.language if task else None,
            "task_type": task_type,
            "main_metric": main_metric,
            "seed": args.seed,
            "validation_metrics": strip(val_metrics, "eval_"),
            "test_metrics": strip(test_out.metrics, "test_"),
            "train_loss": float(train_result.training_loss),
            "train_runtime": float(train_result.metrics.get("train_runtime", 0.0)),
            "total_runtime": time.time() - start,
            "epochs": float(args.num_train_epochs),
            "learning_rate": args.learning_rate,
            "weight_decay": args.weight_decay,
            "warmup_steps": warmup,
            "warmup_steps_requested": args_warmup_requested,
            "warmup_max_fraction": args.warmup_max_fraction,
            "protocol_deviations": deviations,
            "total_steps": total_steps,
            "max_seq_length": data_args.max_seq_length,
            "label_all_tokens": data_args.label_all_tokens,
            "num_labels": len(labels),
            "labels": labels,
            "unseen_labels": unseen,
            "truncated_texts": n_truncated,
            "splits": split_info,
            "data_source": source,
            "data_provenance": provenance,
            "best_checkpoint_metric": f"eval_{args.metric_for_best_model.removeprefix('eval_')}",
        }
        if data_args.write_predictions:
            with open(tmp_dir / "test_predictions.jsonl", "w", encoding="utf-8") as f:
                for ex, pred in zip(splits["test"], test_compute.last_predictions):
                    row = (
                        {"tokens": ex["tokens"], "gold": ex["labels"], "pred": pred}
                        if task_type in TOKEN_TASKS
                        else {"text": ex["text"], "gold": ex["label"], "pred": pred}
                    )
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
        with open(tmp_dir / "all_results.json", "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2, ensure_ascii=False)
        row = results_markdown_row(results)
        (tmp_dir / "results.md").write_text(RESULTS_MD_HEADER + row, encoding="utf-8")
        commit_dir(tmp_dir, output_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    if data_args.results_md:
        append_results_md(data_args.results_md, row)
    logger.info("Test %s: %.4f  (%s)", main_metric, results["test_metrics"][main_metric], output_dir)
    return results


# --------------------------------------------------------------------------------------------------
# The paper's Table 4: models × (two tasks per language), mean ± std over seeds
# --------------------------------------------------------------------------------------------------


def load_results(paths: Iterable[str | os.PathLike]) -> list[dict]:
    """``all_results.json`` files (or directories holding one, searched recursively)."""
    out = []
    for p in paths:
        p = Path(p)
        files = sorted(p.rglob("all_results.json")) if p.is_dir() else [p]
        for f in files:
            if not f.is_file():
                raise DataError(f"No results file {str(f)!r}.")
            with open(f, encoding="utf-8") as fh:
                out.append(json.load(fh))
    if not out:
        raise DataError(f"No all_results.json found under {[str(p) for p in paths]}.")
    return out


def _task_columns(tasks: Iterable[str]) -> list[str]:
    """Tasks in the paper's Table 3 order (language by language, task 1 then task 2), extras after."""
    present = set(tasks)
    ordered = [t for pair in PAPER_TASKS.values() for t in pair if t in present]
    by_lang: dict[str, list[str]] = {}
    for t in sorted(present - set(ordered)):
        lang = TASKS[t].language if t in TASKS else "?"
        by_lang.setdefault(lang, []).append(t)
    # extras of a paper language go right after that language's columns
    out = []
    for lang, pair in PAPER_TASKS.items():
        out += [t for t in pair if t in present] + by_lang.pop(lang, [])
    for lang in sorted(by_lang):
        out += by_lang[lang]
    return out


def aggregate_results(results: list[dict]) -> dict:
    """``{"models": [...], "tasks": [...], "cells": {model: {task: {"mean", "std", "n", "metric", "seeds",
    "provenance", "differs_from_paper", "data"}}}}``.

    Scores are the test value of each task's main metric, in percent; ``std`` is the sample standard
    deviation over seeds (0 for a single seed). ``provenance`` is the code(s) of :data:`tasks.PROVENANCE_CODES`
    of the cell's runs (``?`` for results written before provenance was recorded)."""
    cells: dict[str, dict[str, dict]] = {}
    models: list[str] = []
    for r in results:
        if r["model"] not in models:
            models.append(r["model"])
        cell = cells.setdefault(r["model"], {}).setdefault(
            r["task"], {"scores": [], "seeds": [], "metric": r["main_metric"], "codes": [], "data": []}
        )
        cell["scores"].append(100 * r["test_metrics"][r["main_metric"]])
        cell["seeds"].append(r["seed"])
        provenance = r.get("data_provenance") or {"code": "?", "differs_from_paper": True, "description": "?"}
        for key, value in (("codes", provenance["code"]), ("data", provenance["description"])):
            if value not in cell[key]:
                cell[key].append(value)
        cell["differs_from_paper"] = cell.get("differs_from_paper", False) or bool(provenance["differs_from_paper"])
    for per_task in cells.values():
        for cell in per_task.values():
            s = cell.pop("scores")
            cell.update(mean=statistics.fmean(s), std=statistics.stdev(s) if len(s) > 1 else 0.0, n=len(s))
            cell["provenance"] = "/".join(cell.pop("codes"))
    tasks = _task_columns({t for per_task in cells.values() for t in per_task})
    return {"models": models, "tasks": tasks, "cells": cells}


def wilcoxon_vs_teacher(agg: dict, teacher: str) -> dict[str, dict]:
    """The paper's significance test: Wilcoxon signed-rank, left-tailed (H1: the model scores *lower* than the
    teacher), paired over the table cells (tasks) both have, on the cells' mean scores.

    Returns ``{model: {"n", "statistic", "p_value", "tasks"}}`` for every model but the teacher; ``statistic``
    is scipy's (the sum of the ranks of the positive differences model − teacher). Ties (zero differences) are
    dropped (``zero_method="wilcox"``); with fewer than 1 non-zero difference there is no test (``p_value`` None).
    """
    from scipy.stats import wilcoxon

    if teacher not in agg["cells"]:
        raise ConfigurationError(
            f"--teacher {teacher!r} is not a row of the table (rows: {', '.join(agg['models'])})."
        )
    out = {}
    for model in agg["models"]:
        if model == teacher:
            continue
        tasks = [t for t in agg["tasks"] if t in agg["cells"][model] and t in agg["cells"][teacher]]
        ours = [agg["cells"][model][t]["mean"] for t in tasks]
        theirs = [agg["cells"][teacher][t]["mean"] for t in tasks]
        nonzero = sum(a != b for a, b in zip(ours, theirs))
        if nonzero == 0:
            out[model] = {"n": len(tasks), "statistic": None, "p_value": None, "tasks": tasks}
            continue
        result = wilcoxon(ours, theirs, alternative="less", zero_method="wilcox")
        out[model] = {
            "n": len(tasks),
            "statistic": float(result.statistic),
            "p_value": float(result.pvalue),
            "tasks": tasks,
        }
    return out


def format_table4(agg: dict, significance: dict[str, dict] | None = None, teacher: str | None = None) -> str:
    """Markdown table in the paper's Table 4 layout: rows models, columns ``lang task`` (task 1 / task 2 per
    language), cells ``mean ± std`` over seeds (``n`` seeds noted in the header line under the table).

    Every cell carries its data provenance code (``L``, ``H``, ``S``, ``F``, ``+R``; legend under the table)
    and ``†`` when its data or split differs from the paper's. ``significance`` (from
    :func:`wilcoxon_vs_teacher`) adds the test's lines."""
    tasks = agg["tasks"]

    def title(t):
        task = TASKS.get(t)
        return f"{task.language} {task.title}" if task else t

    header = "| model | " + " | ".join(title(t) for t in tasks) + " |\n"
    header += "|---|" + "---:|" * len(tasks) + "\n"
    lines = []
    for m in agg["models"]:
        vals = []
        for t in tasks:
            c = agg["cells"][m].get(t)
            if c is None:
                vals.append("–")
                continue
            score = f"{c['mean']:.2f} ± {c['std']:.2f}" if c["n"] > 1 else f"{c['mean']:.2f}"
            mark = c.get("provenance", "?") + ("†" if c.get("differs_from_paper", True) else "")
            vals.append(f"{score} {mark}")
        lines.append(f"| {m} | " + " | ".join(vals) + " |\n")
    metrics = ", ".join(f"{title(t)}: {TASKS[t].main_metric if t in TASKS else '?'}" for t in tasks)
    seeds = sorted({c["n"] for per in agg["cells"].values() for c in per.values()})
    note = f"\nTest scores in %, mean ± std over {'/'.join(map(str, seeds))} seed(s). Metrics: {metrics}.\n"
    cells = [c for per in agg["cells"].values() for c in per.values()]
    used = {part.split("+")[0] for c in cells for part in c.get("provenance", "?").split("/")}
    legend = [f"{code} = {PROVENANCE_CODES[code]}" for code in PROVENANCE_CODES if code in used]
    if any("+R" in c.get("provenance", "") for c in cells):
        legend.append(f"+R = {PROVENANCE_CODES['R']}")
    note += "Data: " + "; ".join(legend) + ". † = data or split differs from the paper's.\n"
    sources = []
    for t in tasks:
        data = sorted({d for m in agg["models"] for d in agg["cells"][m].get(t, {}).get("data", [])})
        if data:
            sources.append(f"{title(t)}: {' / '.join(data)}")
    if sources:
        note += "Sources: " + "; ".join(sources) + ".\n"
    if significance:
        parts = []
        for model, test in significance.items():
            if test["p_value"] is None:
                parts.append(f"{model}: no test ({test['n']} cells, no difference)")
            else:
                parts.append(f"{model}: W+ = {test['statistic']:g}, p = {test['p_value']:.4f} over {test['n']} cells")
        note += (
            f"Wilcoxon signed-rank test, left-tailed (H1: lower than {teacher}), paired over cells: "
            + "; ".join(parts)
            + ".\n"
        )
    return header + "".join(lines) + note


@dataclass
class EvalTableArguments:
    models: list[str] = field(
        default_factory=list,
        metadata={"help": "Models to fine-tune, as PATH or LABEL=PATH (LABEL names the table row)."},
    )
    tasks: list[str] = field(
        default_factory=list,
        metadata={"help": "Registered tasks, or 'paper' for the 12 tasks of the paper's Table 3."},
    )
    seeds: list[int] = field(default_factory=lambda: [42], metadata={"help": "Fine-tuning seeds (mean ± std)."})
    from_results: list[str] = field(
        default_factory=list, metadata={"help": "Also (or only) read these all_results.json files / directories."}
    )
    rerun: bool = field(default=False, metadata={"help": "Re-run cells whose all_results.json already exists."})
    teacher: str | None = field(
        default=None,
        metadata={
            "help": "Row (model label) of the teacher for the Wilcoxon signed-rank test (left-tailed, every other "
            "row vs it, over cells). Default: the first model; 'none' to skip the test."
        },
    )


def _model_spec(spec: str) -> tuple[str, str]:
    label, sep, path = spec.partition("=")
    return (label, path) if sep else (Path(spec.rstrip("/")).name, spec)


def run_eval_table(
    table_args: EvalTableArguments, data_args: FinetuneDataArguments, training_args: FinetuneTrainingArguments
) -> dict:
    """Fine-tune every model on every task with every seed (``<output_dir>/<model>/<task>/seed<N>``), then
    write ``eval_table.md`` / ``eval_table.json`` in the paper's Table 4 layout. Finished cells are reused
    (``--rerun`` to redo them); a cell that fails with a user-fixable error is reported and skipped."""
    from .errors import EliquareError

    if not training_args.output_dir:
        raise ConfigurationError("Pass --output_dir (the root of all runs and the table).")
    root = Path(training_args.output_dir)
    tasks = [
        t
        for name in table_args.tasks
        for t in ([t for p in PAPER_TASKS.values() for t in p] if name == "paper" else [name])
    ]
    for t in tasks:
        get_task(t)
    if table_args.models and not tasks:
        raise ConfigurationError("Pass --tasks (task names or 'paper').")
    if not table_args.models and not table_args.from_results:
        raise ConfigurationError("Pass --models to fine-tune, or --from_results to tabulate existing runs.")
    results = load_results(table_args.from_results) if table_args.from_results else []
    failures = []
    for spec in table_args.models:
        label, path = _model_spec(spec)
        for task in tasks:
            for seed in table_args.seeds:
                run_dir = root / label / task / f"seed{seed}"
                done = run_dir / "all_results.json"
                if done.is_file() and not table_args.rerun:
                    logger.info("Reusing %s", done)
                    results.extend(load_results([done]))
                    continue
                cell_data = dataclasses.replace(data_args, task=task, results_md=str(root / "results.md"))
                cell_train = dataclasses.replace(
                    training_args,
                    output_dir=str(run_dir),
                    seed=seed,
                    overwrite_output_dir=training_args.overwrite_output_dir or table_args.rerun,
                )
                model_args = FinetuneModelArguments(model_name_or_path=path, model_label=label)
                try:
                    results.append(run_finetune(model_args, cell_data, cell_train))
                except EliquareError as err:
                    logger.error("%s × %s (seed %d) failed: %s", label, task, seed, err)
                    failures.append({"model": label, "task": task, "seed": seed, "error": str(err)})
    if not results:
        raise DataError(f"No run finished; failures: {failures}")
    agg = aggregate_results(results)
    teacher = table_args.teacher or (agg["models"][0] if len(agg["models"]) > 1 else "none")
    significance = None if teacher == "none" else wilcoxon_vs_teacher(agg, teacher)
    table = format_table4(agg, significance, teacher)
    if failures:
        table += (
            "\nFailed: "
            + "; ".join(f"{f['model']} × {f['task']} (seed {f['seed']}): {f['error']}" for f in failures)
            + "\n"
        )
    root.mkdir(parents=True, exist_ok=True)
    (root / "eval_table.md").write_text(table, encoding="utf-8")
    with open(root / "eval_table.json", "w", encoding="utf-8") as f:
        json.dump(
            {
                **agg,
                "significance": {
                    "test": "wilcoxon signed-rank, left-tailed",
                    "teacher": teacher,
                    "by_model": significance,
                },
                "failures": failures,
                "runs": [
                    {k: r[k] for k in ("model", "task", "seed", "main_metric", "test_metrics", "validation_metrics")}
                    for r in results
                ],
            },
            f,
            indent=2,
            ensure_ascii=False,
        )
    print(table)
    return {**agg, "significance": significance, "failures": failures, "table": table}
