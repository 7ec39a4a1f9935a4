"""``hf-eliquare finetune`` / ``examples/run_finetune.py``: fine-tune and test on one downstream task."""

from __future__ import annotations

from collections.abc import Sequence

from ..evaluation.finetune import (
    FinetuneDataArguments,
    FinetuneModelArguments,
    FinetuneTrainingArguments,
    run_finetune,
)
from . import parse_args as parse_cli_args
from . import setup_logging


def parse_args(argv: Sequence[str] | None = None, prog: str | None = None):
    """Command-line flags, or one .json/.yaml config file followed by flags that override it."""
    return parse_cli_args((FinetuneModelArguments, FinetuneDataArguments, FinetuneTrainingArguments), argv, prog=prog)


def main(argv: Sequence[str] | None = None):
    setup_logging()
    model_args, data_args, training_args = parse_args(argv)
    return run_finetune(model_args, data_args, training_args)
