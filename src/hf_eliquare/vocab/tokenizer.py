"""Step 3 of VocabReduce: the fast tokenizer rebuilt with only the kept ids (new id = position)."""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from .counting import _backend, _full_vocab_size

logger = logging.getLogger(__name__)

_SUPPORTED_MODELS = ("WordPiece", "Unigram", "WordLevel")


def check_reducible(tokenizer: Any) -> None:
    """Refuse, before any counting or training, a tokenizer whose vocabulary cannot be reduced (BPE)."""
    model_type = json.loads(_backend(tokenizer).to_str())["model"].get("type")
    if model_type == "BPE":
        raise ConfigurationError(
            "Vocabulary reduction of BPE tokenizers (RoBERTa, GPT-2 style) is not supported: removing tokens "
            "needs pruning of the merge table. Use a WordPiece (mBERT) or Unigram/SentencePiece (XLM-R) tokenizer, "
            "or --vocab_reduction none."
        )
    if model_type not in _SUPPORTED_MODELS:
        raise ConfigurationError(
            f"Unsupported tokenizer model {model_type!r}; vocabulary reduction handles {', '.join(_SUPPORTED_MODELS)}."
        )


def _check_kept_ids(kept_ids: Sequence[int], vocab_size: int) -> list[int]:
    kept = [int(i) for i in kept_ids]
    if not kept:
        raise ConfigurationError("kept_ids is empty: keep at least the special tokens.")
    if len(set(kept)) != len(kept):
        raise ConfigurationError("kept_ids repeats an id: each old id may appear once.")
    bad = [i for i in kept if not 0 <= i < vocab_size]
    if bad:
        raise ConfigurationError(f"kept_ids {bad[:5]} are outside the vocabulary (0..{vocab_size - 1}).")
    return kept


def _remap_post_processor(node: Any, old_to_new: dict[int, int]) -> None:
    def new_id(old: int) -> int:
        if old not in old_to_new:
            raise ConfigurationError(
                f"The post-processor uses token id {old}, which is not kept. Keep it (it is added to "
                "select_vocabulary's always-kept ids automatically)."
            )
        return old_to_new[old]

    if not isinstance(node, dict):
        return
    if node.get("type") == "TemplateProcessing":
        for special in node.get("special_tokens", {}).values():
            special["ids"] = [new_id(int(i)) for i in special["ids"]]
    elif node.get("type") in ("BertProcessing", "RobertaProcessing"):
        for key in ("sep", "cls"):
            node[key] = [node[key][0], new_id(int(node[key][1]))]
    for sub in node.get("processors", []) or []:
        _remap_post_processor(sub, old_to_new)


def reduced_backend(tokenizer: Any, kept_ids: Sequence[int]):
    """The reduced ``tokenizers.Tokenizer``: the serialised pipeline with only the model vocabulary,
    added tokens, post-processor ids and padding id rewritten (new id = position in ``kept_ids``)."""
    from tokenizers import Tokenizer

    backend = _backend(tokenizer)
    kept = _check_kept_ids(kept_ids, _full_vocab_size(tokenizer))
    old_to_new = {old: new for new, old in enumerate(kept)}
    data = json.loads(backend.to_str())
    model = data["model"]
    model_type = model.get("type")
    check_reducible(tokenizer)
    added = {int(token["id"]): token["content"] for token in data.get("added_tokens", [])}

    if model_type == "Unigram":
        pieces = model["vocab"]
        low = min((score for _, score in pieces), default=0.0) - 10.0
        # Added tokens outside the model vocabulary get a very low score: never preferred by Viterbi.
        model["vocab"] = [list(pieces[old]) if old < len(pieces) else [added[old], low] for old in kept]
        if model.get("unk_id") is not None:
            if model["unk_id"] not in old_to_new:
                raise ConfigurationError("The Unigram unknown piece is not in kept_ids; keep it.")
            model["unk_id"] = old_to_new[model["unk_id"]]
    else:
        id_to_token = {index: token for token, index in model["vocab"].items()}
        id_to_token.update({i: t for i, t in added.items() if i not in id_to_token})
        missing = [old for old in kept if old not in id_to_token]
        if missing:
            raise ConfigurationError(f"Token ids {missing[:5]} have no token in the tokenizer; they cannot be kept.")
        model["vocab"] = {id_to_token[old]: new for new, old in enumerate(kept)}
        unk = model.get("unk_token")
        if unk is not None and unk not in model["vocab"]:
            raise ConfigurationError(f"The unknown token {unk!r} is not kept; keep it (select_vocabulary does).")

    data["added_tokens"] = [
        dict(token, id=old_to_new[int(token["id"])])
        for token in data.get("added_tokens", [])
        if int(token["id"]) in old_to_new
    ]
    dropped = len(added) - len(data["added_tokens"])
    if dropped:
        logger.warning("%d added tokens were not in kept_ids and are dropped from the tokenizer.", dropped)
    _remap_post_processor(data.get("post_processor"), old_to_new)
    if data.get("padding"):
        data["padding"]["pad_id"] = old_to_new.get(int(data["padding"]["pad_id"]), 0)
    return Tokenizer.from_str(json.dumps(data))


