"""The GPU checks of issue 15, in one prepared script: run it when a CUDA machine is lent.

    python -m benchmarks.gpu_check --out benchmarks/results/gpu            # on a CUDA machine (a few minutes)
    python -m benchmarks.gpu_check --device cpu --tiny --out /tmp/gpu-dry  # dry run on CPU: every path up to the device

1. **Inference, student vs teacher** (the paper: 0.066 s vs 0.384 s per batch on a V100): the mBERT-shaped teacher
   (``BertForMaskedLM``, 12 layers, hidden 768, V = 119,547, random weights) and the 6-layer student made from it
   by :func:`hf_eliquare.create_student`, with its vocabulary cut to 3,340 rows (the size VocabReduce keeps for
   Slovene at 0.05 %, BENCHMARKS.md; the rows' values do not matter for speed); batch 32 × 128 random token ids, no
   padding; fp32, fp16 and bf16 weights (``model.to(dtype)``), ``torch.inference_mode``; encoder only and with the
   MLM head; median of the timed calls after warm-up, ``torch.cuda.synchronize`` around each call.
2. **A distillation step** in fp32, bf16 and fp16 (``DistillationTrainingArguments(bf16=/fp16=)``, the trainer's
   own mixed precision): :class:`hf_eliquare.DistillationTrainer` with the teacher above and its 6-layer student
   (full vocabulary, as ``run_distill.py`` without ``pre`` reduction), batch 8 × 128 masked by
   :class:`hf_eliquare.masking.DataCollatorForDistillation`; forward + backward + clipping + AdamW as in
   ``Trainer.train``. Reported: the first step's loss (same weights, batch and dropout seed) and its difference to
   fp32, and tokens/s over the timed steps.
3. **DeepSpeed ZeRO-2**, if ``import deepspeed`` works: ``DistillationTrainer.train`` for 2 steps with a ZeRO
   stage-2 config (one process; bf16 when the GPU supports it, else fp16), reporting the losses.

Writes ``gpu_check.json`` and ``gpu_check.md`` (a section for BENCHMARKS.md, with the GPU's name) into ``--out``.
``--tiny`` swaps the models for 2-layer, hidden-64 ones and shrinks the batches, so the whole script runs in seconds
on a CPU: it proves the code up to the device calls, not any GPU number.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

MBERT_VOCAB = 119_547
SL_REDUCED_VOCAB = 3_340  # VocabReduce on the shared Slovene text at 0.05 % (BENCHMARKS.md, part 1)
PAPER_V100 = {"student_s": 0.066, "teacher_s": 0.384}


def _configs(tiny: bool):
    from transformers import BertConfig

    if tiny:
        return BertConfig(
            vocab_size=500, hidden_size=64, num_hidden_layers=4, num_attention_heads=2, intermediate_size=128,
            max_position_embeddings=128,
        ), 200  # fmt: skip
    # bert-base-multilingual-cased's config.json (written out: the device machine may not have the shared data)
    return BertConfig(
        vocab_size=MBERT_VOCAB, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
        max_position_embeddings=512, type_vocab_size=2, hidden_act="gelu", layer_norm_eps=1e-12,
    ), SL_REDUCED_VOCAB  # fmt: skip


def build_teacher_and_student(tiny: bool, reduced: bool):
    """Teacher (random weights, seed 0) and its ``create_student`` student; ``reduced``: student vocabulary cut."""
    import torch
    from transformers import BertForMaskedLM

    from hf_eliquare import create_student

    config, reduced_vocab = _configs(tiny)
    torch.manual_seed(0)
    teacher = BertForMaskedLM(config).eval()
    student = create_student(teacher, num_layers=max(1, config.num_hidden_layers // 2))
    if reduced:
        student.resize_token_embeddings(reduced_vocab)  # the first rows kept: the shape of a reduced student
    return teacher, student.eval()


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def inference(device: str, tiny: bool, repeats: int, log) -> list[dict]:
    import torch

    teacher, student = build_teacher_and_student(tiny, reduced=True)
    batch, length = (4, 32) if tiny else (32, 128)
    rows = []
    dtypes = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    for dtype_name, dtype in dtypes.items():
        if device == "cpu" and dtype_name == "fp16" and not tiny:
            continue
        times = {}
        for who, model in (("teacher", teacher), ("student", student)):
            model = model.to(device=device, dtype=dtype)
            ids = torch.randint(5, model.config.vocab_size, (batch, length), device=device)
            mask = torch.ones_like(ids)
            for head, run in (("encoder", lambda m: m.bert), ("mlm", lambda m: m)):
                module = run(model)
                with torch.inference_mode():
                    for _ in range(2):  # warm-up (cuDNN/cuBLAS autotuning, allocator)
                        module(input_ids=ids, attention_mask=mask)
                    _sync(device)
                    runs = []
                    for _ in range(repeats):
                        start = time.perf_counter()
                        module(input_ids=ids, attention_mask=mask)
                        _sync(device)
                        runs.append(time.perf_counter() - start)
                times[(who, head)] = runs
            model.to(device="cpu", dtype=torch.float32)
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
        for head in ("encoder", "mlm"):
            t_teacher, t_student = (
                statistics.median(times[("teacher", head)]),
                statistics.median(times[("student", head)]),
            )
            row = {
                "dtype": dtype_name,
                "head": head,
                "batch": batch,
                "length": length,
                "teacher_s": t_teacher,
                "student_s": t_student,
                "speedup": t_teacher / t_student,
                "teacher_runs_s": [round(x, 5) for x in times[("teacher", head)]],
                "student_runs_s": [round(x, 5) for x in times[("student", head)]],
            }
            rows.append(row)
            log(f"inference {dtype_name} {head}: teacher {t_teacher:.4f} s, student {t_student:.4f} s")
    return rows


def _fake_tokenizer():
    return SimpleNamespace(pad_token_id=0, mask_token_id=4)  # all DataCollatorForDistillation needs


def _batch(vocab: int, batch: int, length: int, seed: int = 0):
    import torch

    from hf_eliquare.masking import DataCollatorForDistillation

    generator = torch.Generator().manual_seed(seed)
    probs = torch.ones(vocab)
    probs[:5] = 0  # special tokens are never masked
    collator = DataCollatorForDistillation(_fake_tokenizer(), probs)
    ids = torch.randint(5, vocab, (batch, length), generator=generator)
    ids[:, 0], ids[:, -1] = 2, 3  # [CLS] … [SEP]
    return collator, [{"input_ids": row.tolist()} for row in ids]


def _args(output_dir: str, device: str, precision: str, batch: int, **extra):
    from hf_eliquare import DistillationTrainingArguments

    return DistillationTrainingArguments(
        output_dir=output_dir,
        report_to="none",
        eval_strategy="no",
        save_strategy="no",
        load_best_model_at_end=False,
        disable_tqdm=True,
        use_cpu=device == "cpu",
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=1,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        learning_rate=5e-4,
        max_grad_norm=5.0,
        **extra,
    )


def distill_steps(device: str, tiny: bool, steps: int, log) -> list[dict]:
    import torch

    from hf_eliquare import DistillationTrainer

    batch_size, length = (2, 32) if tiny else (8, 128)
    rows = []
    for precision in ("fp32", "bf16", "fp16"):
        row: dict = {"precision": precision, "batch": batch_size, "length": length}
        try:
            teacher, student = build_teacher_and_student(tiny, reduced=False)
            collator, examples = _batch(teacher.config.vocab_size, batch_size, length)
            inputs = collator(examples)
            with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
                args = _args(tmp, device, precision, batch_size)
                trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args, data_collator=collator)
                trainer.create_optimizer()
                model, trainer.optimizer = trainer.accelerator.prepare(trainer.model, trainer.optimizer)
                params = [p for p in model.parameters() if p.requires_grad]
                losses, times = [], []
                for i in range(steps + 1):
                    torch.manual_seed(1234 + i)  # the same dropout in every precision
                    _sync(device)
                    start = time.perf_counter()
                    loss = trainer.training_step(model, dict(inputs))
                    trainer.accelerator.clip_grad_norm_(params, 5.0)
                    trainer.optimizer.step()
                    trainer.optimizer.zero_grad(set_to_none=True)
                    losses.append(loss.item())
                    _sync(device)
                    if i > 0:
                        times.append(time.perf_counter() - start)
            tokens = int(inputs["attention_mask"].sum())
            step_s = statistics.median(times)
            row.update(first_loss=losses[0], losses=losses, step_s=step_s, tokens_per_s=tokens / step_s)
            log(
                f"distill {precision}: first loss {losses[0]:.6f}, {step_s:.4f} s/step, {tokens / step_s:.0f} tokens/s"
            )
        except Exception as err:  # e.g. fp16 on a CPU: recorded, the other precisions still run
            row["error"] = f"{type(err).__name__}: {err}"
            log(f"distill {precision}: {row['error']}")
        finally:
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
        rows.append(row)
    fp32 = next((r for r in rows if r["precision"] == "fp32" and "first_loss" in r), None)
    for row in rows:
        if fp32 and "first_loss" in row:
            row["first_loss_diff_vs_fp32"] = abs(row["first_loss"] - fp32["first_loss"])
            row["speedup_vs_fp32"] = fp32["step_s"] / row["step_s"]
    return rows


def deepspeed_zero2(device: str, tiny: bool, log) -> dict:
    try:
        import deepspeed  # noqa: F401
    except Exception as err:  # not installed, or no CUDA toolkit to build its ops
        return {"ran": False, "reason": f"import deepspeed failed: {type(err).__name__}: {err}"}
    if not device.startswith("cuda"):
        return {"ran": False, "reason": "DeepSpeed ZeRO-2 needs a CUDA device"}
    import torch

    from hf_eliquare import DistillationTrainer

    for key, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29511", "RANK": "0", "LOCAL_RANK": "0",
                       "WORLD_SIZE": "1"}.items():  # fmt: skip
        os.environ.setdefault(key, value)
    precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    batch_size, length = (2, 32) if tiny else (8, 128)
    teacher, student = build_teacher_and_student(tiny, reduced=False)
    collator, examples = _batch(teacher.config.vocab_size, batch_size, length)
    config = {
        "zero_optimization": {"stage": 2, "overlap_comm": True, "contiguous_gradients": True},
        "bf16": {"enabled": "auto"},
        "fp16": {"enabled": "auto"},
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "optimizer": {"type": "AdamW", "params": {"lr": "auto", "weight_decay": "auto"}},
    }
    try:
        with tempfile.TemporaryDirectory(prefix="gpu-check-ds-") as tmp:
            args = _args(tmp, device, precision, batch_size, max_steps=2, logging_steps=1, deepspeed=config)
            trainer = DistillationTrainer(
                model=student, teacher_model=teacher, args=args, data_collator=collator,
                train_dataset=examples * 2,
            )  # fmt: skip
            result = trainer.train()
            losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
        log(f"deepspeed zero-2 ({precision}): losses {losses}")
        return {"ran": True, "precision": precision, "steps": 2, "losses": losses, "train_loss": result.training_loss}
    except Exception as err:
        return {"ran": False, "reason": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()[-2000:]}


def environment(device: str) -> dict:
    import torch
    import transformers

    env = {
        "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "device": device,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
    }
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        env.update(
            gpu=torch.cuda.get_device_name(0),
            gpu_memory_gb=round(props.total_memory / 2**30, 1),
            cuda=torch.version.cuda,
            bf16_supported=torch.cuda.is_bf16_supported(),
        )
    return env


def to_markdown(r: dict) -> str:
    env = r["environment"]
    where = env.get("gpu") or f"CPU ({env['cpu']})"
    lines = [
        f"## GPU checks ({where}{', TINY models: a dry run, not a measurement' if r['tiny'] else ''})",
        "",
        f"Command: `python -m benchmarks.gpu_check {' '.join(r['argv'])}`; {env['date_utc']} UTC; torch {env['torch']}"
        f" (CUDA {env.get('cuda')}), transformers {env['transformers']}.",
        "",
        "### Inference, student vs teacher (paper, V100: 0.066 s vs 0.384 s)",
        "",
        "| precision | head | batch | teacher (s) | student (s) | speed-up |",
        "|---|---|---|---:|---:|---:|",
    ]
    for row in r["inference"]:
        lines.append(
            f"| {row['dtype']} | {row['head']} | {row['batch']} × {row['length']} | {row['teacher_s']:.4f} | "
            f"{row['student_s']:.4f} | {row['speedup']:.2f}× |"
        )
    lines += ["", "### Distillation step", "", "| precision | s/step | tokens/s | first-step loss | loss difference vs fp32 | speed-up vs fp32 |",
              "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for row in r["distill"]:
        if "error" in row:
            lines.append(f"| {row['precision']} | not run: {row['error']} | | | | |")
            continue
        lines.append(
            f"| {row['precision']} | {row['step_s']:.4f} | {row['tokens_per_s']:.0f} | {row['first_loss']:.6f} | "
            f"{row.get('first_loss_diff_vs_fp32', 0):.2e} | {row.get('speedup_vs_fp32', 1):.2f}× |"
        )
    ds = r["deepspeed"]
    lines += ["", "### DeepSpeed ZeRO-2", ""]
    if ds.get("ran"):
        lines.append(f"2 steps ({ds['precision']}), losses {ds['losses']}, train loss {ds['train_loss']:.4f}.")
    else:
        lines.append(f"Not run: {ds['reason']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    import sys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (dry run with --tiny)")
    parser.add_argument("--tiny", action="store_true", help="tiny models and batches: checks the code, not speed")
    parser.add_argument("--repeats", type=int, default=10, help="timed inference calls per model (median)")
    parser.add_argument("--steps", type=int, default=5, help="timed distillation steps per precision (median)")
    parser.add_argument("--parts", default="inference,distill,deepspeed")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu"))
    args = parser.parse_args(argv)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(
            "error: no CUDA device here; run on a GPU machine, or use --device cpu --tiny for a dry run",
            file=sys.stderr,
        )
        sys.exit(2)
    log = lambda line: print(line, flush=True)
    parts = args.parts.split(",")
    results = {
        "argv": list(sys.argv[1:] if argv is None else argv),
        "tiny": args.tiny,
        "environment": environment(args.device),
    }
    results["inference"] = inference(args.device, args.tiny, args.repeats, log) if "inference" in parts else []
    results["distill"] = distill_steps(args.device, args.tiny, args.steps, log) if "distill" in parts else []
    results["deepspeed"] = (
        deepspeed_zero2(args.device, args.tiny, log) if "deepspeed" in parts else {"ran": False, "reason": "not asked"}
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    markdown = to_markdown(results)
    (args.out / "gpu_check.md").write_text(markdown + "\n", encoding="utf-8")
    print(markdown)
    return results


if __name__ == "__main__":
    main()
