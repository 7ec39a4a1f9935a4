"""Student and baseline cells: distillation through ``examples/run_distill.py``, the MLM-only baseline
from random initialisation (``reproduction.mlm``), and the 2n−1 copy with no training.

Distillations run the package's command line as a subprocess, so the driver depends only on its
flags. ``run_distill.py`` resumes by itself from the newest checkpoint in its output directory.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from .cells import Cell, Study
from .runner import run_logged
from .teacher import run_mlm_subprocess, teacher_text_dir

DISTILL_SCRIPT = "examples/run_distill.py"


def teacher_model_path(study: Study) -> str:
    teacher = study.cells["teacher"]
    if teacher.spec["kind"] == "pretrained":
        return teacher.spec["name_or_path"]
    return str(study.model_dir(teacher))


def language_text(study: Study, lang: str, split: str = "train") -> str:
    return str(teacher_text_dir(study, study.cells["teacher"]) / f"{lang}.{split}.txt")


#: ``distill`` config keys passed to run_distill.py as they are (when set).
DISTILL_FLAGS = (
    "max_steps",
    "num_train_epochs",
    "gradient_accumulation_steps",
    "learning_rate",
    "max_seq_length",
    "validation_split",
    "max_train_samples",
    "max_eval_samples",
    "logging_steps",
    "seed",
    "bf16",
    "fp16",
    "preprocessing_num_workers",
    "dataloader_num_workers",
)


def distill_command(study: Study, cell: Cell) -> list[str]:
    spec = cell.spec
    d = spec["distill"]
    args = [
        sys.executable,
        DISTILL_SCRIPT,
        "--teacher_model_name_or_path",
        teacher_model_path(study),
        "--num_student_layers",
        str(spec["student_layers"]),
        "--lang",
        spec["lang"],
        "--vocab_reduction",
        spec["vocab_reduction"],
        "--output_dir",
        str(study.model_dir(cell)),
        "--alpha_ce",
        str(spec["alpha_ce"]),
        "--alpha_mlm",
        str(spec["alpha_mlm"]),
        "--alpha_cos",
        str(spec["alpha_cos"]),
        "--temperature",
        str(spec["temperature"]),
        "--per_device_train_batch_size",
        str(d["batch_size"]),
        "--train_sampling_strategy",
        "group_by_length",
        "--report_to",
        "none",
        "--disable_tqdm",
        "true",
    ]
    if d.get("eval_steps"):
        # Validation and a checkpoint (the resume point) every eval_steps; the best one is kept.
        step = str(d["eval_steps"])
        args += ["--eval_strategy", "steps", "--eval_steps", step, "--save_strategy", "steps", "--save_steps", step]
        args += ["--save_total_limit", "2"]
    for key in DISTILL_FLAGS:
        if d.get(key) is not None:
            args += [f"--{key}", str(d[key])]
    # A narrow student (hidden_size / num_attention_heads / intermediate_size) and the optional loss terms
    # (alpha_hidden, alpha_attn, alpha_rel, relation_heads, ...), as run_distill.py's flags.
    for key, value in (spec.get("student_shape") or {}).items():
        args += [f"--student_{key}", str(value)]
    for key, value in (spec.get("extra_terms") or {}).items():
        args += [f"--{key}", str(value)]
    if spec["corpus"] == "teacher_text":
        args += ["--train_file", language_text(study, spec["lang"])]
    elif spec["corpus"] != "wikipedia":  # wikipedia: run_distill's default corpus for --lang
        raise ValueError(f"distill.corpus must be teacher_text or wikipedia, got {spec['corpus']!r}")
    return args


def run_distill_cell(cell: Cell, study: Study) -> dict:
    out = study.model_dir(cell)
    summary_file = out / "eliquare_run.json"
    if not (study.has_model(cell) and summary_file.is_file()):
        run_logged(study, cell.name, distill_command(study, cell), kind="distill")
    summary = json.loads(summary_file.read_text())
    for checkpoint in out.glob("checkpoint-*"):
        shutil.rmtree(checkpoint, ignore_errors=True)
    metrics = summary.get("metrics", {})
    epochs = float(metrics.get("epoch") or 0.0)
    runtime = float(summary.get("train_runtime_s") or 0.0)
    useful_tokens = summary.get("train_tokens", 0) * epochs
    config = json.loads((out / "config.json").read_text())
    return {
        "train_runtime_s": runtime,
        "useful_tokens": round(useful_tokens),
        "useful_tokens_per_s": round(useful_tokens / runtime, 1) if runtime else None,
        "student_parameters": summary.get("student_parameters"),
        "teacher_parameters": summary.get("teacher_parameters"),
        "vocab_size": config.get("vocab_size"),
        "vocab_reduction": (config.get("eliquare") or {}).get("vocab_reduction"),
        "global_steps": summary.get("global_steps"),
        "epochs": epochs,
        "best_eval_loss": summary.get("best_eval_loss"),
        "train_sentences": summary.get("train_sentences"),
        "train_sequences": summary.get("train_sequences"),
        "train_tokens_per_epoch": summary.get("train_tokens"),
        "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float))},
    }


def run_scratch_cell(cell: Cell, study: Study) -> dict:
    """Same architecture as the student, MLM only, random initialisation, same steps/batch/lr."""
    spec = cell.spec
    art = study.artifact_dir(cell)
    art.mkdir(parents=True, exist_ok=True)
    teacher = study.cells["teacher"]
    lang = spec["lang"]
    if teacher.spec["kind"] == "pretrained":
        tokenizer = teacher.spec["name_or_path"]
        train_file, validation_file = export_wikipedia_text(art, lang, spec["train"]["seed"])
    else:
        tokenizer = str(study.artifact_dir(teacher) / "tokenizer")
        train_file, validation_file = language_text(study, lang, "train"), language_text(study, lang, "validation")
    mlm_spec = {
        "tokenizer": tokenizer,
        "train_files": {lang: train_file},
        "validation_files": {lang: validation_file},
        "model": spec["model"],
        "train": spec["train"],
        "work_dir": str(art / "checkpoints"),
        "output_dir": str(study.model_dir(cell)),
        "threads": study.config.get("threads"),
    }
    return run_mlm_subprocess(study, art, mlm_spec, cell.name)


def export_wikipedia_text(art: Path, lang: str, seed: int) -> tuple[str, str]:
    """The distillation's corpus for ``--lang`` (Wikipedia, sentence-split, the same seeded 90:10 split) as
    two text files, for the MLM-only baseline (gpu scale)."""
    from hf_eliquare.data import load_sentence_splits
    from hf_eliquare.languages import get_language

    splits = load_sentence_splits(wikipedia_config=get_language(lang).wikipedia_config, seed=seed)
    paths = []
    for split in ("train", "validation"):
        path = art / f"{lang}.{split}.txt"
        if not path.is_file():
            tmp = path.with_name(f".{path.name}.tmp")
            with open(tmp, "w", encoding="utf-8") as handle:
                for batch in splits[split].iter(batch_size=10_000):
                    handle.writelines(text.replace("\n", " ") + "\n" for text in batch["text"])
            tmp.replace(path)
        paths.append(str(path))
    return paths[0], paths[1]


def run_copy_cell(cell: Cell, study: Study) -> dict:
    """The 2n−1 student before any training: teacher layers copied, nothing else."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from hf_eliquare import create_student

    teacher_path = teacher_model_path(study)
    teacher = AutoModelForMaskedLM.from_pretrained(teacher_path)
    tokenizer = AutoTokenizer.from_pretrained(teacher_path)
    student = create_student(teacher, num_layers=cell.spec["student_layers"])
    out = study.model_dir(cell)
    tmp = out.with_name(".model.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    student.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    if out.exists():
        shutil.rmtree(out)
    Path(tmp).rename(out)
    return {
        "student_parameters": student.num_parameters(),
        "teacher_layers": (student.config.eliquare or {}).get("teacher_layers"),
    }
