"""VocabReduce numbers: kept vocabulary / parameters of mBERT for sl and sw, and counting throughput.

    python benchmarks/vocab_counting.py            # full corpora, 3 repeats (a few minutes on 2 cores)
    python benchmarks/vocab_counting.py --quick    # 5,000 sentences, 1 repeat (seconds)

Needs the shared data (``../shared/data`` beside the project root). Parameter counts use the real
``bert-base-multilingual-cased`` config (``BertForMaskedLM``, tied decoder) built on the ``meta``
device, so no weights are allocated. Throughput variants run side by side, interleaved, in one
process; medians are reported.
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import statistics
import time
from datetime import date
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MBERT = DATA / "tokenizers" / "bert-base-multilingual-cased"
FRACTIONS = (0.0005, 0.00005)
LANGUAGES = ("sl", "sw")


def load_sentences(lang: str, max_sentences: int | None = None) -> list[str]:
    from hf_eliquare.data import split_sentences

    sentences: list[str] = []
    with gzip.open(DATA / "text" / f"{lang}.txt.gz", "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                sentences.extend(split_sentences(line))
            if max_sentences is not None and len(sentences) >= max_sentences:
                return sentences[:max_sentences]
    return sentences


def mbert_parameters(vocab_size: int) -> int:
    """Parameters of BertForMaskedLM with mBERT's config and ``vocab_size`` (tied decoder counted once)."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    config = BertConfig.from_pretrained(MBERT, vocab_size=vocab_size)
    with torch.device("meta"):
        model = BertForMaskedLM(config)
    return model.num_parameters()


def vocabulary_table(tokenizer, sentences_by_lang: dict[str, list[str]]) -> list[dict]:
    from hf_eliquare.vocab import count_sentence_occurrences, select_vocabulary

    rows = []
    full = mbert_parameters(len(tokenizer))
    for lang, sentences in sentences_by_lang.items():
        counts, n = count_sentence_occurrences(tokenizer, sentences, show_progress=False)
        for fraction in FRACTIONS:
            kept = select_vocabulary(counts, n, tokenizer, min_sentence_fraction=fraction)
            params = mbert_parameters(len(kept))
            rows.append(
                {
                    "lang": lang,
                    "sentences": n,
                    "min_sentence_fraction": fraction,
                    "kept_vocab": len(kept),
                    "kept_vocab_pct": 100 * len(kept) / len(tokenizer),
                    "parameters": params,
                    "parameters_pct": 100 * params / full,
                    "original_vocab": len(tokenizer),
                    "original_parameters": full,
                }
            )
    return rows


def throughput(tokenizer, sentences: list[str], repeats: int, batch_size: int = 1000) -> dict[str, dict]:
    """Sentences/s of plain ``encode_batch`` / ``encode_batch_fast`` loops vs
    :func:`count_sentence_occurrences` (1 and 2 processes), interleaved ``repeats`` times."""
    from hf_eliquare.vocab import count_sentence_occurrences

    backend = tokenizer.backend_tokenizer

    def plain() -> None:
        for start in range(0, len(sentences), batch_size):
            backend.encode_batch(sentences[start : start + batch_size], add_special_tokens=False)

    def plain_fast() -> None:
        for start in range(0, len(sentences), batch_size):
            backend.encode_batch_fast(sentences[start : start + batch_size], add_special_tokens=False)

    def counting() -> None:
        count_sentence_occurrences(tokenizer, sentences, batch_size=batch_size, show_progress=False)

    def counting_2proc() -> None:
        count_sentence_occurrences(tokenizer, sentences, batch_size=batch_size, num_proc=2, show_progress=False)

    variants = {
        "encode_batch loop": plain,
        "encode_batch_fast loop (no offsets)": plain_fast,
        "count_sentence_occurrences": counting,
        "count_sentence_occurrences(num_proc=2)": counting_2proc,
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    plain()  # warm-up (thread pool, caches)
    for _ in range(repeats):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {
        name: {
            "median_s": statistics.median(ts),
            "sentences_per_s": len(sentences) / statistics.median(ts),
            "runs_s": [round(t, 3) for t in ts],
        }
        for name, ts in times.items()
    }


def run(quick: bool = False) -> dict:
    """All numbers as a dict (``quick``: 5,000 sentences per language, one repeat)."""
    from transformers import AutoTokenizer

    if not (MBERT / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{MBERT} is absent: the benchmark needs ../shared/data beside the project root.")
    tokenizer = AutoTokenizer.from_pretrained(MBERT)
    limit = 5000 if quick else None
    sentences = {lang: load_sentences(lang, limit) for lang in LANGUAGES}
    return {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {_cpu_count()} CPU(s), {platform.platform()}",
        "quick": quick,
        "vocabulary": vocabulary_table(tokenizer, sentences),
        "throughput_sl": throughput(tokenizer, sentences["sl"], repeats=1 if quick else 3),
        "throughput_sentences": len(sentences["sl"]),
    }


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def to_markdown(results: dict) -> str:
    lines = [
        f"Date {results['date']}; machine: {results['machine']}; quick={results['quick']}.",
        "",
        "| language | sentences | min_sentence_fraction | kept vocabulary | parameters (BertForMaskedLM) |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in results["vocabulary"]:
        lines.append(
            f"| {row['lang']} | {row['sentences']:,} | {row['min_sentence_fraction'] * 100:g} % | "
            f"{row['kept_vocab']:,} of {row['original_vocab']:,} ({row['kept_vocab_pct']:.1f} %) | "
            f"{row['parameters'] / 1e6:.1f} M of {row['original_parameters'] / 1e6:.1f} M "
            f"({row['parameters_pct']:.1f} %) |"
        )
    lines += [
        "",
        f"Counting throughput on {results['throughput_sentences']:,} Slovene sentences (median of runs):",
        "",
        "| variant | sentences/s | median s | runs (s) |",
        "|---|---:|---:|---|",
    ]
    for name, row in results["throughput_sl"].items():
        lines.append(f"| {name} | {row['sentences_per_s']:,.0f} | {row['median_s']:.2f} | {row['runs_s']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 sentences per language, one repeat")
    parser.add_argument("--json", type=Path, help="also write the raw numbers to this JSON file")
    args = parser.parse_args(argv)
    results = run(quick=args.quick)
    print(to_markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