def _pipeline(backend: Any) -> dict[str, Any]:
    """The parts of a serialised tokenizer that decide its behaviour. Floats are rounded to 12 digits:
    ``tokenizers`` (serde_json) re-parses Unigram scores to within an ulp on every load or deepcopy."""
    data = json.loads(backend.to_str(), parse_float=lambda text: round(float(text), 12))
    keys = ("normalizer", "pre_tokenizer", "post_processor", "decoder", "model", "added_tokens")
    return {key: data.get(key) for key in keys}


def _clean_init_kwargs(tokenizer: Any) -> dict[str, Any]:
    drop = {
        "vocab",
        "merges",
        "vocab_file",
        "merges_file",
        "tokenizer_file",
        "added_tokens_decoder",
        "tokenizer_object",
        "name_or_path",
        "backend",
        "tokenizer_class",
        "_spm_precompiled_charsmap",
    }
    return {k: v for k, v in dict(tokenizer.init_kwargs).items() if k not in drop}


def reduce_tokenizer(tokenizer: Any, kept_ids: Sequence[int]) -> Any:
    """A fast tokenizer with only ``kept_ids`` (new id = position in the list).

    Normalizer, pre-tokenizer, decoder, WordPiece prefix / unknown token / Unigram scores are kept;
    ids in the post-processor template, added tokens and padding are remapped. In transformers 5,
    model-specific classes (``BertTokenizer``, ``XLMRobertaTokenizer``) rebuild their pipeline from
    the vocabulary on ``from_pretrained``; the result keeps the original class only when that rebuild
    gives exactly the same pipeline (checked by a save/load here), else it is a generic
    ``TokenizersBackend`` (which loads ``tokenizer.json`` verbatim), so a save → ``AutoTokenizer``
    round trip always tokenises the same way.
    """
    from transformers import TokenizersBackend

    backend = reduced_backend(tokenizer, kept_ids)
    kwargs = _clean_init_kwargs(tokenizer)
    generic = TokenizersBackend(tokenizer_object=backend, **kwargs)
    cls = type(tokenizer)
    if cls is TokenizersBackend:
        return generic
    with tempfile.TemporaryDirectory(prefix="eliquare-tok-") as tmp:
        generic.save_pretrained(tmp)
        config_file = Path(tmp) / "tokenizer_config.json"
        config = json.loads(config_file.read_text(encoding="utf-8"))
        config["tokenizer_class"] = cls.__name__
        config_file.write_text(json.dumps(config, indent=2), encoding="utf-8")
        try:
            candidate = cls.from_pretrained(tmp)
        except Exception as err:  # the class cannot rebuild this pipeline at all
            logger.info("%s cannot load the reduced tokenizer (%s); using TokenizersBackend.", cls.__name__, err)
            candidate = None
    if candidate is not None and _pipeline(candidate.backend_tokenizer) == _pipeline(backend):
        candidate.name_or_path = tokenizer.name_or_path
        return candidate
    logger.warning(
        "%s would rebuild a different pipeline from the reduced vocabulary; the reduced tokenizer is a generic "
        "TokenizersBackend (same behaviour, loads tokenizer.json verbatim).",
        cls.__name__,
    )
    generic.name_or_path = tokenizer.name_or_path
    return generic
