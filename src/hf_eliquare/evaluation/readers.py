"""Readers: files (CoNLL-U, ``token TAG`` CoNLL, TSV/CSV/JSONL) or a Hub dataset into plain examples.

Token tasks give ``{"tokens": [...], "labels": [...]}`` (CoNLL-U ``UPOS``/``XPOS`` or MISC ``NER=``;
CoNLL ``token TAG``), classification gives ``{"text": str, "label": str}``. Malformed input raises
:class:`~hf_eliquare.errors.DataError` with file and line number; nothing is guessed.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from ..errors import ConfigurationError, DataError
from .tasks import TOKEN_TASKS

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


def _open_text(path: str | os.PathLike) -> io.StringIO:
    """The file's text (fine-tuning files are small); a missing file or bytes that are not UTF-8 raise
    :class:`DataError` naming the file and the line."""
    path = Path(path)
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise DataError(f"Data file {str(path)!r} {what}. Check --train_file/--validation_file/--test_file.")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        utf16 = data[:2] in (b"\xff\xfe", b"\xfe\xff")
        source = "UTF-16" if utf16 else "its encoding (e.g. LATIN2)"
        raise DataError(
            f"{path}:{line}: not valid UTF-8 ({err.reason}). Convert the file from {source}, e.g. "
            f"`iconv -f {'UTF-16' if utf16 else 'LATIN2'} -t UTF-8 in > out`."
        ) from None
    return io.StringIO(text.removeprefix("\ufeff"), newline="")


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
                if None in row or any(value is None for value in row.values()):
                    found = len(columns) + len(row.get(None) or []) - sum(v is None for v in row.values())
                    separator = "a tab" if data_format == "tsv" else "an unquoted comma"
                    raise DataError(
                        f"{path}:{reader.line_num}: {found} fields, but the header has {len(columns)} "
                        f"({', '.join(map(str, columns))}). A text containing {separator} shifts the columns: "
                        "remove or escape it in the file."
                    )
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

    from ..errors import OfflineError
    from ..hub import hub_offline_mode, require_hub

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
