#!/usr/bin/env python
"""(Re)generate the model card README.md of a student (or fine-tuned model) directory.

    python examples/make_card.py --model_dir outputs/eliquare-sl \
        --eval_results outputs/ner-sl/all_results.json outputs/pos-sl/all_results.json

Same as ``python -m hf_eliquare.cards``; arguments can also come from one .json/.yaml file
(see :class:`hf_eliquare.cards.CardArguments`). Pass every results file each time: the card is
rebuilt from the directory and the files given, not merged into the previous card.
"""

from hf_eliquare._cli import run_main, setup_logging
from hf_eliquare.cards import main

if __name__ == "__main__":
    setup_logging()
    run_main(main)
