#!/usr/bin/env python
"""Fine-tune an encoder on a downstream task with the paper's protocol and report test scores.

    python examples/run_finetune.py --model_name_or_path out/student-sl --task sl_pos --output_dir out/ft-sl_pos

Defaults follow the paper (10 epochs, lr 5e-5, weight decay 0.01, 500 warm-up steps as written, best
validation checkpoint on the task's main metric: F1, macro-F1 for classification, accuracy for Dutch DBRD).
Results: ``<output_dir>/all_results.json`` and ``results.md``. Arguments may also come from one .json/.yaml
file. See docs/finetune.md. The same as ``hf-eliquare finetune``.
"""

from hf_eliquare.cli import run_command
from hf_eliquare.cli.finetune import main, parse_args

__all__ = ["main", "parse_args"]

if __name__ == "__main__":
    run_command(main)
