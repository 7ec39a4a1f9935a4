"""Throughput of the REAL distillation input: sentences, random vs length-grouped batches.

    nice -n 5 python -m benchmarks.real_pipeline [--steps 16] [--langs sl,sw] [--json FILE]

The other benchmarks pack text into full 128-token sequences; a real run feeds sentences. Here the shared
sl / sw text goes through the package's own pipeline (``load_sentence_splits`` → ``tokenize_splits`` with the
real mBERT tokenizer, ``run_distill.py``'s defaults: ``max_seq_length`` 512, ``min_seq_length`` 12, 90:10
split), then:

1. **Padding share** over the whole training split, for micro-batches of 8 (the paper's per-device batch) and
   32: computed positions = Σ batch size × longest sequence of the batch; padding = 1 − useful / computed.
   Orders: ``random`` (the Trainer's ``RandomSampler``: a seeded permutation), ``grouped``
   (:class:`hf_eliquare.sampling.LengthGroupedBatchSampler`, the default now) and transformers' own
   ``LengthGroupedSampler`` (mega-batches of 50 × the batch, for reference).
2. **Distillation steps**: the first ``--steps`` micro-batches of 8 of each order, collated by
   ``DataCollatorForDistillation`` (padded to the batch's longest sequence, masked), each one a full
   ``DistillationTrainer.training_step`` + gradient clipping + AdamW step. The two orders alternate step by
   step in one process (so a load change on the shared machine hits both), after one warm-up step each.
   Reported: useful (non-padding) tokens per second and the speed-up of grouped over random.
   Model shape (CPU-sized, stated in the output): mBERT's depth — a 12-layer BERT teacher and its 6-layer
   2n−1 student — at hidden size 384 (6 heads, intermediate 1536), random weights, fp32. Vocabulary: the
   language's VocabReduce vocabulary (``--vocab_reduction pre`` at 0.05 %, where the encoder dominates the
   step) and, for sl, the full 119,547 (the default run, where the fused MLM head — computed at non-padding
   positions only — takes a large share of the step).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .common import DATA, MBERT, data_available, environment  # noqa: E402

BATCH_SIZES = (8, 32)
SHAPE = {"hidden_size": 384, "num_attention_heads": 6, "intermediate_size": 1536, "num_hidden_layers": 12}


def prepare(lang: str, reduced: bool):
    """Training sequences of ``lang`` as the pipeline makes them (optionally with the reduced tokenizer)."""
    from transformers import AutoTokenizer

    from hf_eliquare.data import load_sentence_splits, tokenize_splits
    from hf_eliquare.vocab import VocabSelection, count_sentence_occurrences, reduce_vocab_with_counts

    tokenizer = AutoTokenizer.from_pretrained(MBERT)
    tokenizer.model_max_length = 10**6  # the pipeline cuts long sentences itself; silence the length warning
    sentences = load_sentence_splits(train_files=[str(DATA / "text" / f"{lang}.txt.gz")], seed=42)
    if reduced:
        counts, n = count_sentence_occurrences(tokenizer, sentences["train"], show_progress=False)
        _, tokenizer = reduce_vocab_with_counts(
            None, tokenizer, counts, n, VocabSelection(min_sentence_fraction=0.0005)
        )
    data = tokenize_splits(sentences, tokenizer, max_seq_length=512, min_seq_length=12)
    return tokenizer, data["train"], len(sentences["train"])


def orders(lengths: list[int], batch_size: int, seed: int = 42) -> dict[str, list[list[int]]]:
    import torch
    from transformers.trainer_pt_utils import get_length_grouped_indices

    from hf_eliquare.sampling import LengthGroupedBatchSampler

    def cut(indices):
        return [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]

    random_order = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(seed)).tolist()
    hf_order = get_length_grouped_indices(lengths, batch_size, generator=torch.Generator().manual_seed(seed))
    return {
        "random": cut(random_order),
        "grouped": LengthGroupedBatchSampler(lengths, batch_size, seed=seed).batches(),
        "transformers-LengthGroupedSampler": cut(hf_order),
    }


def padding_stats(lengths: list[int], batches: list[list[int]]) -> dict:
    useful = sum(lengths[i] for b in batches for i in b)
    computed = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return {"useful": useful, "computed": computed, "padding_share": 1 - useful / computed}


def time_steps(tokenizer, dataset, batches_by_order: dict, steps: int, log=print) -> dict:
    import numpy as np
    import torch
    from transformers import BertConfig, BertForMaskedLM

    from hf_eliquare import (
        DataCollatorForDistillation,
        DistillationTrainer,
        DistillationTrainingArguments,
        create_student,
    )
    from hf_eliquare.data import token_counts
    from hf_eliquare.masking import mlm_token_probs

    torch.manual_seed(0)
    config = BertConfig.from_pretrained(MBERT, vocab_size=len(tokenizer), **SHAPE)
    teacher = BertForMaskedLM(config).eval()
    student = create_student(teacher, num_layers=6)
    counts = token_counts(dataset, len(tokenizer))
    collator = DataCollatorForDistillation(tokenizer, mlm_token_probs(np.asarray(counts), tokenizer.all_special_ids))
    args = DistillationTrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="bench-real-"),
        report_to="none",
        eval_strategy="no",
        save_strategy="no",
        load_best_model_at_end=False,
        disable_tqdm=True,
        use_cpu=True,
        per_device_train_batch_size=8,
        gradient_accumulation_steps=1,
    )
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args, data_collator=collator)
    trainer.create_optimizer()
    model, trainer.optimizer = trainer.accelerator.prepare(trainer.model, trainer.optimizer)
    params = [p for p in model.parameters() if p.requires_grad]
    input_ids = dataset["input_ids"]

    def batch(indices):
        return collator([{"input_ids": input_ids[i]} for i in indices])

    def step(inputs) -> float:
        start = time.perf_counter()
        trainer.training_step(model, dict(inputs))
        trainer.accelerator.clip_grad_norm_(params, 5.0)
        trainer.optimizer.step()
        trainer.optimizer.zero_grad(set_to_none=False)
        return time.perf_counter() - start

    names = list(batches_by_order)
    results = {name: {"times": [], "useful": 0, "computed": 0} for name in names}
    for k in range(steps + 1):
        for name in names:
            inputs = batch(batches_by_order[name][k])
            elapsed = step(inputs)
            if k == 0:
                continue  # warm-up
            r = results[name]
            r["times"].append(round(elapsed, 4))
            r["useful"] += int(inputs["attention_mask"].sum())
            r["computed"] += int(inputs["attention_mask"].numel())
        if k:
            log(f"  step {k}: " + ", ".join(f"{n} {results[n]['times'][-1]:.2f} s" for n in names))
    for r in results.values():
        r["seconds"] = sum(r["times"])
        r["useful_tokens_per_s"] = r["useful"] / r["seconds"]
        r["padding_share"] = 1 - r["useful"] / r["computed"]
    results["speedup_grouped_over_random"] = (
        results["grouped"]["useful_tokens_per_s"] / results["random"]["useful_tokens_per_s"]
    )
    results["vocab_size"] = len(tokenizer)
    results["student_parameters"] = student.num_parameters()
    results["teacher_parameters"] = teacher.num_parameters()
    return results


def run(langs=("sl", "sw"), steps: int = 16, full_vocab_langs=("sl",), log=print) -> dict:
    out = {"shape": SHAPE, "steps": steps, "languages": {}}
    for lang in langs:
        entry = out["languages"].setdefault(lang, {})
        for reduced in (True, False):
            if not reduced and lang not in full_vocab_langs:
                continue
            key = "reduced" if reduced else "full"
            started = time.perf_counter()
            tokenizer, dataset, n_sentences = prepare(lang, reduced)
            lengths = list(dataset["length"])
            log(
                f"{lang} ({key} vocabulary {len(tokenizer)}): {n_sentences} train sentences → {len(lengths)} sequences"
            )
            padding = {
                bs: {name: padding_stats(lengths, b) for name, b in orders(lengths, bs).items()} for bs in BATCH_SIZES
            }
            step_orders = {name: b for name, b in orders(lengths, 8).items() if name in ("random", "grouped")}
            timing = time_steps(tokenizer, dataset, step_orders, steps, log=log)
            entry[key] = {
                "train_sentences": n_sentences,
                "train_sequences": len(lengths),
                "mean_length": sum(lengths) / len(lengths),
                "padding": padding,
                "timing": timing,
                "part_seconds": time.perf_counter() - started,
            }
    return out


def to_markdown(results: dict) -> str:
    lines = [
        "Padding share of the computed positions over the whole training split (micro-batch = per-device batch):",
        "",
        "| language | vocabulary | sequences | mean length | batch | random | grouped (default) | "
        "transformers LengthGroupedSampler |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for lang, entry in results["languages"].items():
        for key, e in entry.items():
            for bs, p in e["padding"].items():
                lines.append(
                    f"| {lang} | {key} ({e['timing']['vocab_size']:,}) | {e['train_sequences']:,} | "
                    f"{e['mean_length']:.1f} | {bs} | {100 * p['random']['padding_share']:.1f} % | "
                    f"{100 * p['grouped']['padding_share']:.1f} % | "
                    f"{100 * p['transformers-LengthGroupedSampler']['padding_share']:.1f} % |"
                )
    lines += [
        "",
        f"Distillation steps (batch 8, {results['steps']} timed steps per order, alternating; shape {results['shape']}):",
        "",
        "| language | vocabulary | order | padding share | useful tokens | seconds | useful tokens/s | "
        "grouped ÷ random |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for lang, entry in results["languages"].items():
        for key, e in entry.items():
            t = e["timing"]
            for name in ("random", "grouped"):
                r = t[name]
                ratio = f"**{t['speedup_grouped_over_random']:.2f}×**" if name == "grouped" else ""
                lines.append(
                    f"| {lang} | {key} ({t['vocab_size']:,}) | {name} | {100 * r['padding_share']:.1f} % | "
                    f"{r['useful']:,} | {r['seconds']:.1f} | {r['useful_tokens_per_s']:.0f} | {ratio} |"
                )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--langs", type=lambda s: s.split(","), default=["sl", "sw"])
    parser.add_argument("--full_vocab_langs", type=lambda s: [x for x in s.split(",") if x], default=["sl"])
    parser.add_argument("--json", help="write the raw numbers here")
    args = parser.parse_args(argv)
    if not data_available():
        print(f"skipped: needs the shared data at {DATA} (mBERT tokenizer, sl/sw text)")
        return 0
    env = environment()
    print(f"load average at start {env['load_average_at_start']:.2f}; {env['cpu']}, {env['cpus']} CPUs", flush=True)
    results = run(args.langs, args.steps, args.full_vocab_langs, log=lambda s: print(s, file=sys.stderr, flush=True))
    results["environment"] = env
    results["load_average_at_end"] = os.getloadavg()[0]
    print(to_markdown(results))
    print(f"load average at end {results['load_average_at_end']:.2f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
