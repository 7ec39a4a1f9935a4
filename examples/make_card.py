#!/usr/bin/env python
"""(Re)generate the model card README.md of a student (or fine-tuned model) directory.

    python examples/make_card.py --model_dir outputs/eliquare-sl \
        --eval_results outputs/ner-sl/all_results.json outputs/pos-sl/all_results.json

The same as ``hf-eliquare card``; arguments can also come from one .json/.yaml file
(see :class:`hf_eliquare.cli.card.CardArguments`). Pass every results file each time: the card is
rebuilt from the directory and the files given, not merged into the previous card.
"""

from hf_eliquare.cli import run_command
from hf_eliquare.cli.card import main

__all__ = ["main"]

if __name__ == "__main__":
    run_command(main)
