"""Start-up checks shared by the commands: everything that can be known wrong before any model or text is
loaded, refused with one message that names the flag and the fix."""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterable
from pathlib import Path

from ..errors import ConfigurationError


def check_training_flags(args) -> None:
    """Values ``TrainingArguments`` accepts but a run cannot use (they would fail an epoch later, or train on
    nothing)."""
    positive = {
        "--per_device_train_batch_size": args.per_device_train_batch_size,
        "--per_device_eval_batch_size": args.per_device_eval_batch_size,
        "--gradient_accumulation_steps": args.gradient_accumulation_steps,
    }
    for flag, value in positive.items():
        if value is None or value < 1:
            raise ConfigurationError(f"{flag} must be at least 1, got {value}.")
    if args.learning_rate is None or args.learning_rate < 0:
        raise ConfigurationError(f"--learning_rate must be ≥ 0, got {args.learning_rate} (the paper: 5e-4 / 5e-5).")
    if (
        args.num_train_epochs is not None
        and args.num_train_epochs <= 0
        and not (args.max_steps and args.max_steps > 0)
    ):
        raise ConfigurationError(f"--num_train_epochs must be > 0, got {args.num_train_epochs}.")
    if args.weight_decay is not None and args.weight_decay < 0:
        raise ConfigurationError(f"--weight_decay must be ≥ 0, got {args.weight_decay}.")
    if args.warmup_steps is not None and args.warmup_steps < 0:
        raise ConfigurationError(f"--warmup_steps must be ≥ 0, got {args.warmup_steps}.")


def check_global_batch(args) -> None:
    """The global batch a distillation run will train with, checked at start-up against the processes that
    actually run: ``global_batch_size = per_device_train_batch_size × processes × gradient_accumulation_steps``.

    :class:`~hf_eliquare.DistillationTrainingArguments` derives the accumulation from ``--global_batch_size``
    (default: the paper's 1600) when it is built (:func:`hf_eliquare.config.resolve_global_batch`, which refuses
    a global batch that no whole number of accumulation steps gives). Arguments edited after that, or built
    under another process count than the launch, would train with another batch than the one recorded."""
    global_batch = getattr(args, "global_batch_size", None)
    if global_batch is None:
        return
    per_step = args.per_device_train_batch_size * max(1, args.world_size)
    if global_batch != per_step * args.gradient_accumulation_steps:
        raise ConfigurationError(
            f"--global_batch_size {global_batch} does not match per_device_train_batch_size × processes × "
            f"gradient_accumulation_steps = {args.per_device_train_batch_size} × {max(1, args.world_size)} × "
            f"{args.gradient_accumulation_steps} = {per_step * args.gradient_accumulation_steps}. Give only "
            "--global_batch_size (the accumulation follows) or only --gradient_accumulation_steps."
        )


def check_probability(flag: str, value: float | None, *, allow_zero: bool = True) -> None:
    if value is None:
        return
    low_ok = value >= 0 if allow_zero else value > 0
    if not (low_ok and value <= 1):
        interval = "[0, 1]" if allow_zero else "(0, 1]"
        raise ConfigurationError(f"{flag} must be a probability in {interval}, got {value}.")


def check_sample_limits(**limits: int | None) -> None:
    """``--max_train_samples 0`` and friends would give an empty split and fail after the work."""
    for name, value in limits.items():
        if value is not None and value < 1:
            raise ConfigurationError(f"--{name} must be at least 1, got {value}. Leave it out to use every example.")


def check_input_files(flag: str, paths: Iterable[str | os.PathLike | None]) -> None:
    """Input files exist, are files and can be read."""
    for path in paths:
        if path is None:
            continue
        if os.path.isdir(path):
            raise ConfigurationError(f"{flag} {str(path)!r} is a directory; pass the file(s) inside it.")
        if not os.path.isfile(path):
            raise ConfigurationError(f"{flag} {str(path)!r} does not exist. Check the path.")
        if not os.access(path, os.R_OK):
            raise ConfigurationError(f"{flag} {str(path)!r} cannot be read (permissions). Fix them or copy the file.")


def checkpoint_problem(path: str | os.PathLike) -> str | None:
    """Why the Trainer checkpoint ``path`` cannot be resumed from, or ``None`` when it looks complete.

    Cheap checks, no tensors loaded: ``trainer_state.json`` (written last) parses; the weights' safetensors
    header reads; ``optimizer.pt``/``scheduler.pt``/``rng_state*.pth`` (zip archives) have their central
    directory (a truncated file does not).
    """
    path = Path(path)
    if not path.is_dir():
        return "it is not a directory"
    state = path / "trainer_state.json"
    if not state.is_file():
        return "no trainer_state.json (the save was interrupted)"
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return f"trainer_state.json is unreadable ({err})"
    weights = sorted(path.glob("*.safetensors"))
    if not weights and not (path / "pytorch_model.bin").is_file():
        return "no model weights"
    from ..loading import safetensors_problem

    for file in weights:
        problem = safetensors_problem(file)
        if problem:
            return f"{file.name} {problem}"
    for file in [*path.glob("*.pt"), *path.glob("*.pth")]:
        if not zipfile.is_zipfile(file):
            return f"{file.name} is truncated or corrupt"
    return None


def check_resume_checkpoint(path: str | None) -> None:
    """An explicit ``--resume_from_checkpoint`` must exist and be complete (else it fails after loading)."""
    if not path or path in ("True", "true"):
        return
    if not os.path.exists(path):
        raise ConfigurationError(
            f"--resume_from_checkpoint {path!r} does not exist. Pass a checkpoint-N directory of an earlier run "
            "(or leave it out: a run resumes from the last complete checkpoint in --output_dir on its own)."
        )
    problem = checkpoint_problem(path)
    if problem:
        raise ConfigurationError(
            f"--resume_from_checkpoint {path!r} cannot be resumed from: {problem}. Pass an earlier checkpoint-N."
        )
