"""``hf-eliquare publish``: push an existing student directory (with its card) to the Hub, or stage the files."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import ConfigurationError
from ..hub.publish import preflight_dry_run, preflight_push, push_student, stage_upload, upload_files
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
    export_onnx: bool = field(
        default=False,
        metadata={
            "help": "First export onnx/model.onnx + onnx/model_quantized.onnx, checked against PyTorch, with the "
            "defaults of `hf-eliquare export` (needs pip install 'hf_eliquare[onnx]')."
        },
    )


def main(argv: Sequence[str] | None = None) -> list[str]:
    (args,) = parse_args(PublishArguments, argv, prog="hf-eliquare publish")
    setup_logging()
    if not args.hub_dry_run and not args.hub_model_id:
        raise ConfigurationError("Pass --hub_model_id ORG/NAME to push, or --hub_dry_run DIR to stage the files only.")
    if args.export_onnx:  # checks first (seconds), then the export (a minute), then the upload
        from ..export import require_onnx_extra
        from .export import OnnxExportArguments, export_from_args

        require_onnx_extra()
        if args.hub_dry_run:
            preflight_dry_run(args.hub_dry_run, args.model_dir)
        else:
            preflight_push(args.hub_model_id, token=args.hub_token, private=args.hub_private_repo)
        export_from_args(OnnxExportArguments(model_dir=args.model_dir, hub_model_id=args.hub_model_id))
    if args.hub_dry_run:
        return stage_upload(args.model_dir, args.hub_dry_run)  # logs the listing
    commit = push_student(args.model_dir, args.hub_model_id, private=args.hub_private_repo, token=args.hub_token)
    print(getattr(commit, "commit_url", commit))
    return upload_files(args.model_dir)
