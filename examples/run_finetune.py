#!/usr/bin/env python
"""Fine-tune an encoder on a downstream task with the paper's protocol and report test scores.

    python examples/run_finetune.py --model_name_or_path out/student-sl --task sl_pos --output_dir out/ft-sl_pos

Defaults follow the paper (10 epochs, lr 5e-5, weight decay 0.01, 500 warm-up steps as written, best
validation checkpoint on the task's main metric: F1, macro-F1 for classification, accuracy for Dutch DBRD). Results: ``<output_dir>/all_results.json`` and ``results.md``.
Arguments may also come from one .json/.yaml file. See docs/finetune.md.
"""

from hf_eliquare._cli import parse_args as cli_parse_args
from hf_eliquare._cli import run_main, setup_logging
from hf_eliquare.finetune import (
    FinetuneDataArguments,
    FinetuneModelArguments,
    FinetuneTrainingArguments,
    run_finetune,
)


def parse_args(argv=None):
    """Command-line flags, or one .json/.yaml config file followed by flags that override it."""
    return cli_parse_args((FinetuneModelArguments, FinetuneDataArguments, FinetuneTrainingArguments), argv)


def main(argv=None):
    setup_logging()
    model_args, data_args, training_args = parse_args(argv)
    return run_finetune(model_args, data_args, training_args)


if __name__ == "__main__":
    run_main(main)
