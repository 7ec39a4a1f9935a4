"""Pretraining / distillation text for the study, with the evaluation sentences kept out.

The teacher is trained on every language's text named in the scale's config; the students are
distilled on their language's part of it. Both must never see a sentence of a data set that is later
used for fine-tuning (the offline SSJ has no train split, so its dev+test *are* the fine-tuning data;
SIB-200 is parallel across languages, so none of its languages may be used). Every line of the
sources is therefore split into sentences and compared with every sentence of the ``exclude`` files
after removing all whitespace (the CoNLL files are tokenised, the raw text is not); a line that
contains one such sentence is dropped as a whole, and the numbers are recorded.
"""

from __future__ import annotations

import csv
import glob
import gzip
import os
import random
import re
from collections.abc import Iterator
from pathlib import Path

from hf_eliquare.data import split_sentences

_SPACE = re.compile(r"\s+")


def squash(text: str) -> str:
    """The comparison key: the text without any whitespace."""
    return _SPACE.sub("", text)


def _open(path: str):
    return gzip.open(path, "rt", encoding="utf-8") if path.endswith(".gz") else open(path, encoding="utf-8")


def conllu_sentences(path: str) -> Iterator[str]:
    """The sentences of a CoNLL-U file: its ``# text =`` lines, else the word forms joined by spaces."""
    text, words = None, []
    with _open(path) as handle:
        for line in handle:
            line = line.rstrip("\n")
            if not line.strip():
                if text or words:
                    yield text if text else " ".join(words)
                text, words = None, []
            elif line.startswith("# text ="):
                text = line.split("=", 1)[1].strip()
            elif not line.startswith("#"):
                fields = line.split("\t")
                if len(fields) > 1 and fields[0].isdigit():
                    words.append(fields[1])
    if text or words:
        yield text if text else " ".join(words)


def conll_sentences(path: str) -> Iterator[str]:
    """The sentences of a ``token TAG`` file (blank line between sentences)."""
    words: list[str] = []
    with _open(path) as handle:
        for line in handle:
            parts = line.split()
            if not parts:
                if words:
                    yield " ".join(words)
                words = []
            elif parts[0] != "-DOCSTART-":
                words.append(parts[0])
    if words:
        yield " ".join(words)


def tsv_sentences(path: str) -> Iterator[str]:
    """The text column (``text`` / ``tweet`` / ``sentence``) of a TSV file with a header."""
    with _open(path) as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        column = next((c for c in ("text", "tweet", "sentence") if c in (reader.fieldnames or [])), None)
        if column is None:
            raise ValueError(f"{path}: no text/tweet/sentence column in {reader.fieldnames}")
        for row in reader:
            if row.get(column):
                yield row[column]


def text_lines(path: str) -> Iterator[str]:
    with _open(path) as handle:
        for line in handle:
            line = _SPACE.sub(" ", line).strip()
            if line:
                yield line


def read_source(path: str) -> Iterator[str]:
    """Lines of text of any supported file, by extension."""
    if path.endswith(".conllu"):
        return conllu_sentences(path)
    if path.endswith(".tsv"):
        return tsv_sentences(path)
    if path.endswith((".txt.gz", ".gz")) or "/text/" in path:
        return text_lines(path)
    if path.endswith(".txt"):  # CoNLL token-per-line (NER) files
        return conll_sentences(path)
    raise ValueError(f"Unsupported source file {path!r} (.conllu, .tsv, token-per-line .txt, or text .txt.gz).")


def expand(root: Path, patterns: list[str]) -> list[str]:
    """Paths relative to ``root`` (globs allowed), sorted; a pattern matching nothing is an error."""
    out = []
    for pattern in patterns:
        matches = sorted(glob.glob(str(root / pattern)))
        if not matches:
            raise FileNotFoundError(f"{root / pattern} matches no file (is the shared data at {root}?)")
        out.extend(matches)
    return out


def build_corpora(
    root: Path,
    sources: dict[str, list[str]],
    exclude: list[str],
    out_dir: Path,
    validation_lines: int,
    seed: int,
    max_lines: int | None = None,
) -> dict:
    """Write ``<lang>.train.txt`` and ``<lang>.validation.txt`` per language into ``out_dir``.

    ``sources`` maps a language to file patterns under ``root``; lines containing a sentence of an
    ``exclude`` file are dropped. The validation lines are a seeded random sample per language
    (``validation_lines``, at most 5 % of the language). Returns the record of what was kept.
    """
    banned = set()
    for path in expand(root, exclude):
        for sentence in read_source(path):
            key = squash(sentence)
            if len(key) >= 8:  # "Da." and the like are not evidence of anything
                banned.add(key)
    out_dir.mkdir(parents=True, exist_ok=True)
    record: dict = {"excluded_sentences": len(banned), "exclude": exclude, "languages": {}}
    for lang, patterns in sources.items():
        kept, dropped = [], 0
        for path in expand(root, patterns):
            for line in read_source(path):
                if max_lines is not None and len(kept) >= max_lines:
                    break
                pieces = [squash(s) for s in split_sentences(line)] + [squash(line)]
                if any(p in banned for p in pieces):
                    dropped += 1
                    continue
                kept.append(line)
        rng = random.Random(f"{seed}-{lang}")
        n_val = min(validation_lines, max(1, len(kept) // 20))
        val_idx = set(rng.sample(range(len(kept)), n_val))
        train = [line for i, line in enumerate(kept) if i not in val_idx]
        val = [line for i, line in enumerate(kept) if i in val_idx]
        for split, lines in (("train", train), ("validation", val)):
            tmp = out_dir / f".{lang}.{split}.txt.tmp"
            tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
            os.replace(tmp, out_dir / f"{lang}.{split}.txt")
        record["languages"][lang] = {
            "sources": patterns,
            "lines_kept": len(kept),
            "lines_dropped_for_overlap": dropped,
            "train_lines": len(train),
            "validation_lines": len(val),
            "train_words": sum(len(line.split()) for line in train),
        }
    return record
