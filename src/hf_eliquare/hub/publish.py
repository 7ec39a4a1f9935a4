"""Publishing a student on the Hugging Face Hub: check first, stage (dry run), push.

Three steps, so that a mistake costs seconds instead of a training run:

1. :func:`preflight_push` runs at start-up, before any data or model is loaded: it fails fast when the Hub cannot be
   reached or no token is available, naming the fix.
2. :func:`upload_files` decides what is published: the top-level safetensors weights, ``config.json``, the tokenizer
   files, the card ``README.md``, the run summary ``eliquare_run.json`` and, when the model was exported
   (:mod:`hf_eliquare.export`), ``onnx/model.onnx``, ``onnx/model_quantized.onnx`` and their report — never
   ``checkpoint-*/``, optimizer or scheduler states, ``training_args.bin`` or TensorBoard ``runs/``.
   :func:`stage_upload` (the dry run) copies exactly these files into a folder.
3. :func:`push_student` uploads them with ``HfApi.upload_folder(allow_patterns=<that same list>)``, so the dry run and
   the real push send the same files.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigurationError, OfflineError
from ..io import atomic_output_dir, check_output_dir

logger = logging.getLogger(__name__)

#: Files published besides the weights (``*.safetensors`` and their index).
MODEL_FILES = ("config.json", "generation_config.json", "README.md", "eliquare_run.json")
#: Tokenizer files ``save_pretrained`` writes, for WordPiece (BERT), SentencePiece (XLM-R) and BPE tokenizers.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "sentencepiece.bpe.model",
    "spiece.model",
    "chat_template.jinja",
)
#: Files a push must contain.
REQUIRED_FILES = ("config.json", "README.md")
_HUB_FIX = (
    "Run where the Hub is reachable, or drop --push_to_hub (the card README.md is written either way) and upload the "
    "output directory later with `hf-eliquare publish --model_dir DIR --hub_model_id ORG/NAME`, or use "
    "--hub_dry_run DIR to stage the files."
)


def _check_repo_id(hub_model_id: str | None) -> str:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if not hub_model_id:
        raise ConfigurationError("Pushing to the Hub needs a repository name: pass --hub_model_id ORG/NAME (or NAME).")
    try:
        validate_repo_id(hub_model_id)
    except HFValidationError as err:
        raise ConfigurationError(f"--hub_model_id {hub_model_id!r} is not a valid Hub repository id: {err}") from None
    return hub_model_id


def preflight_push(hub_model_id: str | None, token: str | None = None, private: bool = True) -> str:
    """Fail fast, before any work, when a push to ``hub_model_id`` cannot succeed; return the token to use.

    Raises :class:`ConfigurationError` for a bad repository id or a missing/invalid token and :class:`OfflineError`
    when ``HF_HUB_OFFLINE=1`` is set or the Hub does not answer within seconds. When the Hub is reachable the token is
    checked with ``whoami`` (one request). ``private`` is only logged: visibility is applied when the repo is created.
    """
    from huggingface_hub import get_token

    from . import hub_endpoint, hub_offline_mode, hub_reachable

    _check_repo_id(hub_model_id)
    if hub_offline_mode():
        raise OfflineError(
            f"Pushing to the Hub (--push_to_hub) needs the Hugging Face Hub, but HF_HUB_OFFLINE=1 is set. {_HUB_FIX}"
        )
    if not hub_reachable():
        raise OfflineError(
            f"Pushing to the Hub (--push_to_hub) needs the Hugging Face Hub ({hub_endpoint()}), which cannot be reached from this "
            f"machine. {_HUB_FIX}"
        )
    token = token or get_token()
    if not token:
        raise ConfigurationError(
            "Pushing to the Hub (--push_to_hub) needs a Hugging Face token with write access, but none was found. Log in with "
            "`hf auth login`, or set HF_TOKEN, or pass --hub_token."
        )
    from huggingface_hub import HfApi

    try:
        HfApi().whoami(token=token)
    except Exception as err:  # 401 for a bad token; anything else also makes the push at the end fail
        raise ConfigurationError(
            f"The Hugging Face token was refused by the Hub ({type(err).__name__}). Create a write token at "
            "https://huggingface.co/settings/tokens and log in again with `hf auth login`."
        ) from None
    logger.info("Will push to %s (%s) at the end of training.", hub_model_id, "private" if private else "public")
    return token


def preflight_dry_run(staging_dir: str | os.PathLike, model_dir: str | os.PathLike | None = None) -> None:
    """Fail before training when the ``--hub_dry_run`` folder cannot be used (not empty, or inside ``model_dir``)."""
    staging = Path(staging_dir).resolve()
    check_output_dir(staging_dir, flag="--hub_dry_run", overwrite_flag=None)
    if model_dir is not None:
        model = Path(model_dir).resolve()
        if staging == model or model in staging.parents:
            raise ConfigurationError(
                f"The dry-run folder {str(staging_dir)!r} must be outside the model directory {str(model_dir)!r}."
            )


def upload_files(model_dir: str | os.PathLike) -> list[str]:
    """The files of ``model_dir`` (relative, sorted) that a push publishes; raises when the push would be unusable."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ConfigurationError(f"The model directory {str(model_dir)!r} does not exist.")
    present = {p.name for p in model_dir.iterdir() if p.is_file() and not p.name.startswith(".")}
    weights = sorted(
        name for name in present if name.endswith(".safetensors") or name == "model.safetensors.index.json"
    )
    if not any(name.endswith(".safetensors") for name in weights):
        raise ConfigurationError(
            f"{str(model_dir)!r} holds no safetensors weights; save the model with save_pretrained() "
            "(safetensors is the default) before pushing."
        )
    missing = [name for name in REQUIRED_FILES if name not in present]
    if missing:
        fix = (
            " Write the card first: hf-eliquare card --model_dir DIR (or examples/make_card.py)."
            if "README.md" in missing
            else ""
        )
        raise ConfigurationError(f"{str(model_dir)!r} lacks {', '.join(missing)}, needed on the Hub.{fix}")
    tokenizer = [name for name in TOKENIZER_FILES if name in present]
    if "tokenizer_config.json" not in tokenizer:
        raise ConfigurationError(
            f"{str(model_dir)!r} holds no tokenizer (tokenizer_config.json); save it next to the model with "
            "tokenizer.save_pretrained(DIR) so that the Hub model can be loaded."
        )
    published = set(weights) | {name for name in MODEL_FILES if name in present} | set(tokenizer)
    return sorted(published | set(onnx_files(model_dir)))


