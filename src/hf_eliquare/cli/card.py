"""``hf-eliquare card`` / ``examples/make_card.py``: (re)generate the model card of a model directory."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..hub.cards import write_model_card
from . import parse_args, setup_logging


@dataclass
class CardArguments:
    """Arguments of ``hf-eliquare card`` / ``examples/make_card.py``."""

    model_dir: str = field(
        metadata={"help": "Directory of the student (or fine-tuned model): config.json, weights, eliquare_run.json."}
    )
    eval_results: list[str] = field(
        default_factory=list,
        metadata={"help": "all_results.json files of run_finetune.py to merge (test metrics of each run)."},
    )
    output: str | None = field(
        default=None, metadata={"help": "Where to write the card (default: MODEL_DIR/README.md)."}
    )
    lang: str | None = field(
        default=None, metadata={"help": "Language code, when the run summary does not record it."}
    )
    license: str | None = field(
        default=None, metadata={"help": "License id, overriding the one inherited from the teacher."}
    )
    hub_model_id: str | None = field(
        default=None, metadata={"help": "Hub id (ORG/NAME) used as title and in the loading snippet."}
    )
    template: str | None = field(default=None, metadata={"help": "A custom Jinja template instead of model_cards/."})


def main(argv: Sequence[str] | None = None) -> Path:
    (args,) = parse_args(CardArguments, argv, prog="hf-eliquare card")
    setup_logging()
    path = write_model_card(
        args.model_dir,
        eval_results=args.eval_results,
        output=args.output,
        template_path=args.template,
        lang=args.lang,
        license=args.license,
        hub_model_id=args.hub_model_id,
    )
    print(path)
    return path
