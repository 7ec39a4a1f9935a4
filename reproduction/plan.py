"""The cells of a scale, built from its config, in priority order."""

from __future__ import annotations

import copy

from .cells import Cell, Study
from .teacher import run_teacher


def teacher_cell(study: Study) -> Cell:
    teacher = copy.deepcopy(study.config["teacher"])
    steps = teacher.get("train", {}).get("max_steps", 0)
    return Cell(
        stage="teacher",
        name="teacher",
        spec=teacher,
        run=run_teacher,
        cost_s=steps * float(study.config.get("cost", {}).get("teacher_step_s", 1.0)),
        makes_model=teacher["kind"] == "pretrain",
    )


def plan_cells(study: Study) -> None:
    study.add(teacher_cell(study))
