"""Student vs teacher at real shapes: parameters, inference latency, FLOP ratio.

    python -m benchmarks.student_vs_teacher            # batch 32 × 128, 2 repeats after a warm-up
    python -m benchmarks.student_vs_teacher --quick    # batch 4 × 128, 1 repeat (smoke run)

Teacher: ``BertForMaskedLM`` from the real ``bert-base-multilingual-cased`` config.json (12 layers,
V = 119,547), random weights (the Hub is unreachable; speed does not depend on the values).
Student: :func:`hf_eliquare.create_student` (6 layers: teacher layers 0, 2, …, 10) reduced with
:func:`hf_eliquare.reduce_vocab_with_counts` to the sub-words in ≥ 0.05 % of the sentences of the
shared Slovene text, counted with the real tokenizer. Inputs: real Slovene text, packed to full
128-token sequences (no padding), each model with its own tokenizer.

Three heads per model, sharing one encoder (same weights): encoder only (``model.bert``), the MLM
head (``BertForMaskedLM``) and a token-classification head (``BertForTokenClassification``, 9
labels, its ``bert`` is the same module). All six forwards run interleaved, under
``torch.inference_mode()``; each latency is the median over the repeats, and each speed-up is the
ratio of the two medians from the same run.

FLOPs (forward, one multiply-add = 2 FLOPs, T = B·L tokens, D hidden, I intermediate size):
    per layer  8·T·D² (Q, K, V, output projections) + 4·T·D·I (feed-forward) + 4·B·L²·D (QKᵀ and AV)
    MLM head   2·T·D² (transform) + 2·T·D·V (decoder)
    token cls  2·T·D·C (C labels)
Embedding look-ups, layer norms, softmax, GELU and biases are left out (< 1 % here).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from .common import (
    MBERT,
    MIN_SENTENCE_FRACTION,
    data_available,
    environment,
    median,
    packed_texts,
    sentence_counts,
    slovene_sentences,
)

NUM_LABELS = 9  # e.g. the Slovene NER tag set (BIO over PER/ORG/LOC/MISC)


def forward_flops(config, batch: int, length: int, head: str) -> float:
    """Analytic forward FLOPs of a BERT encoder (+ head); see the module docstring."""
    t, d, i = batch * length, config.hidden_size, config.intermediate_size
    per_layer = 8 * t * d * d + 4 * t * d * i + 4 * batch * length * length * d
    flops = config.num_hidden_layers * per_layer
    if head == "mlm":
        flops += 2 * t * d * d + 2 * t * d * config.vocab_size
    elif head == "token-classification":
        flops += 2 * t * d * NUM_LABELS
    return float(flops)


def build_models(tokenizer, counts, num_sentences):
    """(teacher MLM, student MLM, reduced tokenizer), random teacher weights from a fixed seed."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    from hf_eliquare import create_student
    from hf_eliquare.vocab import reduce_vocab_with_counts

    torch.manual_seed(0)
    teacher = BertForMaskedLM(BertConfig.from_pretrained(MBERT)).eval()
    student = create_student(teacher, num_layers=6)
    student, student_tokenizer = reduce_vocab_with_counts(
        student, tokenizer, counts, num_sentences, min_sentence_fraction=MIN_SENTENCE_FRACTION
    )
    return teacher, student.eval(), student_tokenizer


def token_classifier(mlm_model):
    """A token-classification model whose encoder *is* ``mlm_model.bert`` (same weights, no copy)."""
    import copy

    from transformers import AutoModelForTokenClassification

    config = copy.deepcopy(mlm_model.config)
    config.num_labels = NUM_LABELS
    model = AutoModelForTokenClassification.from_config(config)
    model.bert = mlm_model.bert
    return model.eval()


