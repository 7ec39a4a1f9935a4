"""``hf-eliquare eval-table`` / ``examples/run_eval_table.py``: models x tasks x seeds, Table 4 layout."""

from __future__ import annotations

from collections.abc import Sequence

from ..evaluation.finetune import FinetuneDataArguments, FinetuneTrainingArguments
from ..evaluation.table import EvalTableArguments, run_eval_table
from . import parse_args as parse_cli_args
from . import setup_logging


def parse_args(argv: Sequence[str] | None = None, prog: str | None = None):
    """Command-line flags, or one .json/.yaml config file followed by flags that override it."""
    return parse_cli_args((EvalTableArguments, FinetuneDataArguments, FinetuneTrainingArguments), argv, prog=prog)


def main(argv: Sequence[str] | None = None):
    setup_logging()
    return run_eval_table(*parse_args(argv))
