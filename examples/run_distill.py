#!/usr/bin/env python
"""Distil a language-specific student out of a multilingual masked-language model.

    python examples/run_distill.py --lang sl --output_dir distil-mbert-sl
    accelerate launch examples/run_distill.py --lang sl --output_dir distil-mbert-sl --bf16
    python examples/run_distill.py examples/configs/demo_sl.yaml      # the embedded CPU demo

The same as ``hf-eliquare distill``; the job is :mod:`hf_eliquare.cli.distill`.
"""

from hf_eliquare.cli import run_command
from hf_eliquare.cli.distill import main, parse_args

__all__ = ["main", "parse_args"]

if __name__ == "__main__":
    run_command(main)
