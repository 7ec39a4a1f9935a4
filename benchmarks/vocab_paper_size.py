"""VocabReduce's 0.05 % threshold against the paper's "66 M parameters": which vocabulary gives which size.

    python -m benchmarks.vocab_paper_size [--json FILE]

With the real mBERT tokenizer and the shared sl / sw text (sentence-split with the package's own
``split_sentences``), for each language:

* the vocabulary kept by the literal rule (sub-words in ≥ 0.05 % of the sentences) and the parameters of the
  6-layer student (``BertForMaskedLM``, mBERT config, 6 layers, tied decoder counted once, built on ``meta``);
* the vocabulary size at which that student has 66 M parameters (the paper's number after reduction), and
  which thresholds in other units give it: a minimum number of sentences (``min_count``), the share of all
  sub-word *occurrences* that the kept tokens cover, and ``max_vocab_size`` (the most frequent tokens).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from .vocab_counting import MBERT, load_sentences

PAPER_STUDENT_PARAMETERS = 66_000_000
STUDENT_LAYERS = 6


def student_parameters(vocab_size: int, layers: int = STUDENT_LAYERS) -> int:
    import torch
    from transformers import BertConfig, BertForMaskedLM

    config = BertConfig.from_pretrained(MBERT, vocab_size=vocab_size, num_hidden_layers=layers)
    with torch.device("meta"):
        return BertForMaskedLM(config).num_parameters()


def run(languages=("sl", "sw")) -> list[dict]:
    from transformers import AutoTokenizer

    from hf_eliquare.vocab import VocabSelection, count_sentence_occurrences, select_vocabulary

    tokenizer = AutoTokenizer.from_pretrained(MBERT)
    per_token = student_parameters(2001) - student_parameters(2000)  # one embedding row + one decoder bias entry
    base = student_parameters(2000) - 2000 * per_token
    paper_vocab = round((PAPER_STUDENT_PARAMETERS - base) / per_token)
    rows = []
    for lang in languages:
        sentences = load_sentences(lang)
        counts, n = count_sentence_occurrences(tokenizer, sentences, show_progress=False)
        literal = select_vocabulary(counts, n, tokenizer, VocabSelection(min_sentence_fraction=0.0005))
        # token occurrences (not sentences) for the coverage view
        occurrences = np.zeros(len(tokenizer), dtype=np.int64)
        for start in range(0, len(sentences), 1000):
            ids = [i for enc in tokenizer(sentences[start : start + 1000])["input_ids"] for i in enc[1:-1]]
            occurrences += np.bincount(ids, minlength=len(tokenizer))
        sorted_counts = np.sort(counts)[::-1]
        # sentences a token must occur in for the kept vocabulary to reach the paper's size
        nth = sorted_counts[min(paper_vocab, len(sorted_counts)) - 1]
        by_max = select_vocabulary(counts, n, tokenizer, VocabSelection(max_vocab_size=paper_vocab))
        occ_sorted = np.sort(occurrences)[::-1]
        coverage_at_paper = float(occ_sorted[:paper_vocab].sum() / occ_sorted.sum())
        coverage_literal = float(occurrences[literal].sum() / occurrences.sum())
        nonzero = int((counts > 0).sum())
        cumulative = np.cumsum(occ_sorted) / occ_sorted.sum()
        vocab_for_coverage = int(np.searchsorted(cumulative, 1 - 0.0005) + 1)  # "all but 0.05 % of occurrences"
        rows.append(
            {
                "lang": lang,
                "sentences": n,
                "tokens_seen": nonzero,
                # Σ document frequencies / sentences: at most this / f sub-words can be in ≥ f of the sentences
                "mean_distinct_subwords_per_sentence": float(counts.sum() / n),
                "literal_kept_vocab": len(literal),
                "literal_student_parameters": student_parameters(len(literal)),
                "literal_occurrence_coverage": coverage_literal,
                "paper_vocab_for_66M": paper_vocab,
                # 0: the corpus has fewer distinct sub-words than the paper's vocabulary, no threshold reaches it
                "min_sentences_for_paper_vocab": int(nth),
                "fraction_for_paper_vocab": float(nth / n),
                "regular_vocab_covering_99.95pct_occurrences": vocab_for_coverage,
                "max_vocab_size_kept": len(by_max),
                "max_vocab_size_student_parameters": student_parameters(len(by_max)),
                "occurrence_coverage_at_paper_vocab": coverage_at_paper,
            }
        )
    return rows


def to_markdown(rows: list[dict]) -> str:
    lines = [
        "| language | sentences | sub-words seen | kept at ≥ 0.05 % of sentences | student parameters | "
        "vocabulary for 66 M | sub-words in ≥ N sentences for it | `--max_vocab_size 29238` keeps | "
        "sub-words covering 99.95 % of occurrences | occurrences covered by the 0.05 % rule |",
        "|---|---:|---:|---:|---:|---:|---|---|---:|---:|",
    ]
    for r in rows:
        n_min = r["min_sentences_for_paper_vocab"]
        reach = (
            f"{n_min} ({100 * r['fraction_for_paper_vocab']:.4f} %)"
            if n_min
            else f"none: only {r['tokens_seen']:,} sub-words occur"
        )
        lines.append(
            f"| {r['lang']} | {r['sentences']:,} | {r['tokens_seen']:,} | {r['literal_kept_vocab']:,} | "
            f"{r['literal_student_parameters'] / 1e6:.1f} M | {r['paper_vocab_for_66M']:,} | {reach} | "
            f"{r['max_vocab_size_kept']:,} → {r['max_vocab_size_student_parameters'] / 1e6:.1f} M | "
            f"{r['regular_vocab_covering_99.95pct_occurrences']:,} | {100 * r['literal_occurrence_coverage']:.2f} % |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the raw numbers here")
    args = parser.parse_args(argv)
    from .common import data_available

    if not data_available():
        print("skipped: needs ../shared/data (mBERT tokenizer, sl/sw text)")
        return 0
    rows = run()
    print(to_markdown(rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
