"""The target-language corpus: loading, sentence splitting, tokenisation, train/validation split.

As in DistilBERT's ``binarized_data.py`` + ``LmSeqsDataset``: every sentence becomes one sequence
``[CLS] … [SEP]``; sequences longer than ``max_seq_length`` are cut into several, sequences with
``min_seq_length`` tokens or fewer (DistilBERT: 11) are dropped, and so are sequences that are
half unknown tokens. All heavy steps run through ``datasets.map`` (batched, cached, ``num_proc``).
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import zlib
from collections.abc import Iterator, Sequence

import numpy as np
from datasets import Dataset, DatasetDict

from .errors import DataError
from .hub import require_hub
from .languages import WIKIPEDIA_DATASET

logger = logging.getLogger(__name__)

# A sentence ends with . ! ? … or the Devanagari danda, optionally followed by closing quotes or
# brackets, then whitespace. We split there unless the next word starts in lower case (so "npr. tudi"
# stays together), or the word before the full stop is a lone capital initial ("J. Novak") or a
# common abbreviation ("Dr. Novak").
_BOUNDARY = re.compile(r"([.!?…।॥]+[\"'”’»)\]]*)\s+")
_INITIAL = re.compile(r"(?:^|\s)[A-ZÀ-ÖØ-ÞĀ-Ž]\.$")
# Titles and common abbreviations that are followed by a capitalised word without ending a sentence.
_ABBREVIATIONS = frozenset(
    "dr mr mrs ms prof st sv mag ing jr sr gen col lt sgt rev hon mt ft no nr npr itd tj oz ca vs etc "
    "mme mlle mgr bzw usw inc ltd co corp dipl".split()
)


def split_sentences(text: str) -> list[str]:
    """Split a paragraph into sentences with a light, language-agnostic rule (see module docs).

    Lines are never joined: a newline always ends a sentence. Empty pieces are dropped.
    """
    sentences: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        start = 0
        for match in _BOUNDARY.finditer(line):
            nxt = line[match.end() : match.end() + 1]
            before = line[start : match.end(1)]
            last_word = before.rsplit(None, 1)[-1].rstrip(".").lower() if before.strip() else ""
            if not nxt or nxt.islower() or _INITIAL.search(before) or last_word in _ABBREVIATIONS:
                continue
            piece = line[start : match.end(1)].strip()
            if piece:
                sentences.append(piece)
            start = match.end()
        piece = line[start:].strip()
        if piece:
            sentences.append(piece)
    return sentences


def _likely_encoding(path: str) -> str:
    """For the conversion hint: UTF-16 when the file starts with its byte-order mark, else a Latin-2 guess."""
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as handle:
            head = handle.read(2)
    except (OSError, EOFError):
        return "LATIN2"
    return "UTF-16" if head in (b"\xff\xfe", b"\xfe\xff") else "LATIN2"


def iter_text_lines(path: str | os.PathLike, role: str = "Training file") -> Iterator[str]:
    """The non-empty lines (stripped) of a plain or ``.gz`` UTF-8 text file, read once, streaming.

    A missing, truncated, undecodable or text-less file raises :class:`DataError` naming the file.
    """
    path = str(path)
    if os.path.isdir(path):
        raise DataError(f"{role} {path!r} is a directory. Pass the text files in it (plain or .gz).")
    if not os.path.isfile(path):
        raise DataError(f"{role} {path!r} does not exist. Pass existing text files (plain or .gz).")
    opener = gzip.open if path.endswith(".gz") else open
    line_number = 0
    has_text = False
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            for line_number, line in enumerate(handle, start=1):  # noqa: B007 (read in the except clause)
                line = line.strip()
                if line:
                    has_text = True
                    yield line
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise DataError(
            f"{role} {path!r} is not a readable {'gzip' if path.endswith('.gz') else 'text'} file after line "
            f"{line_number} ({err}). It may be truncated or corrupt: re-download or re-compress it "
            "(`gzip -t FILE` checks a .gz file)."
        ) from None
    except UnicodeDecodeError as err:
        raise DataError(
            f"{role} {path!r} is not valid UTF-8 (near line {line_number + 1}: {err.reason}). "
            f"Convert it first, e.g. `iconv -f {_likely_encoding(path)} -t UTF-8 in.txt > out.txt`."
        ) from None
    if not has_text:
        raise DataError(
            f"{role} {path!r} has no text (it is empty or whitespace only). Pass files with one "
            "paragraph or sentence per line."
        )


#: Corpus files read as one JSON object per line (the text in ``text_column``), plain or ``.gz``.
JSON_LINES_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz")


def iter_corpus_file(path: str | os.PathLike, text_column: str = "text", role: str = "Training file") -> Iterator[str]:
    """The texts of one corpus file: the non-empty lines of a text file (:func:`iter_text_lines`), or the
    ``text_column`` of each object of a JSON-lines file (never the raw JSON). A line that is not an object
    with that column raises :class:`DataError` with file and line."""
    if not str(path).lower().endswith(JSON_LINES_SUFFIXES):
        yield from iter_text_lines(path, role=role)
        return
    import json

    for line_number, line in enumerate(iter_text_lines(path, role=role), start=1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: non-empty line {line_number} is not valid JSON ({err.msg}).") from None
        if not isinstance(row, dict) or text_column not in row:
            columns = sorted(row) if isinstance(row, dict) else type(row).__name__
            raise DataError(
                f"{path}: non-empty line {line_number} has no {text_column!r} field ({columns}). Name the text "
                "field with --text_column."
            )
        text = row[text_column]
        if isinstance(text, str) and text.strip():
            yield text.strip()


def _text_file_rows(paths: list[str], stamps: list[tuple[int, int]], text_column: str = "text"):
    # ``stamps`` (size, mtime) only make the datasets cache key change when a file changes.
    for path in paths:
        for text in iter_corpus_file(path, text_column):
            yield {"text": text}


def load_text_files(paths: Sequence[str], text_column: str = "text") -> Dataset:
    """One example per non-empty line of the given text files (plain or ``.gz``), column ``text``; for
    JSON-lines files (.jsonl, .json, also gzipped) the ``text_column`` field of each line.

    The files are read once, through :func:`iter_corpus_file`, into a cached ``datasets`` table.
    """
    if isinstance(paths, str):
        paths = [paths]
    if not paths:
        raise DataError("No training files given.")
    paths = [str(p) for p in paths]
    for path in paths:
        if not os.path.isfile(path):
            what = "is a directory, not a file" if os.path.isdir(path) else "does not exist"
            raise DataError(f"Training file {path!r} {what}. Pass existing text files with --train_file.")
    from datasets.exceptions import DatasetGenerationError

    stamps = [(os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in paths]
    try:
        return Dataset.from_generator(
            _text_file_rows, gen_kwargs={"paths": paths, "stamps": stamps, "text_column": text_column}
        )
    except DatasetGenerationError as err:
        if isinstance(err.__cause__, DataError):
            raise err.__cause__ from None
        raise


def load_wikipedia(config_name: str, cache_dir: str | None = None) -> Dataset:
    """The ``wikimedia/wikipedia`` articles of one language (column ``text``), e.g. ``20231101.sl``."""
    require_hub(
        f"The Wikipedia dump {WIKIPEDIA_DATASET}:{config_name}",
        "Use local text instead with `--train_file FILE [FILE ...]` (plain or .gz, one paragraph or sentence "
        "per line), or download the dataset where the Hub is reachable and set HF_DATASETS_OFFLINE=1.",
    )
    from datasets import load_dataset

    return load_dataset(WIKIPEDIA_DATASET, config_name, split="train", cache_dir=cache_dir)


def to_sentences(dataset: Dataset, text_column: str = "text", num_proc: int | None = None) -> Dataset:
    """Split every document of ``dataset`` into sentences: a new dataset with one column ``text``."""
    if text_column not in dataset.column_names:
        raise DataError(f"The corpus has no column {text_column!r} (columns: {dataset.column_names}).")

    def split_batch(batch):
        return {"text": [s for doc in batch[text_column] for s in split_sentences(doc)]}

    return dataset.map(
        split_batch,
        batched=True,
        remove_columns=dataset.column_names,
        num_proc=num_proc,
        desc="Splitting into sentences",
    )


def tokenize_sentences(
    sentences: Dataset,
    tokenizer,
    max_seq_length: int = 512,
    min_seq_length: int = 12,
    max_unk_fraction: float = 0.5,
    num_proc: int | None = None,
) -> Dataset:
    """Token ids ``[CLS] … [SEP]`` per sentence, columns ``input_ids`` and ``length``.

    Sentences longer than ``max_seq_length`` become several sequences (as DistilBERT's
    ``divide_into_chunks``); sequences shorter than ``min_seq_length`` or with more than
    ``max_unk_fraction`` unknown tokens are dropped (``remove_short_sequences`` /
    ``remove_unknown_sequences``).
    """
    if max_seq_length <= tokenizer.num_special_tokens_to_add(pair=False):
        raise DataError(f"max_seq_length={max_seq_length} leaves no room for text after the special tokens.")
    unk_id = tokenizer.unk_token_id

    def encode(batch):
        # The fast tokenizer's overflow handling cuts long sentences into several sequences, each
        # with its own special tokens (DistilBERT's divide_into_chunks).
        encoded = tokenizer(
            batch["text"],
            truncation=True,
            max_length=max_seq_length,
            return_overflowing_tokens=True,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        out_ids, out_len = [], []
        for seq in encoded["input_ids"]:
            if len(seq) < min_seq_length:
                continue
            if unk_id is not None and sum(t == unk_id for t in seq) > max_unk_fraction * len(seq):
                continue
            out_ids.append(seq)
            out_len.append(len(seq))
        return {"input_ids": out_ids, "length": out_len}

    return sentences.map(
        encode,
        batched=True,
        remove_columns=sentences.column_names,
        num_proc=num_proc,
        desc="Tokenizing",
    )


def train_validation_split(dataset: Dataset, validation_split: float = 0.1, seed: int = 42) -> DatasetDict:
    """Seeded split into ``train`` and ``validation`` (the paper: 90:10)."""
    if not 0.0 < validation_split < 1.0:
        raise DataError(f"validation_split must be in (0, 1), got {validation_split}.")
    if len(dataset) < 2:
        raise DataError(
            f"Only {len(dataset)} usable sentence(s) in the corpus: give more text (at least a few hundred "
            "sentences for a meaningful validation split)."
        )
    split = dataset.train_test_split(test_size=validation_split, seed=seed, shuffle=True)
    return DatasetDict(train=split["train"], validation=split["test"])


def token_counts(dataset: Dataset, vocab_size: int, batch_size: int = 10_000) -> np.ndarray:
    """How often each token id occurs in ``dataset['input_ids']``: ``(vocab_size,)`` int64."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for batch in dataset.select_columns(["input_ids"]).iter(batch_size=batch_size):
        if batch["input_ids"]:
            flat = np.fromiter((t for seq in batch["input_ids"] for t in seq), dtype=np.int64)
            counts += np.bincount(flat, minlength=vocab_size)[:vocab_size]
    return counts


