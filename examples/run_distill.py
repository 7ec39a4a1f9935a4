#!/usr/bin/env python
"""Distil a language-specific student out of a multilingual masked-language model.

    python examples/run_distill.py --lang sl --output_dir distil-mbert-sl
    accelerate launch examples/run_distill.py --lang sl --output_dir distil-mbert-sl --bf16
    python examples/run_distill.py examples/configs/demo_sl.yaml      # the embedded CPU demo

All the work is done by the `hf_eliquare` library; this script wires arguments to it.
"""

from __future__ import annotations

import logging

from hf_eliquare import DistillationTrainingArguments
from hf_eliquare._cli import parse_args as cli_parse_args
from hf_eliquare._cli import run_main, setup_logging
from hf_eliquare.pipeline import DataArguments, ModelArguments, run_distillation

logger = logging.getLogger("run_distill")


def parse_args(argv=None):
    """Command-line flags, or one .json/.yaml config file followed by flags that override it."""
    return cli_parse_args((ModelArguments, DataArguments, DistillationTrainingArguments), argv)


def main(argv: list[str] | None = None):
    setup_logging()
    model_args, data_args, training_args = parse_args(argv)
    return run_distillation(model_args, data_args, training_args)


if __name__ == "__main__":
    run_main(main)
