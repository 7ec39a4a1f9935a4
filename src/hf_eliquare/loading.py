"""The one way hf_eliquare loads a model or a tokenizer given by name: path or Hub id, checked.

Every command and :class:`~hf_eliquare.DistillationTrainer` go through here, so the Hub-id-vs-path rule
(:func:`hf_eliquare.hub.resolve_pretrained`), the offline fast failure and the checks below are the same
everywhere:

* a directory without tokenizer files is refused (transformers 5 would build a 5-token tokenizer on its
  own, and everything would be ``[UNK]``);
* a tokenizer larger than the model's vocabulary is refused (they do not belong together);
* unreadable weights or a broken ``config.json`` become one clear error naming the file, not a traceback.

It also reads the one part of a teacher checkpoint that ``*ForMaskedLM`` drops: its trained pooler
(:func:`read_pooler_weights`), which the distillation writes into the saved student.
"""

from __future__ import annotations

import json
import os
from typing import Any

from .errors import ConfigurationError
from .hub import resolve_pretrained

#: Files ``save_pretrained`` writes for a tokenizer; a local directory needs at least one of these.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "vocab.json",
    "sentencepiece.bpe.model",
    "spiece.model",
    "tokenizer.model",
)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0][:200]}" if text else type(err).__name__


def safetensors_problem(file: str | os.PathLike) -> str | None:
    """``None`` when the safetensors header parses and the file is as long as the header says, else why not."""
    import struct

    try:
        size = os.path.getsize(file)
        with open(file, "rb") as handle:
            (header_length,) = struct.unpack("<Q", handle.read(8))
            if header_length > size:
                return "is truncated (shorter than its header)"
            header = json.loads(handle.read(header_length))
    except (OSError, struct.error, ValueError) as err:
        return f"is unreadable ({type(err).__name__})"
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    if size < 8 + header_length + end:
        return f"is truncated ({size} of {8 + header_length + end} bytes)"
    return None


def check_weight_files(path: str, name: str, role: str) -> None:
    """Refuse truncated or corrupt safetensors weights in a local model directory before loading them."""
    if not os.path.isdir(path):
        return
    for file in sorted(os.listdir(path)):
        if file.endswith(".safetensors"):
            problem = safetensors_problem(os.path.join(path, file))
            if problem:
                raise ConfigurationError(
                    f"The {role} weights {file} in {name!r} cannot be loaded: the file {problem}, i.e. truncated or "
                    "corrupt. Re-download or re-save the model."
                )


def load_tokenizer(name_or_path: str | os.PathLike, *, role: str = "model", flag: str | None = None, **kwargs: Any):
    """``AutoTokenizer.from_pretrained`` behind the checks of the module docstring."""
    from transformers import AutoTokenizer

    name = str(name_or_path)
    path = resolve_pretrained(name, f"{role} tokenizer" if role != "tokenizer" else "tokenizer")
    fix = f"Save the tokenizer there (tokenizer.save_pretrained(DIR)){f', or pass it with {flag}' if flag else ''}."
    if os.path.isdir(path) and not any(os.path.isfile(os.path.join(path, f)) for f in TOKENIZER_FILES):
        raise ConfigurationError(
            f"The {role} directory {name!r} holds no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}, …). {fix}"
        )
    try:
        return AutoTokenizer.from_pretrained(path, **kwargs)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:
        raise ConfigurationError(f"No usable tokenizer in {name!r} ({_first_line(err)}). {fix}") from None


def check_tokenizer_matches(tokenizer, vocab_size: int, role: str = "model") -> None:
    """Refuse a tokenizer that produces ids the model has no embedding for."""
    if len(tokenizer) > vocab_size:
        raise ConfigurationError(
            f"The tokenizer has {len(tokenizer)} tokens but the {role}'s vocabulary has {vocab_size}: they do not "
            f"belong together. Use the {role}'s own tokenizer."
        )


def load_config(name_or_path: str | os.PathLike, *, role: str = "model", **kwargs: Any):
    """``AutoConfig.from_pretrained`` with a clear error for a missing or broken ``config.json``."""
    from transformers import AutoConfig

    name = str(name_or_path)
    path = resolve_pretrained(name, role)
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, "config.json")):
        raise ConfigurationError(
            f"The {role} directory {name!r} holds no config.json, so it is not a saved model. Pass the directory "
            "that save_pretrained() wrote."
        )
    try:
        return AutoConfig.from_pretrained(path, **kwargs)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigurationError(
            f"The {role}'s config.json in {name!r} cannot be read ({_first_line(err)}): the file is corrupt or not a "
            "transformers config. Re-download or re-save the model."
        ) from None


