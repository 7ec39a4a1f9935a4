"""Step cost of the optional distillation terms (hidden-state, attention KL, MiniLMv2 relations) and of narrow students.

    python -m benchmarks.narrow_terms                  # batch 8 × 128, 3 timed steps per variant (round robin)
    python -m benchmarks.narrow_terms --quick          # batch 2 × 128, 1 timed step (smoke run)
    python -m benchmarks.narrow_terms --batch 8 --steps 5 --json results.json

Teacher: ``BertForMaskedLM`` of bert-base shape (12 layers, hidden 768, 12 heads, FFN 3072), random weights from
a fixed seed, vocabulary 30 000 (about what VocabReduce keeps of mBERT for one language); students from
:func:`hf_eliquare.create_student` with 6 layers, full width (768) or half width (384, 6 heads, FFN 1536, weight
selection). Batch: random ids packed to full 128-token sequences, 15% of the positions labelled.

A step is ``DistillationTrainer.compute_loss`` (chunked head, the library default) + backward + AdamW update of the
student and its projections. All variants share the teacher and are timed round robin (one step of each in
turn, repeated), so a change of load on the shared machine hits every variant alike; the table gives the median.
No data files are needed.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

#: name → (student width or None for the teacher's, extra training arguments)
VARIANTS = {
    "full: triple loss (default)": (None, {}),
    "full: + hidden MSE (6 layer pairs)": (None, {"alpha_hidden": 1.0}),
    "full: + hidden cosine (6 layer pairs)": (None, {"alpha_hidden": 1.0, "hidden_loss": "cosine"}),
    "full: + attention KL (6 layer pairs)": (None, {"alpha_attn": 1.0}),
    "full: + MiniLMv2 relations (12 heads)": (None, {"alpha_rel": 1.0, "relation_heads": 12}),
    "half: triple loss (cos via projection)": (384, {}),
    "half: + hidden MSE (projections)": (384, {"alpha_hidden": 1.0}),
    "half: + MiniLMv2 relations (12 heads)": (384, {"alpha_rel": 1.0, "relation_heads": 12}),
}


def run(quick: bool = False, batch: int | None = None, steps: int | None = None, length: int = 128) -> dict:
    import torch
    from transformers import BertConfig, BertForMaskedLM

    from hf_eliquare import DistillationTrainer, DistillationTrainingArguments, create_student

    from .common import environment

    batch = batch or (2 if quick else 8)
    steps = steps or (1 if quick else 3)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30_000, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                        intermediate_size=3072, max_position_embeddings=512)  # fmt: skip
    teacher = BertForMaskedLM(config).eval()
    g = torch.Generator().manual_seed(1)
    input_ids = torch.randint(5, config.vocab_size, (batch, length), generator=g)
    labels = torch.full_like(input_ids, -100)
    chosen = torch.rand(batch, length, generator=g) < 0.15
    labels[chosen] = input_ids[chosen]
    inputs = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels}

    runs = {}
    for name, (width, extra) in VARIANTS.items():
        torch.manual_seed(2)
        student = create_student(teacher, num_layers=6, hidden_size=width)
        args = DistillationTrainingArguments(output_dir="/tmp/narrow-terms-bench", report_to="none", use_cpu=True,
                                             disable_tqdm=True, eval_strategy="no", save_strategy="no",
                                             load_best_model_at_end=False, **extra)  # fmt: skip
        trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args)
        student.train()
        optimizer = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=1e-5)
        runs[name] = {"trainer": trainer, "student": student, "optimizer": optimizer, "times": [], "cpu_times": [],
                      "student_parameters": sum(p.numel() for n, p in student.named_parameters()
                                                if not n.startswith("distillation_projections")),
                      "projection_parameters": sum(p.numel() for n, p in student.named_parameters()
                                                   if n.startswith("distillation_projections"))}  # fmt: skip

    def step(entry) -> tuple[float, float]:
        start, cpu = time.perf_counter(), time.process_time()
        loss = entry["trainer"].compute_loss(entry["student"], dict(inputs))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(entry["student"].parameters(), 5.0)
        entry["optimizer"].step()
        entry["optimizer"].zero_grad(set_to_none=True)
        return time.perf_counter() - start, time.process_time() - cpu

    for entry in runs.values():  # warm-up: allocations, AdamW state
        step(entry)
    for _ in range(steps):
        for entry in runs.values():
            wall, cpu = step(entry)
            entry["times"].append(wall)
            entry["cpu_times"].append(cpu)
    results = {"environment": environment(), "batch": batch, "length": length, "steps": steps, "variants": {}}
    for name, entry in runs.items():
        results["variants"][name] = {
            "median_s": sorted(entry["times"])[len(entry["times"]) // 2],
            "times_s": entry["times"],
            "median_cpu_s": sorted(entry["cpu_times"])[len(entry["cpu_times"]) // 2],
            "cpu_times_s": entry["cpu_times"],
            "student_parameters": entry["student_parameters"],
            "projection_parameters": entry["projection_parameters"],
        }
    return results


def to_markdown(results: dict) -> str:
    variants = results["variants"]
    first = {"full": "full: triple loss (default)", "half": "half: triple loss (cos via projection)"}
    lines = [
        f"Batch {results['batch']} × {results['length']}, median of {results['steps']} step(s) per variant.",
        "",
        "| variant | student params | projection params | step wall (s) | step CPU (s) | vs triple loss, same "
        "student (wall / CPU) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, v in variants.items():
        base = variants[first[name.split(":")[0]]]
        lines.append(
            f"| {name} | {v['student_parameters'] / 1e6:.1f} M | {v['projection_parameters'] / 1e6:.2f} M | "
            f"{v['median_s']:.2f} | {v['median_cpu_s']:.2f} | {v['median_s'] / base['median_s']:.2f}× / "
            f"{v['median_cpu_s'] / base['median_cpu_s']:.2f}× |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--json", help="write the raw numbers here")
    args = parser.parse_args(argv)
    results = run(quick=args.quick, batch=args.batch, steps=args.steps)
    env = results["environment"]
    print(f"{env['cpu']}, {env['cpus']} CPU(s), torch {env['torch']}, load average at start "
          f"{env['load_average_at_start']:.2f}\n")  # fmt: skip
    print(to_markdown(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
