"""``hf-eliquare publish``: push an existing student directory (with its card) to the Hub, or stage the files."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import ConfigurationError
from ..hub.publish import push_student, stage_upload, upload_files
from . import parse_args, setup_logging


@dataclass
class PublishArguments:
    """Arguments of ``hf-eliquare publish``."""

    model_dir: str = field(metadata={"help": "The student directory (weights, tokenizer, README.md card)."})
    hub_model_id: str | None = field(
        default=None, metadata={"help": "ORG/NAME or NAME (required unless --hub_dry_run is given)."}
    )
    hub_private_repo: bool = field(default=True, metadata={"help": "Create the repository private (default: true)."})
    hub_token: str | None = field(
        default=None, metadata={"help": "Default: the token of `hf auth login` or HF_TOKEN."}
    )
    hub_dry_run: str | None = field(
        default=None, metadata={"help": "Stage the files a push would send into this (new) folder; no upload."}
    )


def main(argv: Sequence[str] | None = None) -> list[str]:
    (args,) = parse_args(PublishArguments, argv, prog="hf-eliquare publish")
    setup_logging()
    if args.hub_dry_run:
        return stage_upload(args.model_dir, args.hub_dry_run)  # logs the listing
    if not args.hub_model_id:
        raise ConfigurationError("Pass --hub_model_id ORG/NAME to push, or --hub_dry_run DIR to stage the files only.")
    commit = push_student(args.model_dir, args.hub_model_id, private=args.hub_private_repo, token=args.hub_token)
    print(getattr(commit, "commit_url", commit))
    return upload_files(args.model_dir)