def load_model(name_or_path: str | os.PathLike, model_class: Any = None, *, role: str = "model", **kwargs: Any):
    """``model_class.from_pretrained`` (default: the class named in ``config.architectures``, else
    ``AutoModel``) with the Hub-id-vs-path rule and a clear error for corrupt files."""
    import transformers

    name = str(name_or_path)
    config = load_config(name, role=role, **{k: v for k, v in kwargs.items() if k == "cache_dir"})
    path = resolve_pretrained(name, role)
    if model_class is None:
        model_class = next(
            (getattr(transformers, a) for a in config.architectures or [] if hasattr(transformers, a)),
            transformers.AutoModel,
        )
    check_weight_files(path, name, role)
    try:
        return model_class.from_pretrained(path, **kwargs)
    except ConfigurationError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, EOFError) as err:
        raise ConfigurationError(
            f"The {role} weights in {name!r} cannot be loaded ({_first_line(err)}): a file is truncated or corrupt. "
            "Re-download or re-save the model."
        ) from None


def load_teacher_model(name_or_path: str, cache_dir: str | None = None):
    """The distillation teacher by name: a supported ``*ForMaskedLM`` with its MLM head and finite weights
    (:func:`hf_eliquare.student.load_masked_lm`), corrupt files named."""
    from .student import load_masked_lm

    load_config(name_or_path, role="teacher", cache_dir=cache_dir)  # a broken config.json, named
    path = resolve_pretrained(name_or_path, "teacher model")
    check_weight_files(path, name_or_path, "teacher")
    try:
        return load_masked_lm(path, "teacher", cache_dir=cache_dir)
    except ConfigurationError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, EOFError) as err:
        raise ConfigurationError(
            f"The teacher weights in {name_or_path!r} cannot be loaded ({_first_line(err)}): a file is truncated or "
            "corrupt. Re-download or re-save the teacher."
        ) from None


def load_teacher(name_or_path: str, tokenizer_name: str | None = None, cache_dir: str | None = None):
    """The distillation teacher (:func:`load_teacher_model`) and its tokenizer, checked against each other.
    The model is checked first: a wrong model is the likelier mistake."""
    teacher = load_teacher_model(name_or_path, cache_dir=cache_dir)
    tokenizer = load_tokenizer(
        tokenizer_name or name_or_path, role="teacher", flag="--tokenizer_name", cache_dir=cache_dir
    )
    check_tokenizer_matches(tokenizer, teacher.config.vocab_size, "teacher")
    return teacher, tokenizer


def read_pooler_weights(name_or_path: str) -> dict[str, Any]:
    """The pooler of a teacher checkpoint, read from its safetensors files; ``{}`` when it has none
    (see :func:`hf_eliquare.student.add_pooler_to_saved_model` for the writing side).

    ``BertForMaskedLM`` has no pooler, so loading mBERT into it drops the checkpoint's trained pooler (and
    a classifier fine-tuned from the student would start with a random one, where the teacher's starts with
    the trained one). The checkpoint files still hold it: only the pooler's tensors are read, by name, from the
    shard(s) that contain them. Keys are returned as the base model stores them (e.g. ``bert.pooler.dense.weight``).
    ``name_or_path`` is a local directory or a cached Hub id; a checkpoint in ``.bin`` format is not read.
    """
    from safetensors import safe_open
    from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, cached_file

    from .student import POOLER_SUFFIXES

    def local(filename: str) -> str | None:
        if os.path.isdir(name_or_path):
            path = os.path.join(name_or_path, filename)
            return path if os.path.isfile(path) else None
        try:
            return cached_file(name_or_path, filename, _raise_exceptions_for_missing_entries=False)
        except OSError:
            return None

    index = local(SAFE_WEIGHTS_INDEX_NAME)
    if index is not None:
        with open(index, encoding="utf-8") as handle:
            weight_map = json.load(handle)["weight_map"]
        by_file: dict[str, list[str]] = {}
        for key, shard in weight_map.items():
            if key.endswith(POOLER_SUFFIXES):
                by_file.setdefault(shard, []).append(key)
        files = {local(shard): keys for shard, keys in by_file.items()}
    else:
        files = {local(SAFE_WEIGHTS_NAME): None}
    pooler = {}
    for path, keys in files.items():
        if path is None:
            continue
        with safe_open(path, framework="pt") as handle:
            for key in keys if keys is not None else handle.keys():
                if key.endswith(POOLER_SUFFIXES):
                    pooler[key] = handle.get_tensor(key)
    return pooler if len(pooler) == len(POOLER_SUFFIXES) else {}
