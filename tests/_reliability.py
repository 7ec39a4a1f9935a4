"""Helpers shared by the reliability tests: a tiny teacher over the demo tokenizer, a slice of the
demo corpus, and run_distill.py as a subprocess or in-process with the CLI's error handling."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import torch
from conftest import DEMO_DIR, ROOT, tiny_bert
from safetensors.torch import load_file

SCRIPT = ROOT / "examples" / "run_distill.py"


def build_teacher(directory: Path, *, dropout: float = 0.0, layers: int = 4, seed: int = 0) -> Path:
    """A random 4-layer BertForMaskedLM (hidden 32) over the shipped demo tokenizer, saved like a Hub model."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(DEMO_DIR / "tokenizer")
    model = tiny_bert(vocab_size=len(tokenizer), layers=layers, hidden=32, seed=seed, max_positions=64)
    model.config.hidden_dropout_prob = dropout
    model.config.attention_probs_dropout_prob = dropout
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def demo_lines(n: int) -> list[str]:
    return (DEMO_DIR / "data" / "sl_sample.txt").read_text(encoding="utf-8").splitlines()[:n]


def write_corpus(path: Path, n_lines: int) -> Path:
    path.write_text("\n".join(demo_lines(n_lines)) + "\n", encoding="utf-8")
    return path


def distill_argv(teacher, corpus, out, *extra) -> list[str]:
    return [
        "--teacher_model_name_or_path", str(teacher), "--train_file", str(corpus), "--lang", "sl",
        "--output_dir", str(out), "--num_student_layers", "2", "--max_seq_length", "32",
        "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "8",
        "--gradient_accumulation_steps", "1", "--max_eval_samples", "16", "--warmup_steps", "0",
        "--report_to", "none", "--disable_tqdm", "true", "--use_cpu", "--dataloader_num_workers", "0",
        *extra,
    ]  # fmt: skip


def subprocess_env(**overrides) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        OMP_WAIT_POLICY="PASSIVE",
        OMP_NUM_THREADS="1",  # the same arithmetic in every process and run
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
    )
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run_script(argv, *, env=None, timeout=300, launcher=None) -> subprocess.CompletedProcess:
    command = [*(launcher or [sys.executable]), str(SCRIPT), *map(str, argv)]
    return subprocess.run(
        command, cwd=ROOT, env=env or subprocess_env(), capture_output=True, text=True, timeout=timeout
    )


def load_script():
    spec = importlib.util.spec_from_file_location("run_distill_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def weights(directory) -> dict[str, torch.Tensor]:
    return load_file(str(Path(directory) / "model.safetensors"))


def max_weight_difference(a, b) -> float:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    return max((wa[k].double() - wb[k].double()).abs().max().item() for k in wa)


def looks_finished(directory) -> bool:
    """What pipeline.check_output_dir calls a finished model."""
    return all((Path(directory) / f).is_file() for f in ("config.json", "model.safetensors"))
