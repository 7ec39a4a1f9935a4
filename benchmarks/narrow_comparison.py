"""Full-width vs half-width students, triple loss vs the new terms, on real data (issue 14). Resumable.

    nice -n 10 python -m benchmarks.narrow_comparison --out ../narrow_comparison            # everything
    python -m benchmarks.narrow_comparison --out ../narrow_comparison --report_only         # table of what finished

Every stage writes its result atomically and is skipped when the result exists, so the same command continues
an interrupted run (the teacher's MLM training and each distillation also resume from their checkpoints).

1. ``corpus.txt``: the first ``--sl_lines`` Slovene paragraphs and ``--sw_lines`` Swahili sentences of
   ``../shared/data/text`` (neither overlaps the evaluation sets, see the data README), interleaved;
2. ``teacher/``: a WordPiece tokenizer (``--vocab_size``) trained on it and a bilingual BERT teacher
   (4 layers, hidden 256, 4 heads, FFN 1024: the reproduction study's CPU teacher shape), MLM-trained for
   ``--teacher_steps`` steps (batch 32 × 128, lr 5e-4, 15% masking);
3. students, 2 layers (half depth), distilled by ``examples/run_distill.py`` on the same corpus:
   ``half_triple`` / ``half_hidden`` / ``half_rel`` (hidden 128, 2 heads, FFN 512, weight-selected from the
   teacher) with the triple loss alone, + hidden-state MSE (``--alpha_hidden``), + MiniLMv2 relations
   (``--alpha_rel``); the *best new term* is the one with the lower validation MLM loss of the student
   (``eval_loss_mlm``: the only part comparable between objectives); ``full_triple`` / ``full_best``: hidden
   256 with the triple loss alone and with that term; ``half_scratch``: the half-width architecture with a
   random initialisation and no distillation at all;
4. fine-tuning (``examples/run_eval_table.py``) on ``sl_pos`` and ``sw_ner`` for each seed in turn (all models
   and tasks of seed 1 first, so a partial run is balanced), ``--finetune_epochs`` epochs;
5. ``speed.json`` (measured first, from the architectures: weights do not change the speed): parameters and CPU
   inference time of the teacher, full- and half-width student encoders (1 thread, batch 32 × 128,
   interleaved repeats, median);
6. ``comparison.md``: the table.

One bilingual (sl + sw) teacher and bilingual students keep the number of runs affordable on 2 CPU cores; the
paper distils one language per student.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ELIQUARE_SHARED_DATA", ROOT.parent / "shared" / "data"))
TASKS = ("sl_pos", "sw_ner")
HALF = ["--student_hidden_size", "128"]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(command: list[str], log_file: Path) -> None:
    log(" ".join(map(str, command)))
    with open(log_file, "a", encoding="utf-8") as handle:
        result = subprocess.run(list(map(str, command)), cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise SystemExit(f"error: {command[1]} failed (exit {result.returncode}); see {log_file}")


# ------------------------------------------------------------------------------------------------ 1-2
def make_corpus(out: Path, sl_lines: int, sw_lines: int) -> Path:
    path = out / "corpus.txt"
    if path.exists():
        return path
    with gzip.open(DATA / "text" / "sl.txt.gz", "rt", encoding="utf-8") as f:
        sl = [line.strip() for _, line in zip(range(sl_lines), f) if line.strip()]
    with gzip.open(DATA / "text" / "sw.txt.gz", "rt", encoding="utf-8") as f:
        sw = [line.strip() for _, line in zip(range(sw_lines), f) if line.strip()]
    lines = [x for pair in zip(sl, sw) for x in pair] + sl[len(sw) :] + sw[len(sl) :]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.rename(path)
    log(f"corpus: {len(sl)} sl + {len(sw)} sw lines")
    return path


def make_tokenizer(out: Path, corpus: Path, vocab_size: int) -> Path:
    tok_dir = out / "tokenizer"
    if (tok_dir / "tokenizer.json").exists():
        return tok_dir
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertTokenizerFast

    lines = corpus.read_text(encoding="utf-8").splitlines()
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(lines, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    fast = BertTokenizerFast(tokenizer_object=tok, do_lower_case=False, model_max_length=128)
    tmp = out / "tokenizer.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    fast.save_pretrained(tmp)
    tmp.rename(tok_dir)
    return tok_dir


def make_teacher(out: Path, corpus: Path, tok_dir: Path, steps: int, seed: int) -> Path:
    teacher = out / "teacher"
    if (teacher / "model.safetensors").exists():
        return teacher
    import torch
    from datasets import Dataset
    from transformers import (
        BertForMaskedLM,
        BertTokenizerFast,
        DataCollatorForLanguageModeling,
        Trainer,
        TrainingArguments,
    )
    from transformers.trainer_utils import get_last_checkpoint

    lines = corpus.read_text(encoding="utf-8").splitlines()
    tokenizer = BertTokenizerFast.from_pretrained(tok_dir)
    dataset = Dataset.from_dict({"text": lines}).map(
        lambda b: tokenizer(b["text"], truncation=True, max_length=128), batched=True, remove_columns=["text"]
    )
    torch.manual_seed(seed)
    model = BertForMaskedLM(teacher_config(len(tokenizer)))
    work = out / "teacher_checkpoints"
    args = TrainingArguments(
        output_dir=str(work), max_steps=steps, per_device_train_batch_size=32, learning_rate=5e-4,
        warmup_steps=max(1, steps // 10), weight_decay=0.01, logging_steps=50, save_steps=100, save_total_limit=1,
        report_to="none", use_cpu=True, seed=seed, disable_tqdm=True, dataloader_num_workers=0,
    )  # fmt: skip
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator)
    last = get_last_checkpoint(str(work)) if work.is_dir() else None
    trainer.train(resume_from_checkpoint=last)
    tmp = out / "teacher.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "mlm_log.json").write_text(json.dumps(trainer.state.log_history, indent=1), encoding="utf-8")
    tmp.rename(teacher)
    log(f"teacher saved to {teacher}")
    return teacher


# ------------------------------------------------------------------------------------------------ 3
def distill(out: Path, name: str, teacher: Path, corpus: Path, epochs: float, seed: int, extra: list[str]) -> Path:
    target = out / "students" / name
    if (target / "model.safetensors").exists():
        return target
    argv = [
        sys.executable, "examples/run_distill.py", "--teacher_model_name_or_path", teacher, "--train_file", corpus,
        "--lang", "mul", "--output_dir", target, "--num_student_layers", "2", "--max_seq_length", "128",
        "--num_train_epochs", epochs, "--per_device_train_batch_size", "32", "--gradient_accumulation_steps", "1",
        "--per_device_eval_batch_size", "64", "--max_eval_samples", "400", "--logging_steps", "50",
        "--learning_rate", "5e-4", "--report_to", "none", "--disable_tqdm", "true", "--seed", seed,
        "--dataloader_num_workers", "0", "--use_cpu", *extra,
    ]  # fmt: skip
    run(argv, out / "logs" / f"distill_{name}.log")
    return target


def eval_mlm_loss(student: Path) -> float:
    from hf_eliquare.runs import DistillationRun

    return float(DistillationRun.load(student).metrics["eval_loss_mlm"])


def scratch_student(out: Path, teacher: Path) -> Path:
    target = out / "students" / "half_scratch"
    if (target / "model.safetensors").exists():
        return target
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from hf_eliquare import create_student

    torch.manual_seed(0)
    student = create_student(
        AutoModelForMaskedLM.from_pretrained(teacher), num_layers=2, hidden_size=128, init="random"
    )
    tmp = target.with_name("half_scratch.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    student.save_pretrained(tmp)
    AutoTokenizer.from_pretrained(teacher).save_pretrained(tmp)
    tmp.rename(target)
    return target


# ------------------------------------------------------------------------------------------------ 5
def measure_speed(out: Path, tokenizer_dir: Path, repeats: int) -> dict:
    """Inference time of the full- and half-width student architectures (the weights do not matter for speed,
    so this runs before any training)."""
    path = out / "speed.json"
    if path.exists():
        return json.loads(path.read_text())
    import torch
    from transformers import AutoTokenizer, BertForMaskedLM

    from hf_eliquare import create_student

    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    teacher = BertForMaskedLM(teacher_config(len(tokenizer))).eval()
    models = {
        "teacher": teacher.bert,
        "full": create_student(teacher, num_layers=2).bert.eval(),
        "half": create_student(teacher, num_layers=2, hidden_size=128).bert.eval(),
    }
    with gzip.open(DATA / "text" / "sl.txt.gz", "rt", encoding="utf-8") as f:
        texts = [line for _, line in zip(range(20000), f)][-32:]  # past the distillation corpus
    batch = tokenizer(texts, truncation=True, max_length=128, padding="max_length", return_tensors="pt")
    times = {name: [] for name in models}
    with torch.inference_mode():
        for model in models.values():
            model(**batch)
        for _ in range(repeats):
            for name, model in models.items():
                start = time.perf_counter()
                model(**batch)
                times[name].append(time.perf_counter() - start)
    result = {
        name: {
            "median_s": sorted(t)[len(t) // 2],
            "times_s": t,
            "parameters": models[name].num_parameters(),
            "non_embedding_parameters": models[name].num_parameters(exclude_embeddings=True),
        }
        for name, t in times.items()
    }
    result["_setup"] = {"batch": "32 sl paragraphs, padded/truncated to 128", "threads": 1, "repeats": repeats,
                        "load_average": os.getloadavg()[0], "models": "encoders (no MLM head)"}  # fmt: skip
    path.write_text(json.dumps(result, indent=2), encoding="utf-8")
    log(f"speed: { ({k: v['median_s'] for k, v in result.items() if k != '_setup'}) }")
    return result


def teacher_config(vocab_size: int):
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab_size, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                      intermediate_size=1024, max_position_embeddings=128)  # fmt: skip


# ------------------------------------------------------------------------------------------------ 6
def report(out: Path, names: list[str], best: str | None) -> str:
    import statistics

    from hf_eliquare.runs import FinetuneResult

    rows = []
    speed = json.loads((out / "speed.json").read_text()) if (out / "speed.json").exists() else {}
    scores: dict[str, dict[str, list[float]]] = {n: {t: [] for t in TASKS} for n in names}
    for name in names:
        for task in TASKS:
            for result in sorted((out / "eval" / name / task).glob("seed*/all_results.json")):
                data = FinetuneResult.load(result)
                scores[name][task].append(float(data.test_metrics[data.main_metric]))
    base = {
        t: statistics.mean(scores["full_triple"][t]) if scores.get("full_triple", {}).get(t) else None for t in TASKS
    }
    base_speed = speed.get("full", {}).get("median_s")
    for name in names:
        cells = []
        for task in TASKS:
            values = scores[name][task]
            if not values:
                cells.append("—")
                continue
            mean = statistics.mean(values)
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            share = f" ({100 * mean / base[task]:.0f}%)" if base[task] else ""
            cells.append(f"{100 * mean:.1f} ± {100 * std:.1f} (n={len(values)}){share}")
        s = speed.get(name.split("_")[0], {})
        params = f"{s['parameters'] / 1e6:.2f} M ({s['non_embedding_parameters'] / 1e6:.2f} M)" if s else "—"
        speedup = f"{base_speed / s['median_s']:.2f}×" if s and base_speed else "—"
        rows.append(f"| {name} | {params} | {speedup} | {' | '.join(cells)} |")
    text = "\n".join(
        [
            f"Best new term (lower student validation MLM loss at half width): {best or 'not decided yet'}.",
            "",
            "| student | parameters (non-embedding) | inference speed-up vs full width | sl_pos test accuracy | "
            "sw_ner test F1 |",
            "|---|---:|---:|---:|---:|",
            *rows,
            "",
            "Scores: mean ± std over the finished seeds (n), in % of full_triple's mean in parentheses.",
        ]
    )
    (out / "comparison.md").write_text(text + "\n", encoding="utf-8")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sl_lines", type=int, default=4000)
    parser.add_argument("--sw_lines", type=int, default=8000)
    parser.add_argument("--vocab_size", type=int, default=12000)
    parser.add_argument("--teacher_steps", type=int, default=1500)
    parser.add_argument("--distill_epochs", type=float, default=1.0)
    parser.add_argument("--finetune_epochs", type=float, default=3.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--alpha_hidden", default="2")
    parser.add_argument("--alpha_rel", default="5")
    parser.add_argument("--relation_heads", default="8")
    parser.add_argument("--speed_repeats", type=int, default=20)
    parser.add_argument("--report_only", action="store_true")
    parser.add_argument(
        "--finetune_extra", nargs=argparse.REMAINDER, default=[], help="passed on to run_eval_table.py (last)"
    )
    args = parser.parse_args(argv)
    if not (DATA / "text" / "sl.txt.gz").exists():
        print(f"skipped: needs the shared data at {DATA}")
        return 0
    out = args.out.resolve()
    (out / "logs").mkdir(parents=True, exist_ok=True)
    (out / "students").mkdir(exist_ok=True)
    names = ["full_triple", "full_best", "half_triple", "half_best", "half_scratch"]
    best_file = out / "best_term.json"
    best = json.loads(best_file.read_text())["term"] if best_file.exists() else None
    if args.report_only:
        print(report(out, names, best))
        return 0

    corpus = make_corpus(out, args.sl_lines, args.sw_lines)
    tok_dir = make_tokenizer(out, corpus, args.vocab_size)
    measure_speed(out, tok_dir, args.speed_repeats)
    teacher = make_teacher(out, corpus, tok_dir, args.teacher_steps, seed=42)
    terms = {
        "hidden": ["--alpha_hidden", args.alpha_hidden],
        "rel": ["--alpha_rel", args.alpha_rel, "--relation_heads", args.relation_heads],
    }
    students = {"half_triple": distill(out, "half_triple", teacher, corpus, args.distill_epochs, 42, HALF)}
    for term, flags in terms.items():
        students[f"half_{term}"] = distill(out, f"half_{term}", teacher, corpus, args.distill_epochs, 42, HALF + flags)
    if best is None:
        losses = {term: eval_mlm_loss(students[f"half_{term}"]) for term in terms}
        best = min(losses, key=losses.get)
        best_file.write_text(json.dumps({"term": best, "eval_loss_mlm": losses}, indent=2), encoding="utf-8")
        log(f"best new term: {best} ({losses})")
    students["half_best"] = students[f"half_{best}"]
    students["full_triple"] = distill(out, "full_triple", teacher, corpus, args.distill_epochs, 42, [])
    students["full_best"] = distill(out, f"full_{best}", teacher, corpus, args.distill_epochs, 42, terms[best])
    students["half_scratch"] = scratch_student(out, teacher)
    print(report(out, names, best), flush=True)

    models = [f"{n}={students[n]}" for n in names]
    for seed in args.seeds:
        run(
            [sys.executable, "examples/run_eval_table.py", "--models", *models, "--tasks", *TASKS, "--seeds", seed,
             "--num_train_epochs", args.finetune_epochs, "--output_dir", out / "eval", "--report_to", "none",
             "--disable_tqdm", "true", "--use_cpu", *args.finetune_extra],
            out / "logs" / "finetune.log",
        )  # fmt: skip
        print(report(out, names, best), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