def run(quick: bool = False, repeats: int | None = None) -> dict:
    import torch
    from transformers import AutoTokenizer

    batch, length = (4, 128) if quick else (32, 128)
    repeats = repeats or (1 if quick else 2)
    tokenizer = AutoTokenizer.from_pretrained(MBERT)
    sentences = slovene_sentences()
    counts, num_sentences = sentence_counts(tokenizer, sentences)
    teacher, student, student_tokenizer = build_models(tokenizer, counts, num_sentences)

    texts = packed_texts(sentences[1000:], tokenizer, batch, length)
    inputs = {}
    for name, tok in (("teacher", tokenizer), ("student", student_tokenizer)):
        enc = tok(texts, truncation=True, max_length=length, padding="max_length", return_tensors="pt")
        assert int(enc["attention_mask"].sum()) == batch * length, "packed texts should fill every position"
        inputs[name] = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    unk = int((inputs["student"]["input_ids"] == student_tokenizer.unk_token_id).sum())

    models = {"teacher": teacher, "student": student}
    heads = {
        "encoder": lambda m: m.bert,
        "mlm": lambda m: m,
        "token-classification": token_classifier,
    }
    runners = {(head, who): make(models[who]) for head, make in heads.items() for who in models}

    def forward(head, who):
        model = runners[(head, who)]
        out = model(**inputs[who])
        return out.last_hidden_state if head == "encoder" else out.logits

    times = {key: [] for key in runners}
    cpu_times = {key: [] for key in runners}
    with torch.inference_mode():
        for key in runners:  # warm-up (one-time allocations, oneDNN kernels)
            forward(*key)
        for _ in range(repeats):
            for key in runners:
                start, cpu_start = time.perf_counter(), time.process_time()
                forward(*key)
                times[key].append(time.perf_counter() - start)
                cpu_times[key].append(time.process_time() - cpu_start)

    rows = []
    for head in heads:
        t_teacher, t_student = median(times[(head, "teacher")]), median(times[(head, "student")])
        flop_t = forward_flops(teacher.config, batch, length, head)
        flop_s = forward_flops(student.config, batch, length, head)
        flop_ratio = flop_t / flop_s
        speedup = t_teacher / t_student
        cpu_speedup = median(cpu_times[(head, "teacher")]) / median(cpu_times[(head, "student")])
        params = {who: runners[(head, who)].num_parameters() for who in models}
        rows.append(
            {
                "head": head,
                "teacher_params": params["teacher"],
                "student_params": params["student"],
                "param_ratio": params["teacher"] / params["student"],
                "teacher_gflops": flop_t / 1e9,
                "student_gflops": flop_s / 1e9,
                "flop_ratio": flop_ratio,
                "teacher_s": t_teacher,
                "student_s": t_student,
                "teacher_runs_s": [round(x, 3) for x in times[(head, "teacher")]],
                "student_runs_s": [round(x, 3) for x in times[(head, "student")]],
                "speedup": speedup,
                "speedup_vs_flop_ratio": speedup / flop_ratio,
                "teacher_cpu_s": median(cpu_times[(head, "teacher")]),
                "student_cpu_s": median(cpu_times[(head, "student")]),
                "cpu_speedup": cpu_speedup,
                "cpu_speedup_vs_flop_ratio": cpu_speedup / flop_ratio,
                "teacher_gflop_per_s": flop_t / t_teacher / 1e9,
                "student_gflop_per_s": flop_s / t_student / 1e9,
            }
        )
    return {
        "environment": environment(),
        "quick": quick,
        "batch": batch,
        "length": length,
        "repeats": repeats,
        "teacher_vocab": teacher.config.vocab_size,
        "student_vocab": student.config.vocab_size,
        "student_layers": student.config.num_hidden_layers,
        "student_unk_tokens": unk,
        "corpus_sentences": num_sentences,
        "rows": rows,
    }


def to_markdown(r: dict) -> str:
    lines = [
        f"Batch {r['batch']} × {r['length']} (packed Slovene text, no padding); teacher: mBERT config, "
        f"12 layers, V = {r['teacher_vocab']:,}; student: {r['student_layers']} layers, V = {r['student_vocab']:,} "
        f"(≥ {MIN_SENTENCE_FRACTION:.2%} of {r['corpus_sentences']:,} sentences; {r['student_unk_tokens']} [UNK] "
        f"in the student's batch); median of {r['repeats']} run(s) after a warm-up, interleaved.",
        "",
        "| model | parameters teacher / student (ratio) | GFLOPs teacher / student | FLOP ratio | latency teacher / student (s) | speed-up | speed-up ÷ FLOP ratio | CPU-time speed-up (÷ FLOP ratio) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in r["rows"]:
        lines.append(
            f"| {row['head']} | {row['teacher_params'] / 1e6:.1f} M / {row['student_params'] / 1e6:.1f} M "
            f"({row['param_ratio']:.2f}×) | {row['teacher_gflops']:.0f} / {row['student_gflops']:.0f} | "
            f"{row['flop_ratio']:.2f} | {row['teacher_s']:.3f} / {row['student_s']:.3f} | {row['speedup']:.2f}× | "
            f"{row['speedup_vs_flop_ratio']:.2f} | {row['cpu_speedup']:.2f}× ({row['cpu_speedup_vs_flop_ratio']:.2f}) |"
        )
    lines += [
        "",
        "Runs (s): "
        + "; ".join(
            f"{row['head']}: teacher {row['teacher_runs_s']}, student {row['student_runs_s']}" for row in r["rows"]
        ),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 4 × 128, one repeat")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--json", type=Path, help="also write the raw numbers to this JSON file")
    args = parser.parse_args(argv)
    if not data_available():
        print("skipped: ../shared/data (mBERT tokenizer, Slovene text) is absent")
        return
    results = run(quick=args.quick, repeats=args.repeats)
    print(to_markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
