"""The text VocabReduce counts on: files, a ``datasets.Dataset`` or an iterable of sentences."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..data import JSON_LINES_SUFFIXES, iter_corpus_file, split_sentences
from ..errors import DataError

_DATASET_SUFFIXES = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}
#: A ``str`` in a corpus list is a file name (not a sentence) when it has no white space and one of these endings.
CORPUS_FILE_SUFFIXES = (".txt", ".gz", ".bz2", ".xz", ".text", *_DATASET_SUFFIXES)


def _looks_like_file_name(item: Any) -> bool:
    return (
        isinstance(item, str)
        and bool(item)
        and not any(ch.isspace() for ch in item)
        and item.lower().endswith(CORPUS_FILE_SUFFIXES)
    )


def _as_paths(corpus: Any) -> list[Path] | None:
    """Paths when ``corpus`` names files: a ``str``/``PathLike``, or a sequence of ``PathLike`` or file names."""
    if isinstance(corpus, (str, os.PathLike)):
        return [Path(corpus)]
    if isinstance(corpus, (list, tuple)) and corpus:
        # Paths, or file names given as str as build_mlm_datasets(train_files=[...]) takes them
        # ("sw.txt", "data/sl.txt.gz"): never read as the sentences "sw.txt", "data/sl.txt.gz".
        if all(isinstance(x, os.PathLike) or _looks_like_file_name(x) for x in corpus):
            return [Path(x) for x in corpus]
    return None


def iter_text_file(path: str | os.PathLike) -> Iterator[str]:
    """Sentences of a plain or gzipped UTF-8 text file: each non-empty line through
    :func:`hf_eliquare.data.split_sentences`. Unreadable files raise :class:`DataError` naming the file."""
    from ..data import iter_text_lines

    for line in iter_text_lines(path, role="Corpus file"):
        yield from split_sentences(line)


def _iter_dataset_file(path: Path, text_column: str) -> Iterator[str]:
    from datasets import load_dataset

    dataset = load_dataset(_DATASET_SUFFIXES[path.suffix], data_files=str(path), split="train")
    yield from _iter_dataset(dataset, text_column, name=str(path))


def _iter_dataset(dataset: Any, text_column: str, name: str = "the dataset") -> Iterator[str]:
    if text_column not in dataset.column_names:
        raise DataError(
            f"{name} has no column {text_column!r} (columns: {dataset.column_names}). "
            "Name the text column with text_column= (--text_column)."
        )
    for batch in dataset.select_columns([text_column]).iter(batch_size=1000):
        yield from batch[text_column]


def iter_corpus(corpus: Any, text_column: str = "text") -> Iterator[str]:
    """The non-empty sentences of ``corpus``.

    ``corpus`` is a path (``str`` or :class:`~pathlib.Path`) or a list of :class:`~pathlib.Path` —
    text files (.txt, .gz; lines split into sentences) or .json/.jsonl/.csv/.parquet read with
    ``datasets`` (column ``text_column``) —, a :class:`datasets.Dataset`, or any iterable of
    strings (one sentence each). In a list, ``str`` items are file names when every item is a path or a
    name without white space ending in a corpus suffix (.txt, .gz, .jsonl, …); otherwise they are sentences.
    """
    paths = _as_paths(corpus)
    if paths is not None:
        for path in paths:
            if str(path).lower().endswith(JSON_LINES_SUFFIXES):  # streamed, no Arrow cache
                items: Iterable[str] = (
                    s
                    for text in iter_corpus_file(path, text_column, role="Corpus file")
                    for s in split_sentences(text)
                )
            elif path.suffix in _DATASET_SUFFIXES:
                items = _iter_dataset_file(path, text_column)
            else:
                items = iter_text_file(path)
            for text in items:
                if text and text.strip():
                    yield text
        return
    if hasattr(corpus, "column_names") and hasattr(corpus, "select_columns"):
        items = _iter_dataset(corpus, text_column)
    else:
        items = corpus
    for text in items:
        if not isinstance(text, str):
            raise DataError(
                f"The corpus yielded a {type(text).__name__}, not a string. Pass strings, a datasets.Dataset "
                "with a text column, or file paths (pathlib.Path)."
            )
        if text.strip():
            yield text


def _corpus_length(corpus: Any) -> int | None:
    if _as_paths(corpus) is None and hasattr(corpus, "__len__"):
        return len(corpus)
    return None


def _describe_corpus(corpus: Any) -> str:
    paths = _as_paths(corpus)
    return f"files {[str(p) for p in paths]}" if paths is not None else "the corpus"
