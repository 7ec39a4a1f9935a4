#!/usr/bin/env python
"""Build the committed assets of the embedded demo: the Slovene text sample and the small tokenizer.

    python examples/demo/build_demo_assets.py [--shared_data ../shared/data]

Run once by maintainers (it needs the offline data copy in ``../shared/data``); the two outputs are
committed, so users never run it:

* ``examples/demo/data/sl_sample.txt`` — one sentence per line: the ``# text =`` sentences of the
  UD_Slovenian-SSJ **dev** split (CC BY-SA 4.0), then the ``text`` column of SIB-200 ``slv_Latn``
  **train** (FLORES-200 sentences, CC BY-SA 4.0). Whitespace collapsed, exact duplicates dropped
  (first occurrence kept), and any line equal to a UD_Slovenian-SSJ **test** sentence dropped (the
  test split is evaluation data; it is only read here to check that none of it leaks in).
* ``examples/demo/tokenizer/`` — the cased mBERT WordPiece vocabulary restricted, with
  :func:`hf_eliquare.vocab.reduce_tokenizer`, to the special tokens, every piece the sample uses, and
  the single-character pieces (``x`` and ``##x``) of the Latin scripts, punctuation and currency signs,
  so an unseen Slovene word falls back to characters instead of ``[UNK]``. Special tokens come first,
  all other pieces keep mBERT's relative order. Normalizer, pre-tokenizer and post-processor are
  mBERT's.

The script is deterministic (no randomness, file order everywhere); it checks that the reduced
tokenizer, reloaded with ``AutoTokenizer``, segments every sample line exactly as the full mBERT
tokenizer does, and writes each output through a temporary directory renamed at the end.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

from transformers import AutoTokenizer

from hf_eliquare.cli import run_main, setup_logging
from hf_eliquare.errors import DataError
from hf_eliquare.vocab import always_kept_ids, count_sentence_occurrences, reduce_tokenizer

logger = logging.getLogger("build_demo_assets")

DEMO_DIR = Path(__file__).resolve().parent
ROOT = DEMO_DIR.parents[1]
DEFAULT_SHARED = ROOT.parent / "shared" / "data"
MBERT_CASED = Path("tokenizers") / "bert-base-multilingual-cased"
UD_DEV = Path("ud") / "sl" / "dev.conllu"
UD_TEST = Path("ud") / "sl" / "test.conllu"
SIB_TRAIN = Path("cls") / "sl" / "sib200" / "train.tsv"

#: Code-point ranges whose single-character pieces are always kept: Basic Latin, Latin-1, Latin
#: Extended-A/B, Latin Extended Additional, General Punctuation, currency signs.
CHARACTER_RANGES = ((0x0000, 0x024F), (0x1E00, 0x1EFF), (0x2000, 0x206F), (0x20A0, 0x20CF))
#: The sample must stay small enough to live in the repository.
MAX_SAMPLE_BYTES = 2 * 1024 * 1024

_SPACES = re.compile(r"\s+")


def _clean(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def conllu_sentences(path: Path) -> list[str]:
    """The ``# text = ...`` sentences of a CoNLL-U file, in file order."""
    with open(path, encoding="utf-8") as handle:
        return [_clean(line[len("# text =") :]) for line in handle if line.startswith("# text =")]


def tsv_column(path: Path, column: str = "text") -> list[str]:
    """One column of a tab-separated file with a header row, in file order."""
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [_clean(row[column]) for row in reader]


def build_sample(shared: Path) -> tuple[list[str], dict]:
    """The sample's lines and a few statistics for the attribution file."""
    test = set(conllu_sentences(shared / UD_TEST))
    sources = {"ud_sl_ssj_dev": conllu_sentences(shared / UD_DEV), "sib200_slv_train": tsv_column(shared / SIB_TRAIN)}
    seen: set[str] = set()
    lines: list[str] = []
    stats: dict[str, dict[str, int]] = {}
    for name, sentences in sources.items():
        kept = dropped_test = dropped_dup = 0
        for sentence in sentences:
            if not sentence:
                continue
            if sentence in test:
                dropped_test += 1
            elif sentence in seen:
                dropped_dup += 1
            else:
                seen.add(sentence)
                lines.append(sentence)
                kept += 1
        stats[name] = {
            "read": len(sentences),
            "kept": kept,
            "dropped_duplicate": dropped_dup,
            "dropped_in_test": dropped_test,
        }
    return lines, stats


def character_piece_ids(tokenizer) -> list[int]:
    """Ids of the single-character pieces (``x`` and ``##x``) whose character is in CHARACTER_RANGES."""
    ids = []
    for token, index in tokenizer.get_vocab().items():
        char = token[2:] if token.startswith("##") else token
        if len(char) == 1 and any(lo <= ord(char) <= hi for lo, hi in CHARACTER_RANGES):
            ids.append(index)
    return ids


def kept_vocabulary(tokenizer, lines: list[str]) -> list[int]:
    """Specials first (original order), then every used or single-character piece in mBERT order."""
    counts, _ = count_sentence_occurrences(tokenizer, lines, show_progress=False)
    specials = always_kept_ids(tokenizer)
    rest = (set(counts.nonzero()[0].tolist()) | set(character_piece_ids(tokenizer))) - set(specials)
    return specials + sorted(rest)


def _replace_dir(tmp: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)


def main(argv=None):
    setup_logging()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared_data", type=Path, default=DEFAULT_SHARED, help="The offline data copy.")
    args = parser.parse_args(argv)
    for part in (MBERT_CASED, UD_DEV, UD_TEST, SIB_TRAIN):
        if not (args.shared_data / part).exists():
            raise DataError(
                f"{args.shared_data / part} is missing. This maintainer script needs the offline data copy; "
                "pass it with --shared_data DIR. Users do not need it: its outputs are committed."
            )

    lines, stats = build_sample(args.shared_data)
    text = "".join(line + "\n" for line in lines)
    if len(text.encode("utf-8")) > MAX_SAMPLE_BYTES:
        raise DataError(f"The sample would be {len(text.encode())} bytes, over the {MAX_SAMPLE_BYTES} byte limit.")
    data_dir = DEMO_DIR / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=data_dir, delete=False, suffix=".tmp") as handle:
        handle.write(text)
    os.chmod(handle.name, 0o644)
    os.replace(handle.name, data_dir / "sl_sample.txt")

    full = AutoTokenizer.from_pretrained(args.shared_data / MBERT_CASED)
    kept = kept_vocabulary(full, lines)
    small = reduce_tokenizer(full, kept)
    small.model_max_length = 128  # the demo teacher's position embeddings
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-tokenizer-", dir=DEMO_DIR))
    tmp.chmod(0o755)
    small.save_pretrained(tmp)

    reloaded = AutoTokenizer.from_pretrained(tmp)
    mismatches = [line for line in lines if reloaded.tokenize(line) != full.tokenize(line)]
    if mismatches:
        shutil.rmtree(tmp)
        raise DataError(f"{len(mismatches)} sample lines tokenise differently, e.g. {mismatches[0]!r}.")
    unk = sum(reloaded.tokenize(line).count(reloaded.unk_token) for line in lines)
    _replace_dir(tmp, DEMO_DIR / "tokenizer")

    summary = {
        "sample_lines": len(lines),
        "sample_bytes": len(text.encode("utf-8")),
        "sources": stats,
        "vocab_size": len(kept),
        "specials": len(always_kept_ids(full)),
        "character_pieces": len(set(character_piece_ids(full)) - set(always_kept_ids(full))),
        "unk_in_sample": unk,
        "tokenizer_class": type(reloaded).__name__,
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    run_main(main)
