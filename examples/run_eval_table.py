#!/usr/bin/env python
"""Fine-tune several models on several tasks (and seeds) and print the paper's Table 4 layout.

    python examples/run_eval_table.py \
        --models mbert=bert-base-multilingual-cased student=out/student-sl reduced=out/student-sl-reduced \
        --tasks sl_ner sl_pos --seeds 1 2 3 --output_dir out/table4

Rows: models; columns: task 1 / task 2 per language; cells: test score (main metric) mean ± std over
seeds. Every cell is a run of examples/run_finetune.py (same arguments, e.g. --num_train_epochs), kept
under <output_dir>/<model>/<task>/seed<N> and reused when present. ``--from_results DIR`` tabulates
finished runs without training. Output: <output_dir>/eval_table.md and eval_table.json.
The same as ``hf-eliquare eval-table``.
"""

from hf_eliquare.cli import run_command
from hf_eliquare.cli.eval_table import main, parse_args

__all__ = ["main", "parse_args"]

if __name__ == "__main__":
    run_command(main)