def load_sentence_splits(
    *,
    train_files: Sequence[str] | None = None,
    wikipedia_config: str | None = None,
    text_column: str = "text",
    validation_split: float = 0.1,
    seed: int = 42,
    num_proc: int | None = None,
    cache_dir: str | None = None,
) -> DatasetDict:
    """Corpus → sentences → seeded ``train`` / ``validation`` split (column ``text``).

    The split is taken on sentences, before tokenisation, so that no sentence (or piece of one)
    is in both splits, and so a reduced tokenizer can re-tokenise the same split.
    """
    if train_files:
        corpus = load_text_files(train_files, text_column=text_column)
        text_column = "text"
    elif wikipedia_config:
        corpus = load_wikipedia(wikipedia_config, cache_dir=cache_dir)
    else:
        raise DataError("No corpus: pass --train_file FILE or a language with a Wikipedia config (--lang).")
    if len(corpus) == 0:
        raise DataError("The corpus is empty: every line is blank. Pass files with text in them.")
    sentences = to_sentences(corpus, text_column=text_column, num_proc=num_proc)
    return train_validation_split(sentences, validation_split=validation_split, seed=seed)


def tokenize_splits(
    splits: DatasetDict,
    tokenizer,
    *,
    max_seq_length: int = 512,
    min_seq_length: int = 12,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    num_proc: int | None = None,
) -> DatasetDict:
    """Tokenise both sentence splits into MLM sequences (see :func:`tokenize_sentences`)."""
    out = DatasetDict(
        {
            name: tokenize_sentences(
                split, tokenizer, max_seq_length=max_seq_length, min_seq_length=min_seq_length, num_proc=num_proc
            )
            for name, split in splits.items()
        }
    )
    for name in out:
        if len(out[name]) == 0:
            raise DataError(
                f"No {name} sequence is left after tokenisation: every sentence has fewer than "
                f"min_seq_length={min_seq_length} tokens (or is mostly unknown tokens). Give more text or lower "
                "--min_seq_length."
            )
    if max_train_samples is not None:
        out["train"] = out["train"].select(range(min(max_train_samples, len(out["train"]))))
    if max_eval_samples is not None:
        out["validation"] = out["validation"].select(range(min(max_eval_samples, len(out["validation"]))))
    return out


def build_mlm_datasets(
    tokenizer,
    *,
    train_files: Sequence[str] | None = None,
    wikipedia_config: str | None = None,
    text_column: str = "text",
    max_seq_length: int = 512,
    min_seq_length: int = 12,
    validation_split: float = 0.1,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    seed: int = 42,
    num_proc: int | None = None,
    cache_dir: str | None = None,
) -> DatasetDict:
    """Corpus → sentences → seeded train/validation split → tokenised MLM sequences."""
    splits = load_sentence_splits(
        train_files=train_files,
        wikipedia_config=wikipedia_config,
        text_column=text_column,
        validation_split=validation_split,
        seed=seed,
        num_proc=num_proc,
        cache_dir=cache_dir,
    )
    return tokenize_splits(
        splits,
        tokenizer,
        max_seq_length=max_seq_length,
        min_seq_length=min_seq_length,
        max_train_samples=max_train_samples,
        max_eval_samples=max_eval_samples,
        num_proc=num_proc,
    )
