"""Finding the checkpoint an interrupted run resumes from."""

from __future__ import annotations

import logging
import os
import re

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

logger = logging.getLogger(__name__)

_CHECKPOINT = re.compile(rf"{PREFIX_CHECKPOINT_DIR}-(\d+)")


def last_complete_checkpoint(output_dir: str) -> str | None:
    """The newest ``checkpoint-N`` in ``output_dir`` that was written completely.

    The Trainer writes a checkpoint in place and ``trainer_state.json`` last, so a run killed while
    saving leaves a newer, incomplete checkpoint; resuming from it would fail or silently restart the
    schedule. Such checkpoints — and ones whose files are truncated or corrupt
    (:func:`~hf_eliquare.cli.checks.checkpoint_problem`) — are skipped with a warning that names the one
    the run falls back to.
    """
    from .checks import checkpoint_problem

    steps = []
    for name in os.listdir(output_dir):
        match = _CHECKPOINT.fullmatch(name)
        if match and os.path.isdir(os.path.join(output_dir, name)):
            steps.append((int(match.group(1)), name))
    for _, name in sorted(steps, reverse=True):
        path = os.path.join(output_dir, name)
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        logger.warning("Skipping %s: it cannot be resumed from (%s); trying the previous checkpoint.", path, problem)
    return None
