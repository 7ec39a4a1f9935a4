"""One distillation training step: DistillationTrainer vs a literal DistilBERT distiller, at mBERT shape.

    python -m benchmarks.distill_step                   # batch 8 × 128, 2 timed steps after a warm-up step
    python -m benchmarks.distill_step --quick           # batch 2 × 128, 1 timed step (smoke run)
    python -m benchmarks.distill_step --variants reference,trainer --steps 3

Teacher: ``BertForMaskedLM`` with the real ``bert-base-multilingual-cased`` config (random weights
from a fixed seed, so every variant starts from the same weights); student:
:func:`hf_eliquare.create_student` (6 layers). Batch: real Slovene text packed to full 128-token
sequences (no padding), masked by :class:`hf_eliquare.masking.DataCollatorForDistillation`.

A step is forward + backward + gradient clipping + AdamW update. Variants:

* ``reference`` — ``tests/reference_distiller.py`` (DistilBERT's ``Distiller.step`` transcribed):
  full ``B × L × V`` logits for student and teacher, fp32 teacher under ``torch.no_grad``, KL over all
  non-padding positions;
* ``trainer*`` — ``DistillationTrainer.training_step`` with the library's defaults and documented
  flags only (``restrict_ce_to_mask``, ``distill_chunk_size``, ``bf16``, and ``pre`` = the teacher's
  vocabulary reduced to Slovene before the student is made, as ``run_distill.py --vocab_reduction pre``);
* ``experiment-autocast-all`` — not a library path: the whole trainer step under
  ``torch.autocast("cpu", torch.bfloat16)`` (teacher and heads included), to show what ``bf16``
  could give if the trainer ran the teacher under autocast too.

Each variant runs in a fresh subprocess, so peaks do not mix. Memory: the *baseline* is the RSS once
weights, gradients (allocated, zero) and AdamW state exist, before the first step; the *working
peak* is the kernel's peak RSS (``VmHWM``, reset after the baseline; a 2 ms ``VmRSS`` sampler as a
cross-check) minus that baseline, over the warm-up and timed steps. The loss of the first step (same
weights, same batch, same dropout seed) is compared between variants of the same semantics.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import (
    MBERT,
    MIN_SENTENCE_FRACTION,
    RssSampler,
    collect,
    data_available,
    environment,
    gb,
    median,
    packed_texts,
    peak_rss_bytes,
    reset_peak_rss,
    rss_bytes,
    sentence_counts,
    slovene_sentences,
)

ROOT = Path(__file__).resolve().parents[1]

#: name → settings. ``vocab``: "full" or "pre"; ``semantics``: which variants' losses must agree.
VARIANTS = {
    "reference": dict(kind="reference", vocab="full", restrict=False),
    "trainer": dict(kind="trainer", vocab="full", restrict=False),
    "trainer-chunk256": dict(kind="trainer", vocab="full", restrict=False, chunk=256),
    "trainer-restrict": dict(kind="trainer", vocab="full", restrict=True),
    "trainer-pre": dict(kind="trainer", vocab="pre", restrict=False),
    "trainer-pre-restrict": dict(kind="trainer", vocab="pre", restrict=True),
    "trainer-bf16": dict(kind="trainer", vocab="full", restrict=False, bf16=True),
    "trainer-pre-restrict-bf16": dict(kind="trainer", vocab="pre", restrict=True, bf16=True),
    "experiment-autocast-all": dict(kind="trainer", vocab="full", restrict=False, autocast_all=True),
}
DEFAULT_VARIANTS = (
    "reference",
    "trainer",
    "trainer-restrict",
    "trainer-pre",
    "trainer-pre-restrict",
    "trainer-bf16",
    "experiment-autocast-all",
)
DESCRIPTIONS = {
    "reference": "literal DistilBERT distiller (full B×L×V logits)",
    "trainer": "DistillationTrainer, defaults (fused head, distill_chunk_size=1024)",
    "trainer-chunk256": "… distill_chunk_size=256",
    "trainer-restrict": "… restrict_ce_to_mask=True",
    "trainer-pre": "… --vocab_reduction pre (teacher reduced to sl first)",
    "trainer-pre-restrict": "… pre + restrict_ce_to_mask",
    "trainer-bf16": "… bf16=True (accelerate autocast of the student)",
    "trainer-pre-restrict-bf16": "… pre + restrict_ce_to_mask + bf16",
    "experiment-autocast-all": "experiment: whole trainer step under torch.autocast(bf16)",
}
ALPHAS = dict(alpha_ce=5.0, alpha_mlm=2.0, alpha_cos=1.0, temperature=2.0)


# ---------------------------------------------------------------------------------------------- worker


def _worker(variant: str, shared_file: Path, out_file: Path, steps: int) -> None:
    import numpy as np
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    from hf_eliquare import create_student
    from hf_eliquare.masking import DataCollatorForDistillation, mlm_token_probs
    from hf_eliquare.vocab import reduce_vocab_with_counts, select_vocabulary

    cfg = VARIANTS[variant]
    shared = json.loads(shared_file.read_text())
    counts = np.load(shared["counts"])
    num_sentences, texts, length = shared["num_sentences"], shared["texts"], shared["length"]
    t0 = time.perf_counter()

    tokenizer = AutoTokenizer.from_pretrained(MBERT)
    torch.manual_seed(0)
    teacher = BertForMaskedLM(BertConfig.from_pretrained(MBERT))
    token_counts = counts
    if cfg["vocab"] == "pre":
        kept = select_vocabulary(counts, num_sentences, tokenizer, min_sentence_fraction=MIN_SENTENCE_FRACTION)
        token_counts = counts[kept]
        teacher, tokenizer = reduce_vocab_with_counts(
            teacher, tokenizer, counts, num_sentences, min_sentence_fraction=MIN_SENTENCE_FRACTION
        )
    student = create_student(teacher, num_layers=6)

    collator = DataCollatorForDistillation(tokenizer, mlm_token_probs(token_counts, tokenizer.all_special_ids))
    ids = tokenizer(texts, truncation=True, max_length=length)["input_ids"]
    batch = collator([{"input_ids": x} for x in ids])
    num_tokens = int(batch["attention_mask"].sum())
    num_masked = int((batch["labels"] != -100).sum())

    if cfg["kind"] == "reference":
        sys.path.insert(0, str(ROOT / "tests"))
        from reference_distiller import reference_step_loss

        teacher.eval()
        student.train()
        params = [p for p in student.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=5e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.0)

        def step() -> float:
            loss, *_ = reference_step_loss(
                student, teacher, batch["input_ids"], batch["attention_mask"], batch["labels"], **ALPHAS
            )
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=False)
            return loss.item()

    else:
        from hf_eliquare import DistillationTrainer, DistillationTrainingArguments

        args = DistillationTrainingArguments(
            output_dir=tempfile.mkdtemp(prefix="bench-distill-"),
            report_to="none",
            eval_strategy="no",
            save_strategy="no",
            load_best_model_at_end=False,
            disable_tqdm=True,
            use_cpu=True,
            per_device_train_batch_size=len(texts),
            gradient_accumulation_steps=1,
            restrict_ce_to_mask=cfg["restrict"],
            bf16=cfg.get("bf16", False),
            **({"distill_chunk_size": cfg["chunk"]} if "chunk" in cfg else {}),
            **ALPHAS,
        )
        trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args)
        trainer.create_optimizer()
        # As in Trainer's training loop: the accelerator wraps model (autocast for bf16) and optimizer.
        model, trainer.optimizer = trainer.accelerator.prepare(trainer.model, trainer.optimizer)
        params = [p for p in model.parameters() if p.requires_grad]
        autocast_all = cfg.get("autocast_all", False)

        def step() -> float:
            if autocast_all:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    loss = trainer.training_step(model, dict(batch))
            else:
                loss = trainer.training_step(model, dict(batch))
            trainer.accelerator.clip_grad_norm_(params, 5.0)
            trainer.optimizer.step()
            trainer.optimizer.zero_grad(set_to_none=False)
            return loss.item()

        optimizer = trainer.optimizer

    # Baseline: gradients allocated and optimizer state created (a zero-gradient AdamW step with
    # weight decay 0 leaves the weights unchanged).
    for p in params:
        p.grad = torch.zeros_like(p)
    optimizer.step()
    optimizer.zero_grad(set_to_none=False)
    collect()
    setup_s = time.perf_counter() - t0
    baseline = rss_bytes()
    hwm_reset = reset_peak_rss()

    times, cpu_times, losses = [], [], []
    with RssSampler() as sampler:
        for i in range(steps + 1):
            torch.manual_seed(1234 + i)  # same dropout masks in every variant
            start, cpu_start = time.perf_counter(), time.process_time()
            losses.append(step())
            if i > 0:
                times.append(time.perf_counter() - start)
                cpu_times.append(time.process_time() - cpu_start)
            else:
                first_s = time.perf_counter() - start
    peak = max(peak_rss_bytes() if hwm_reset else 0, sampler.peak)
    result = {
        "variant": variant,
        "settings": cfg,
        "vocab_size": teacher.config.vocab_size,
        "batch": len(texts),
        "length": length,
        "tokens": num_tokens,
        "masked": num_masked,
        "setup_s": setup_s,
        "first_step_s": first_s,
        "step_s": median(times),
        "runs_s": [round(t, 3) for t in times],
        "cpu_s": median(cpu_times),
        "cpu_runs_s": [round(t, 3) for t in cpu_times],
        "tokens_per_s": num_tokens / median(times),
        "first_loss": losses[0],
        "losses": losses,
        "baseline_rss": baseline,
        "peak_rss": peak,
        "sampler_peak_rss": sampler.peak,
        "hwm_used": hwm_reset,
        "working_peak": peak - baseline,
        "student_parameters": student.num_parameters(),
        "torch_threads": torch.get_num_threads(),
    }
    out_file.write_text(json.dumps(result, indent=2))


# ---------------------------------------------------------------------------------------------- driver


def run(quick: bool = False, variants=None, steps: int | None = None, batch: int | None = None,
        length: int = 128, log=print) -> dict:  # fmt: skip
    import numpy as np
    from transformers import AutoTokenizer

    variants = list(variants or (("reference", "trainer", "trainer-pre-restrict") if quick else DEFAULT_VARIANTS))
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    batch = batch or (2 if quick else 8)
    steps = steps or (1 if quick else 2)
    tokenizer = AutoTokenizer.from_pretrained(MBERT)
    sentences = slovene_sentences()
    counts, num_sentences = sentence_counts(tokenizer, sentences)
    # 1.25 × length full-tokenizer tokens per text, so the reduced tokenizer ([UNK] merges words) also fills `length`.
    texts = packed_texts(sentences[2000:], tokenizer, batch, int(length * 1.25))
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-distill-") as tmp:
        tmp = Path(tmp)
        np.save(tmp / "counts.npy", counts)
        shared = tmp / "shared.json"
        shared.write_text(
            json.dumps(
                {"counts": str(tmp / "counts.npy"), "num_sentences": num_sentences, "texts": texts, "length": length}
            )
        )
        for variant in variants:
            out = tmp / f"{variant}.json"
            start = time.perf_counter()
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.distill_step",
                    "--worker",
                    variant,
                    "--shared",
                    str(shared),
                    "--out",
                    str(out),
                    "--steps",
                    str(steps),
                ],  # fmt: skip
                cwd=ROOT,
                env=os.environ.copy(),
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0 or not out.is_file():
                log(f"  {variant}: FAILED (exit {proc.returncode})\n{proc.stderr[-3000:]}")
                results[variant] = {"variant": variant, "error": proc.stderr[-3000:]}
                continue
            results[variant] = json.loads(out.read_text())
            r = results[variant]
            log(
                f"  {variant}: {r['step_s']:.2f} s/step, {r['tokens_per_s']:.0f} tokens/s, working peak "
                f"{gb(r['working_peak'])} GB, first loss {r['first_loss']:.6f} ({time.perf_counter() - start:.0f} s)"
            )
    return {
        "environment": environment(),
        "quick": quick,
        "batch": batch,
        "length": length,
        "steps": steps,
        "variants": results,
        "comparisons": _comparisons(results),
    }


def _comparisons(results: dict) -> dict:
    ok = {k: v for k, v in results.items() if "error" not in v}
    out = {}
    ref = ok.get("reference")
    for name, r in ok.items():
        row = {}
        if ref is not None:
            row["speedup_vs_reference"] = ref["step_s"] / r["step_s"]
            row["cpu_speedup_vs_reference"] = ref["cpu_s"] / r["cpu_s"]
            row["memory_saving_vs_reference"] = ref["working_peak"] / max(r["working_peak"], 1)
            if r["settings"]["vocab"] == "full" and not r["settings"]["restrict"]:
                row["loss_diff_vs_reference"] = abs(r["first_loss"] - ref["first_loss"])
        if r["settings"].get("bf16") or r["settings"].get("autocast_all"):
            base = _same_semantics_fp32(ok, r)
            if base is not None:
                row["loss_diff_vs_fp32"] = abs(r["first_loss"] - base["first_loss"])
                row["speedup_vs_fp32"] = base["step_s"] / r["step_s"]
                row["cpu_speedup_vs_fp32"] = base["cpu_s"] / r["cpu_s"]
        out[name] = row
    return out


def _same_semantics_fp32(ok: dict, r: dict):
    for other in ok.values():
        s = other["settings"]
        if (s["kind"] == "trainer" and s["vocab"] == r["settings"]["vocab"] and s["restrict"] == r["settings"]["restrict"]
                and not s.get("bf16") and not s.get("autocast_all") and "chunk" not in s):  # fmt: skip
            return other
    return None


def _x(value) -> str:
    return "—" if value is None else f"{value:.2f}×"


def to_markdown(r: dict) -> str:
    lines = [
        f"Batch {r['batch']} × {r['length']} (packed Slovene text, no padding), mBERT-shaped teacher (12 layers), "
        f"6-layer student; a step = forward + backward + clipping + AdamW; median of {r['steps']} timed step(s) "
        "after one warm-up step; each variant in a fresh process.",
        "",
        "| variant | V | s/step | tokens/s | speed-up vs reference (wall / CPU time) | baseline RSS (GB) | peak RSS (GB) | working peak (GB) | less working memory vs reference | first-step loss | loss difference |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, v in r["variants"].items():
        if "error" in v:
            lines.append(f"| {name} | failed: see JSON | | | | | | | | | |")
            continue
        c = r["comparisons"].get(name, {})
        diffs = []
        if "loss_diff_vs_reference" in c:
            diffs.append(f"{c['loss_diff_vs_reference']:.1e} vs reference")
        if "loss_diff_vs_fp32" in c:
            diffs.append(
                f"{c['loss_diff_vs_fp32']:.1e} vs fp32 (speed-up wall {c['speedup_vs_fp32']:.2f}×, CPU {c['cpu_speedup_vs_fp32']:.2f}×)"
            )
        lines.append(
            f"| {name}: {DESCRIPTIONS[name]} | {v['vocab_size']:,} | {v['step_s']:.2f} | {v['tokens_per_s']:.0f} | "
            f"{_x(c.get('speedup_vs_reference'))} / {_x(c.get('cpu_speedup_vs_reference'))} | {gb(v['baseline_rss'])} | {gb(v['peak_rss'])} | "
            f"{gb(v['working_peak'])} | {_x(c.get('memory_saving_vs_reference'))} | "
            f"{v['first_loss']:.6f} | {'; '.join(diffs) or '(other semantics)'} |"
        )
    lines += [
        "",
        "Runs (wall s/step | CPU s/step): "
        + "; ".join(f"{k}: {v['runs_s']} | {v['cpu_runs_s']}" for k, v in r["variants"].items() if "error" not in v),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 2 × 128, one timed step, three variants")
    parser.add_argument(
        "--variants", type=lambda s: s.split(","), default=None, help=f"comma-separated, of {list(VARIANTS)}"
    )
    parser.add_argument("--steps", type=int, default=None, help="timed steps after the warm-up step")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--json", type=Path, help="also write the raw numbers to this JSON file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--shared", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker, args.shared, args.out, args.steps)
        return
    if not data_available():
        print("skipped: ../shared/data (mBERT tokenizer, Slovene text) is absent")
        return
    results = run(quick=args.quick, variants=args.variants, steps=args.steps, batch=args.batch)
    print(to_markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