def onnx_files(model_dir: str | os.PathLike) -> list[str]:
    """``onnx/...`` files of an exported model (see :mod:`hf_eliquare.export`); raises when the export is partial."""
    from ..export import FP32_FILE, ONNX_DIR, ONNX_FILES, REPORT_FILE

    folder = Path(model_dir) / ONNX_DIR
    if not folder.is_dir():
        return []
    present = [name for name in ONNX_FILES if (folder / name).is_file()]
    if FP32_FILE not in present or REPORT_FILE not in present:
        raise ConfigurationError(
            f"{str(folder)!r} lacks {FP32_FILE} or {REPORT_FILE} (an interrupted or hand-made export); export again "
            "with `hf-eliquare export --model_dir DIR`, or delete the folder."
        )
    return [f"{ONNX_DIR}/{name}" for name in present]


def allow_patterns(files: Sequence[str]) -> list[str]:
    """``upload_folder`` patterns matching exactly ``files`` (escaped: ``fnmatch`` would read ``[`` as a class)."""
    return [glob.escape(name) for name in files]


def stage_upload(model_dir: str | os.PathLike, staging_dir: str | os.PathLike) -> list[str]:
    """Dry run: copy the files a push would send into ``staging_dir`` (must be new or empty) and return their names."""
    preflight_dry_run(staging_dir, model_dir)
    files = upload_files(model_dir)
    staging = Path(staging_dir)
    with atomic_output_dir(staging) as tmp:  # the folder is new or empty (checked above)
        for name in files:
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)  # onnx/
            shutil.copy2(Path(model_dir) / name, tmp / name)
    logger.info(
        "Dry run: a push would upload these files (staged in %s):\n%s", staging, format_listing(staging, files)
    )
    return files


def format_listing(folder: str | os.PathLike, files: Sequence[str]) -> str:
    """One ``size  name`` line per file."""
    lines = []
    for name in files:
        size = (Path(folder) / name).stat().st_size
        lines.append(f"{size / 2**20:10.2f} MiB  {name}")
    return "\n".join(lines)


def push_student(
    model_dir: str | os.PathLike,
    hub_model_id: str,
    private: bool = True,
    token: str | None = None,
    commit_message: str = "Upload Eliquare student",
    revision: str | None = None,
):
    """Upload the student, tokenizer and card of ``model_dir`` to ``hub_model_id``; returns the ``CommitInfo``.

    The repository is created when missing (private unless ``private=False``; an existing repo keeps its
    visibility). Exactly :func:`upload_files` are sent, the card is validated offline first.
    """
    from huggingface_hub import HfApi, ModelCard

    from .cards import validate_card_locally

    _check_repo_id(hub_model_id)
    files = upload_files(model_dir)
    validate_card_locally(ModelCard.load(Path(model_dir) / "README.md"))
    token = preflight_push(hub_model_id, token=token, private=private)
    api = HfApi(token=token)
    repo = api.create_repo(hub_model_id, private=private, exist_ok=True, repo_type="model")
    logger.info("Uploading %d files to %s", len(files), repo.repo_id)
    return api.upload_folder(
        repo_id=repo.repo_id,
        folder_path=str(model_dir),
        allow_patterns=allow_patterns(files),
        commit_message=commit_message,
        revision=revision,
        repo_type="model",
    )
