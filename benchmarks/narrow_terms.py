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


def run_terms_alone(batch: int, length: int = 128, repeats: int = 10) -> dict:
    """Forward + backward of each optional loss alone, on fixed random activations of bert-base shape (student
    6 layers at width 768 or 384, teacher 12 layers at 768): the cost the term adds on top of the models'
    forward passes (the hooks and ``output_hidden_states`` only keep references to existing tensors)."""
    import torch
    from torch import nn

    from hf_eliquare.losses import attention_kl_loss, hidden_state_loss, minilm_relation_loss

    g = torch.Generator().manual_seed(0)
    mask = torch.ones(batch, length, dtype=torch.long)
    rows = mask.bool()
    teacher = [torch.randn(batch, length, 768, generator=g) for _ in range(3)]

    def student(width):
        return [torch.randn(batch, length, width, generator=g, requires_grad=True) for _ in range(3)]

    def hidden_mse(width, pairs=6):
        s = student(width)[0]
        projections = nn.ModuleList(nn.Linear(width, 768) for _ in range(pairs)) if width != 768 else None

        def f():
            losses = [hidden_state_loss((projections[i](s[rows]) if projections else s[rows]), teacher[0][rows])
                      for i in range(pairs)]  # fmt: skip
            return torch.stack(losses).mean()

        return f

    def attention(width, heads=12, pairs=6):
        q, k, _ = student(width)
        return lambda: torch.stack([attention_kl_loss(q, k, teacher[0], teacher[1], mask, heads)
                                    for _ in range(pairs)]).mean()  # fmt: skip

    def relations(width, relation_heads=12):
        qkv = student(width)
        return lambda: minilm_relation_loss(tuple(qkv), tuple(teacher), mask, relation_heads)

    cases = {
        "hidden MSE, 6 pairs, 768 → 768": hidden_mse(768),
        "hidden MSE, 6 pairs, 384 → 768 (projections)": hidden_mse(384),
        "attention KL, 6 pairs, 12 heads": attention(768),
        "MiniLMv2 relations, 1 pair, 12 relation heads, 768": relations(768),
        "MiniLMv2 relations, 1 pair, 12 relation heads, 384 → 768": relations(384),
    }
    out = {}
    for name, f in cases.items():
        f().backward()  # warm-up
        wall, cpu = [], []
        for _ in range(repeats):
            start, c = time.perf_counter(), time.process_time()
            f().backward()
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - c)
        out[name] = {"median_s": sorted(wall)[len(wall) // 2], "median_cpu_s": sorted(cpu)[len(cpu) // 2]}
    return {"batch": batch, "length": length, "repeats": repeats, "terms": out}


def terms_markdown(results: dict) -> str:
    lines = [
        f"The terms alone (forward + backward), batch {results['batch']} × {results['length']}, median of "
        f"{results['repeats']}:",
        "",
        "| term | wall (ms) | CPU (ms) |",
        "|---|---:|---:|",
    ]
    for name, v in results["terms"].items():
        lines.append(f"| {name} | {1000 * v['median_s']:.0f} | {1000 * v['median_cpu_s']:.0f} |")
    return "\n".join(lines)


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
    parser.add_argument("--terms_only", action="store_true", help="only the table of the terms alone")
    args = parser.parse_args(argv)
    if args.terms_only:
        from .common import environment

        results = {
            "environment": environment(),
            "terms_alone": run_terms_alone(args.batch or (2 if args.quick else 8)),
        }
        print(terms_markdown(results["terms_alone"]))
        if args.json:
            with open(args.json, "w", encoding="utf-8") as handle:
                json.dump(results, handle, indent=2)
        return 0
    results = run(quick=args.quick, batch=args.batch, steps=args.steps)
    results["terms_alone"] = run_terms_alone(results["batch"])
    env = results["environment"]
    print(f"{env['cpu']}, {env['cpus']} CPU(s), torch {env['torch']}, load average at start "
          f"{env['load_average_at_start']:.2f}\n")  # fmt: skip
    print(to_markdown(results))
    print()
    print(terms_markdown(results["terms_alone"]))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
