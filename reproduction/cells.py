"""Cells: the unit of work of the study, keyed by their resolved config, resumable.

A cell is one teacher pretraining, one distillation / baseline, or one fine-tuning run. Its key is
the SHA-256 of its resolved config (canonical JSON). Its result is a small JSON file
``results/<scale>/<stage>/<name>.json`` holding that key; the cell counts as finished when the file
exists *and* its key matches, so a changed config re-runs only the cells it changes. The file is
written atomically (temporary file + rename) only when the run has finished, so an interrupted run
(even SIGKILL) leaves no result and is simply run again (and the runs it launches resume from their
own checkpoints where they have any).

Weights never go to git: a cell that produces a model writes it to ``<cache>/<name>-<key12>/``. When a
later cell needs it and it is missing (a clean checkout), the producing cell is run again into the
cache — its config and seed make it the same model — without touching its committed result.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


def config_key(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write_json_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, sort_keys=True, ensure_ascii=False)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def table4_models(lang: str) -> dict[str, str]:
    """Table 4's models for ``lang``: role → cell name (the teacher, the distilled student, both baselines)."""
    return {
        "teacher": "teacher",
        "basic": f"distil-{lang}-basic",
        "scratch": f"scratch-{lang}",
        "copy": f"copy-{lang}",
    }


@dataclass
class Cell:
    """One run. ``spec`` is everything that defines its result (hashed); ``deps`` the names of the cells
    whose models it needs; ``cost_s`` an estimate of its compute time for ``--dry-run``."""

    stage: str
    name: str
    spec: dict
    run: Callable[[Cell, Study], dict]
    deps: list[str] = field(default_factory=list)
    cost_s: float = 0.0
    makes_model: bool = False
    blocked: bool = False  # waits for something other than a cell (e.g. the chosen learning rate)
    waits_for: str = "the learning-rate choice"  # what a blocked cell waits for (--dry-run says it)

    @property
    def key(self) -> str:
        return config_key(self.spec)


class Study:
    """The cells of one scale, their results and their cache."""

    def __init__(self, scale: str, config: dict, results_dir: Path, cache_dir: Path, repo_root: Path):
        self.scale, self.config = scale, config
        self.results_dir, self.cache_dir, self.repo_root = results_dir, cache_dir, repo_root
        self.cells: dict[str, Cell] = {}

    def add(self, cell: Cell) -> Cell:
        if cell.name in self.cells:
            raise ValueError(f"duplicate cell {cell.name}")
        self.cells[cell.name] = cell
        return cell

    def result_path(self, cell: Cell) -> Path:
        return self.results_dir / cell.stage / f"{cell.name}.json"

    def result(self, cell: Cell | str) -> dict | None:
        """The finished result of ``cell`` for its *current* config, else None."""
        cell = self.cells[cell] if isinstance(cell, str) else cell
        path = self.result_path(cell)
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return None
        return data if data.get("key") == cell.key else None

    def done(self, cell: Cell) -> bool:
        return self.result(cell) is not None

    def artifact_dir(self, cell: Cell | str) -> Path:
        cell = self.cells[cell] if isinstance(cell, str) else cell
        return self.cache_dir / f"{cell.name}-{cell.key[:12]}"

    def model_dir(self, cell: Cell | str) -> Path:
        return self.artifact_dir(cell) / "model"

    def has_model(self, cell: Cell | str) -> bool:
        model = self.model_dir(cell)
        return (model / "config.json").is_file() and (model / "model.safetensors").is_file()
