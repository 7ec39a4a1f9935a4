"""ONNX Runtime (fp32 and dynamic int8) against PyTorch fp32 on CPU, for the released-student layout of hf_eliquare.export.

    python -m benchmarks.onnx_runtime                                   # speed of student and teacher, one run
    python -m benchmarks.onnx_runtime --task_model outputs/ft/sl_pos    # + task score of fp32 vs int8
    python -m benchmarks.onnx_runtime --quick                           # smoke run: 2 throughput repeats, batch 4

Speed: the 6-layer sl-reduced student (mBERT shape: :func:`hf_eliquare.create_student` of the teacher, vocabulary
reduced with VocabReduce to the sub-words in ≥ 0.05 % of the shared Slovene sentences, counted with the real mBERT
tokenizer) and the mBERT-shaped teacher (12 layers, V = 119,547), both masked LMs with random weights from a fixed
seed (speed does not depend on the values). Each is exported with :func:`hf_eliquare.export.export_onnx` (the same
code as the release, checked against PyTorch on 64 real Slovene sentences; with random weights the int8 argmax
agreement is reported, not required), then timed with :func:`hf_eliquare.export.time_runtimes`: latency at batch
1 × 32 tokens (median of 20 calls) and throughput at batch 32 × 128 (median of 3 calls), one warm-up call each,
PyTorch (``torch.inference_mode``), ORT fp32 and ORT int8 alternating call by call. Inputs are real Slovene text
packed to full length (no padding), each model with its own tokenizer.

Task score (``--task_model``): a token classifier fine-tuned by ``examples/run_finetune.py`` (with its
``test_predictions.jsonl``) is exported and its test split scored with PyTorch fp32, ORT fp32 and ORT int8 through
run_finetune's own feature and word-merging code; the PyTorch score must reproduce the run's recorded predictions.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import time
from pathlib import Path

from .common import MBERT, data_available, environment, slovene_sentences


def _sessions(folder: Path) -> dict:
    from hf_eliquare.export import FP32_FILE, INT8_FILE, ort_session

    # Idle ORT threads sleep like PyTorch's under OMP_WAIT_POLICY=PASSIVE (the benchmarks' default): same rules.
    spinning = None if os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE" else False
    return {
        "ONNX Runtime fp32": ort_session(folder / FP32_FILE, spinning=spinning),
        "ONNX Runtime int8": ort_session(folder / INT8_FILE, spinning=spinning),
    }


def speed(quick: bool = False, log=print) -> dict:
    import torch
    from transformers import AutoTokenizer

    from hf_eliquare.export import export_onnx, onnx_input_names, time_runtimes

    from .common import sentence_counts
    from .student_vs_teacher import build_models

    tokenizer = AutoTokenizer.from_pretrained(MBERT)
    sentences = slovene_sentences()
    counts, num_sentences = sentence_counts(tokenizer, sentences)
    teacher, student, student_tokenizer = build_models(tokenizer, counts, num_sentences)
    texts = sentences[1000:3000]
    throughput_shape = (4, 128) if quick else (32, 128)
    results = {"throughput_shape": list(throughput_shape), "latency_shape": [1, 32], "models": []}
    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as tmp:
        check_file = Path(tmp) / "check_sl.txt"
        check_file.write_text("\n".join(sentences[:64]) + "\n", encoding="utf-8")
        for name, model, tok in (
            ("student", student, student_tokenizer),
            ("teacher", teacher, tokenizer),
        ):
            model_dir = Path(tmp) / name
            model.save_pretrained(model_dir)
            tok.save_pretrained(model_dir)
            start = time.perf_counter()
            report = export_onnx(model_dir, check_file=check_file, int8_min_agreement=0.0)
            export_s = time.perf_counter() - start
            log(f"{name}: exported in {export_s:.0f} s; check {report.check['results']}")
            sessions = _sessions(model_dir / "onnx")
            rows = time_runtimes(
                model,
                sessions,
                tok,
                texts,
                onnx_input_names(model, tok),
                throughput_shape=throughput_shape,
                throughput_repeats=2 if quick else 3,
            )
            log(f"{name}: {rows}")
            results["models"].append(
                {
                    "model": name,
                    "layers": model.config.num_hidden_layers,
                    "vocab_size": model.config.vocab_size,
                    "parameters": model.num_parameters(),
                    "export_s": round(export_s, 1),
                    "files_mib": {k: round(v["bytes"] / 2**20, 1) for k, v in report.files.items()},
                    "check": report.check["results"],
                    "rows": rows,
                }
            )
            del sessions
            gc.collect()
    results["torch_threads"] = torch.get_num_threads()
    return results


def task_score(task_model: str | os.PathLike, log=print) -> dict:
    """Test-split score of a fine-tuned token classifier: PyTorch fp32, ORT fp32, ORT int8 (see the docstring)."""
    import numpy as np
    import torch

    from hf_eliquare.evaluation.features import merge_window_predictions, tokenize_token_examples
    from hf_eliquare.evaluation.metrics import compute_task_metrics
    from hf_eliquare.export import export_onnx, load_for_export, onnx_input_names
    from hf_eliquare.runs import FinetuneResult

    task_model = Path(task_model)
    results = FinetuneResult.load(task_model)
    rows = [json.loads(line) for line in (task_model / "test_predictions.jsonl").read_text().splitlines() if line]
    task_type = results.task_type or "pos"
    with tempfile.TemporaryDirectory(prefix="bench-onnx-task-") as tmp:
        start = time.perf_counter()
        report = export_onnx(task_model, int8_min_agreement=0.0, output_dir=tmp)
        export_s = time.perf_counter() - start
        sessions = _sessions(Path(tmp) / "onnx")
        model, tokenizer, _ = load_for_export(task_model)
        names = onnx_input_names(model, tokenizer)
        label2id = {label: int(i) for label, i in model.config.label2id.items()}
        id2label = {int(i): label for i, label in model.config.id2label.items()}
        examples = [{"tokens": row["tokens"], "labels": row["gold"]} for row in rows]
        features = tokenize_token_examples(examples, tokenizer, label2id, results.max_seq_length or 128)
        width = max(len(ids) for ids in features["input_ids"])
        pad = tokenizer.pad_token_id or 0
        predictions = {name: np.full((len(features), width), -100) for name in ["PyTorch fp32", *sessions]}
        with torch.inference_mode():
            for begin in range(0, len(features), 32):
                batch = features[begin : begin + 32]
                length = max(len(ids) for ids in batch["input_ids"])
                inputs = {}
                for name in names:
                    fill = pad if name == "input_ids" else 0
                    inputs[name] = np.array(
                        [row + [fill] * (length - len(row)) for row in batch[name]], dtype=np.int64
                    )
                end = begin + len(batch["input_ids"])
                logits = model(**{k: torch.from_numpy(v) for k, v in inputs.items()}).logits.numpy()
                predictions["PyTorch fp32"][begin:end, :length] = logits.argmax(-1)
                for name, session in sessions.items():
                    predictions[name][begin:end, :length] = session.run(["logits"], inputs)[0].argmax(-1)
    lengths = [len(ex["tokens"]) for ex in examples]
    gold = [ex["labels"] for ex in examples]
    scores, words = {}, {}
    for name, pred in predictions.items():
        words[name] = merge_window_predictions(pred, features["example_id"], features["word_index"], lengths, id2label)
        scores[name] = compute_task_metrics(task_type, gold, words[name])
    recorded = [row["pred"] for row in rows]
    reproduces = words["PyTorch fp32"] == recorded
    flat = [w for sent in words["PyTorch fp32"] for w in sent]
    int8_flat = [w for sent in words["ONNX Runtime int8"] for w in sent]
    log(f"task {results.task}: {scores}; PyTorch reproduces the run's predictions: {reproduces}")
    return {
        "task": results.task,
        "task_type": task_type,
        "model": str(task_model),
        "base_model": results.model_name_or_path,
        "test_sentences": len(examples),
        "test_words": len(flat),
        "recorded_test_metrics": results.test_metrics,
        "pytorch_reproduces_recorded_predictions": reproduces,
        "scores": scores,
        "int8_same_word_prediction_as_pytorch": sum(a == b for a, b in zip(flat, int8_flat)) / len(flat),
        "export_check": report.check["results"],
        "export_s": round(export_s, 1),
        "parameters": model.num_parameters(),
        "layers": model.config.num_hidden_layers,
        "hidden_size": model.config.hidden_size,
    }


def run(quick: bool = False, task_model: str | None = None, log=print, with_speed: bool = True) -> dict:
    load = os.getloadavg()[0]
    results = {"environment": environment(), "quick": quick}
    if with_speed:
        results["speed"] = speed(quick=quick, log=log)
    if task_model:
        results["task"] = task_score(task_model, log=log)
    results["load_average_at_end"] = os.getloadavg()[0]
    results["load_average_at_start"] = load
    return results


def to_markdown(r: dict) -> str:
    lines = [
        f"Load average {r['load_average_at_start']:.2f} at start, {r['load_average_at_end']:.2f} at end "
        f"(2 cores, shared).",
    ]
    if "speed" in r:
        lines += _speed_markdown(r["speed"])
    if "task" in r:
        lines += _task_markdown(r["task"])
    return "\n".join(lines)


def _speed_markdown(s: dict) -> list[str]:
    b, length = s["throughput_shape"]
    lines = [
        "",
        f"Latency: batch 1 × 32 tokens, median of 20 calls; throughput: batch {b} × {length}, median of the timed "
        "calls; masked-LM heads, random weights.",
        "",
        "| model | runtime | latency (ms) | throughput (sequences/s) | × PyTorch (wall) | × PyTorch (CPU time) "
        "| runs (s) |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for m in s["models"]:
        label = f"{m['model']} ({m['layers']} layers, V = {m['vocab_size']:,}, {m['parameters'] / 1e6:.1f} M)"
        for row in m["rows"]:
            lines.append(
                f"| {label} | {row['runtime']} | {row['latency_ms']:.1f} | {row['throughput_seq_per_s']:.2f} | "
                f"{row['throughput_vs_pytorch']:.2f}× | {row['cpu_time_speedup_vs_pytorch']:.2f}× | "
                f"{row['throughput_runs_s']} |"
            )
    lines += [
        "",
        "| model | files | fp32 max abs diff | int8 argmax agreement (masked positions) |",
        "|---|---|---:|---:|",
    ]
    for m in s["models"]:
        files = ", ".join(f"`{k.split('/')[-1]}` {v} MiB" for k, v in m["files_mib"].items() if k.endswith(".onnx"))
        check = m["check"]
        lines.append(
            f"| {m['model']} | {files} | {check['fp32']['max_abs_diff']:.1e} | "
            f"{check['int8']['argmax_agreement']:.2%} of {check['int8']['positions']} |"
        )
    return lines


def _task_markdown(t: dict) -> list[str]:
    metrics = list(t["scores"]["PyTorch fp32"])
    lines = [
        "",
        f"Task score: `{t['task']}` test split ({t['test_sentences']:,} sentences, {t['test_words']:,} words), "
        f"model {t['layers']} layers, hidden {t['hidden_size']}, {t['parameters'] / 1e6:.2f} M parameters; "
        f"PyTorch reproduces the run's recorded predictions: {t['pytorch_reproduces_recorded_predictions']}.",
        "",
        "| runtime | " + " | ".join(metrics) + " |",
        "|---|" + "---:|" * len(metrics),
    ]
    for name, values in t["scores"].items():
        lines.append(f"| {name} | " + " | ".join(f"{100 * values[m]:.2f}" for m in metrics) + " |")
    share = t["int8_same_word_prediction_as_pytorch"]
    lines.append(f"\nint8 predicts the same tag as PyTorch for {share:.2%} of the words.")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="throughput at batch 4 × 128, 2 repeats")
    parser.add_argument("--task_model", help="a run_finetune.py output directory (token classification) to score")
    parser.add_argument("--json", type=Path, help="also write the raw numbers to this JSON file")
    parser.add_argument("--no_speed", action="store_true", help="only the task score (with --task_model)")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if not data_available():
        print("skipped: ../shared/data (mBERT tokenizer, Slovene text) is absent")
        return
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print("skipped: onnxruntime is not installed (pip install 'hf_eliquare[onnx]')")
        return
    results = run(quick=args.quick, task_model=args.task_model, with_speed=not args.no_speed)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(to_markdown(results))


if __name__ == "__main__":
    main()
