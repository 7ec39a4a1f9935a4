"""Fine-tuning cells: one ``examples/run_finetune.py`` run (model × task × seed × learning rate).

The run's own output (best checkpoint, predictions) goes to a temporary folder in the cache and is
deleted once its ``all_results.json`` has been read: only the scores are kept, in the cell's JSON.
"""

from __future__ import annotations

import json
import shutil
import sys

from .cells import Cell, Study
from .runner import run_logged
from .students import teacher_model_path

FINETUNE_SCRIPT = "examples/run_finetune.py"


def model_path(study: Study, model_cell: str) -> str:
    if model_cell == "teacher":
        return teacher_model_path(study)
    return str(study.model_dir(model_cell))


#: ``finetune`` config keys passed to run_finetune.py as they are (when set), besides epochs, batch size and
#: sequence length; the cell's protocol keeps exactly these, so no config key can be dropped on the way.
OPTIONAL_FLAGS = (
    "max_train_samples",
    "max_eval_samples",
    "max_test_samples",
    "warmup_max_fraction",
    "train_sampling_strategy",
)


def finetune_command(study: Study, cell: Cell, output_dir: str) -> list[str]:
    spec = cell.spec
    ft = spec["protocol"]
    args = [
        sys.executable,
        FINETUNE_SCRIPT,
        "--model_name_or_path",
        model_path(study, spec["model"]),
        "--task",
        spec["task"],
        "--output_dir",
        output_dir,
        "--overwrite_output_dir",
        "true",
        "--seed",
        str(spec["seed"]),
        "--learning_rate",
        str(spec["learning_rate"]),
        "--num_train_epochs",
        str(ft["epochs"]),
        "--per_device_train_batch_size",
        str(ft["batch_size"]),
        "--max_seq_length",
        str(ft["max_seq_length"]),
        "--no_write_predictions",
        "--report_to",
        "none",
        "--disable_tqdm",
        "true",
        "--save_total_limit",
        "1",
    ]
    for key in OPTIONAL_FLAGS:
        if ft.get(key) is not None:
            args += [f"--{key}", str(ft[key])]
    return args


def run_finetune_cell(cell: Cell, study: Study) -> dict:
    work = study.cache_dir / "finetune-runs" / f"{cell.name}-{cell.key[:12]}"
    if work.exists():
        shutil.rmtree(work)
    work.parent.mkdir(parents=True, exist_ok=True)
    try:
        run_logged(study, f"ft-{cell.name}", finetune_command(study, cell, str(work)), kind="finetune")
        results = json.loads((work / "all_results.json").read_text())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    keep = ("test_metrics", "validation_metrics", "main_metric", "splits", "unseen_labels", "warmup_steps")
    out = {k: results[k] for k in keep if k in results}
    for key, value in results.items():
        if key.endswith(("runtime", "_s", "seconds")) and isinstance(value, (int, float)):
            out[key] = value
    return out
