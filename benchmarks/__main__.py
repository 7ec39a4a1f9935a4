"""All benchmarks of hf_eliquare, one table each: ``python -m benchmarks [--quick] [--parts ...] [--json DIR]``.

1. ``student`` — student vs teacher at real shapes (:mod:`benchmarks.student_vs_teacher`);
2. ``distill`` — one distillation step, DistillationTrainer vs the literal DistilBERT distiller
   (:mod:`benchmarks.distill_step`);
3. ``vocab`` — VocabReduce counting throughput and kept vocabularies (:mod:`benchmarks.vocab_counting`);
4. ``onnx`` — PyTorch fp32 vs ONNX Runtime fp32 / int8 for student and teacher, and the int8 task score with
   ``--onnx_task_model DIR`` (:mod:`benchmarks.onnx_runtime`; needs ``hf_eliquare[onnx]``).

Needs ``../shared/data`` beside the project root; prints a message and exits 0 when it is absent.
Results and the exact set-up are recorded in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

PARTS = ("student", "distill", "vocab", "onnx")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small batches, one repeat (a few minutes)")
    parser.add_argument(
        "--parts", type=lambda s: s.split(","), default=list(PARTS), help=f"comma-separated, of {PARTS}"
    )
    parser.add_argument("--json", type=Path, help="directory for the raw numbers (one JSON file per part)")
    parser.add_argument(
        "--onnx_task_model", help="part onnx: a run_finetune.py token-classification output to score in int8"
    )
    args = parser.parse_args(argv)
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown parts {unknown}; choose from {PARTS}")

    # Passive OpenMP waiting, set before torch is imported (here and in the subprocesses): on a shared
    # machine spin-waiting threads steal the cores other threads need. An explicit setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from .common import DATA, data_available, environment

    if not data_available():
        print(
            f"skipped: the benchmarks need the shared data at {DATA} (mBERT tokenizer, Slovene text), which is absent."
        )
        return 0
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    env = environment()
    print(
        f"# hf_eliquare benchmarks ({'quick' if args.quick else 'full'}) — {env['date']}\n\n"
        f"Machine: {env['cpu']}, {env['cpus']} CPU(s) (torch threads {env['torch_threads']}), {env['memory_gb']} GB, "
        f"avx512_bf16={env['avx512_bf16']}, amx_bf16={env['amx_bf16']}; {env['platform']}; load average at start "
        f"{env['load_average_at_start']:.2f} (shared machine).\nVersions: Python {env['python']}, torch {env['torch']}, "
        f"transformers {env['transformers']}, tokenizers {env['tokenizers']}; OMP_WAIT_POLICY={env['OMP_WAIT_POLICY']}.\n",
        flush=True,
    )
    if args.json:
        args.json.mkdir(parents=True, exist_ok=True)
    total = time.perf_counter()
    for part in args.parts:
        start = time.perf_counter()
        if part == "student":
            from . import student_vs_teacher as module

            print("## 1. Student vs teacher (inference)\n", flush=True)
            results = module.run(quick=args.quick)
        elif part == "distill":
            from . import distill_step as module

            print("## 2. Distillation step\n", flush=True)
            results = module.run(quick=args.quick, log=lambda line: print(line, file=sys.stderr, flush=True))
        elif part == "vocab":
            from . import vocab_counting as module

            print("## 3. Vocabulary counting\n", flush=True)
            results = module.run(quick=args.quick)
        else:
            from . import onnx_runtime as module

            print("## 4. ONNX Runtime fp32 / int8 vs PyTorch\n", flush=True)
            try:
                import onnxruntime  # noqa: F401
            except ImportError:
                print("skipped: onnxruntime is not installed (pip install 'hf_eliquare[onnx]')\n", flush=True)
                continue
            results = module.run(
                quick=args.quick,
                task_model=args.onnx_task_model,
                log=lambda line: print(line, file=sys.stderr, flush=True),
            )
        print(module.to_markdown(results), flush=True)
        print(f"\n({part}: {time.perf_counter() - start:.0f} s)\n", flush=True)
        if args.json:
            (args.json / f"{part}.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(f"Total: {time.perf_counter() - total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
