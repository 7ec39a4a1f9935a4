"""The teacher cell: leak-free multilingual text, an mBERT vocabulary cut to it, MLM pretraining.

``kind: pretrain`` (cpu / smoke scales) builds the teacher here; ``kind: pretrained`` (gpu scale)
names an existing multilingual model (a Hub id such as ``bert-base-multilingual-cased`` or a path)
and only records it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from .cells import Cell, Study, write_json_atomic
from .corpora import build_corpora


def shared_data_root(config: dict, repo_root: Path) -> Path:
    env = os.environ.get("ELIQUARE_SHARED_DATA")
    if env:
        return Path(env)
    return (repo_root / config.get("shared_data", "../shared/data")).resolve()


def teacher_text_dir(study: Study, cell: Cell) -> Path:
    return study.artifact_dir(cell) / "text"


def prepare_text_and_vocab(cell: Cell, study: Study) -> dict:
    """Corpora (per language, train/validation) and the reduced tokenizer, once per artifact dir."""
    spec = cell.spec
    art = study.artifact_dir(cell)
    prep_file = art / "prep.json"
    if prep_file.is_file():
        return json.loads(prep_file.read_text())
    from transformers import AutoTokenizer

    from hf_eliquare.vocab import count_sentence_occurrences, reduce_tokenizer, select_vocabulary

    root = shared_data_root(study.config, study.repo_root)
    corpus = build_corpora(
        root,
        spec["corpora"],
        spec["exclude"],
        teacher_text_dir(study, cell),
        validation_lines=spec["validation_lines"],
        seed=spec["train"]["seed"],
        max_lines=spec.get("max_lines_per_language"),
    )
    tokenizer_src = spec["tokenizer"]
    if not os.path.isabs(tokenizer_src) and (root / tokenizer_src).exists():
        tokenizer_src = str(root / tokenizer_src)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_src)
    files = sorted(teacher_text_dir(study, cell).glob("*.txt"))
    counts, sentences = count_sentence_occurrences(tokenizer, [Path(f) for f in files], show_progress=False)
    kept = select_vocabulary(counts, sentences, tokenizer, min_count=int(spec["vocab_min_count"]))
    reduced = reduce_tokenizer(tokenizer, kept)
    reduced.save_pretrained(str(art / "tokenizer"))
    prep = {
        "corpus": corpus,
        "vocab": {
            "source_tokenizer": spec["tokenizer"],
            "source_vocab_size": len(tokenizer),
            "kept_vocab_size": len(kept),
            "min_sentence_count": int(spec["vocab_min_count"]),
            "counted_sentences": int(sentences),
        },
    }
    write_json_atomic(prep_file, prep)
    return prep


def final_train_settings(spec: dict) -> dict:
    """The training settings of the teacher's last phase (``continuation`` over ``train``): its seed also
    fixed the masks of the recorded validation loss."""
    return {**spec["train"], **(spec.get("continuation") or {})}


def run_teacher(cell: Cell, study: Study) -> dict:
    """Text + vocabulary, then MLM from random initialisation (``train``); with a ``continuation`` (train
    settings over ``train``'s) a second phase from the first phase's weights, with a fresh optimizer and
    schedule: the first phase's model is kept as ``base-model`` and its result as ``mlm_base``."""
    spec = cell.spec
    if spec["kind"] == "pretrained":
        return {"model": spec["name_or_path"], "note": "existing multilingual model, not trained here"}
    started = time.time()
    art = study.artifact_dir(cell)
    art.mkdir(parents=True, exist_ok=True)
    prep = prepare_text_and_vocab(cell, study)
    text = teacher_text_dir(study, cell)
    common = {
        "tokenizer": str(art / "tokenizer"),
        "train_files": {lang: str(text / f"{lang}.train.txt") for lang in spec["corpora"]},
        "validation_files": {lang: str(text / f"{lang}.validation.txt") for lang in spec["corpora"]},
        "model": spec["model"],
        "threads": study.config.get("threads"),
    }
    continuation = spec.get("continuation")
    if not continuation:
        mlm_spec = {**common, "train": spec["train"], "work_dir": str(art / "checkpoints")}
        mlm = run_mlm_subprocess(study, art, {**mlm_spec, "output_dir": str(study.model_dir(cell))}, cell.name)
        base = None
    else:
        base_dir, base_result = art / "base-model", art / "base_mlm_result.json"
        if (base_dir / "model.safetensors").is_file() and base_result.is_file():
            base = json.loads(base_result.read_text())
        else:
            base_spec = {**common, "train": spec["train"], "work_dir": str(art / "checkpoints")}
            base = run_mlm_subprocess(study, art, {**base_spec, "output_dir": str(base_dir)}, cell.name)
            write_json_atomic(base_result, base)
        cont_spec = {
            **common,
            "train": final_train_settings(spec),
            "init_from": str(base_dir),
            "work_dir": str(art / "continuation-checkpoints"),
            "output_dir": str(study.model_dir(cell)),
        }
        mlm = run_mlm_subprocess(study, art, cont_spec, cell.name, prefix="continuation_")
    result = {
        "corpus": prep["corpus"],
        "vocab": prep["vocab"],
        "mlm": mlm,
        "wall_s_this_session": round(time.time() - started, 1),
    }
    if base is not None:
        result["mlm_base"] = base
    return result


def run_mlm_subprocess(study: Study, art: Path, mlm_spec: dict, name: str, prefix: str = "") -> dict:
    from .runner import run_logged

    spec_file, result_file = art / f"{prefix}mlm_spec.json", art / f"{prefix}mlm_result.json"
    write_json_atomic(spec_file, mlm_spec)
    if result_file.exists():
        result_file.unlink()
    run_logged(study, name, [sys.executable, "-m", "reproduction.mlm", str(spec_file), str(result_file)], kind="mlm")
    return json.loads(result_file.read_text())
