"""VocabReduce: cut a multilingual vocabulary down to the sub-words one language actually uses.

Eliquare keeps every sub-word that occurs in at least ``min_sentence_fraction`` of the sentences of a
target-language corpus (the paper: 0.05 %), plus all special tokens. Four steps, each usable alone:

1. :func:`count_sentence_occurrences` — document frequency of every token id (sentences containing
   it, not raw counts), with batched fast-tokenizer encoding;
2. :func:`select_vocabulary` — the old ids to keep, in their NEW order: special tokens first (original
   order), then ``keep_tokens``, then the rest in original id order;
3. :func:`reduce_tokenizer` — a rebuilt fast tokenizer (``tokenizers`` WordPiece / Unigram / WordLevel
   model) with the same normalizer, pre-tokenizer, post-processor (ids remapped) and decoder;
4. :func:`reduce_model_vocab` — input embeddings, MLM decoder weight and bias sliced, tying preserved.

:func:`reduce_vocab` does all of it and records provenance in ``config.eliquare["vocab_reduction"]``.

Exactness: a sentence whose original tokens are all kept is tokenised to the same strings (greedy
longest-match WordPiece and Viterbi Unigram both only ever pick among kept pieces, and a subset of the
vocabulary cannot offer a better choice), and the model gives the same hidden states and the same
logits at the kept columns. BPE vocabularies are refused (merges would need pruning).

Command line::

    python -m hf_eliquare.vocab --model PATH --corpus sl.txt.gz --output_dir DIR [--min_sentence_fraction 0.0005]
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ._io import atomic_output_dir
from .errors import ConfigurationError, DataError, OutputDirError

logger = logging.getLogger(__name__)

#: Config attributes holding token ids that must follow the new numbering.
CONFIG_TOKEN_ID_ATTRIBUTES = (
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
    "sep_token_id",
    "cls_token_id",
    "mask_token_id",
    "unk_token_id",
    "decoder_start_token_id",
)
_DATASET_SUFFIXES = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}
_SUPPORTED_MODELS = ("WordPiece", "Unigram", "WordLevel")


# ----------------------------------------------------------------------------------------------
# Corpus
# ----------------------------------------------------------------------------------------------


def _as_paths(corpus: Any) -> list[Path] | None:
    """Paths when ``corpus`` names files: a ``str``/``PathLike`` or a sequence of ``PathLike``."""
    if isinstance(corpus, (str, os.PathLike)):
        return [Path(corpus)]
    if isinstance(corpus, (list, tuple)) and corpus and all(isinstance(x, os.PathLike) for x in corpus):
        return [Path(x) for x in corpus]
    return None


def iter_text_file(path: str | os.PathLike) -> Iterator[str]:
    """Sentences of a plain or gzipped UTF-8 text file: each non-empty line through
    :func:`hf_eliquare.data.split_sentences`. Unreadable files raise :class:`DataError` naming the file."""
    from .data import iter_text_lines, split_sentences

    for line in iter_text_lines(path, role="Corpus file"):
        yield from split_sentences(line)


def _iter_dataset_file(path: Path, text_column: str) -> Iterator[str]:
    from datasets import load_dataset

    dataset = load_dataset(_DATASET_SUFFIXES[path.suffix], data_files=str(path), split="train")
    yield from _iter_dataset(dataset, text_column, name=str(path))


def _iter_dataset(dataset: Any, text_column: str, name: str = "the dataset") -> Iterator[str]:
    if text_column not in dataset.column_names:
        raise DataError(
            f"{name} has no column {text_column!r} (columns: {dataset.column_names}). "
            "Name the text column with text_column= (--text_column)."
        )
    for batch in dataset.select_columns([text_column]).iter(batch_size=1000):
        yield from batch[text_column]


def iter_corpus(corpus: Any, text_column: str = "text") -> Iterator[str]:
    """The non-empty sentences of ``corpus``.

    ``corpus`` is a path (``str`` or :class:`~pathlib.Path`) or a list of :class:`~pathlib.Path` —
    text files (.txt, .gz; lines split into sentences) or .json/.jsonl/.csv/.parquet read with
    ``datasets`` (column ``text_column``) —, a :class:`datasets.Dataset`, or any iterable of
    strings (one sentence each). A list of plain ``str`` is taken as sentences, not paths.
    """
    paths = _as_paths(corpus)
    if paths is not None:
        for path in paths:
            if path.suffix in _DATASET_SUFFIXES:
                items: Iterable[str] = _iter_dataset_file(path, text_column)
            else:
                items = iter_text_file(path)
            for text in items:
                if text and text.strip():
                    yield text
        return
    if hasattr(corpus, "column_names") and hasattr(corpus, "select_columns"):
        items = _iter_dataset(corpus, text_column)
    else:
        items = corpus
    for text in items:
        if not isinstance(text, str):
            raise DataError(
                f"The corpus yielded a {type(text).__name__}, not a string. Pass strings, a datasets.Dataset "
                "with a text column, or file paths (pathlib.Path)."
            )
        if text.strip():
            yield text


def _corpus_length(corpus: Any) -> int | None:
    if _as_paths(corpus) is None and hasattr(corpus, "__len__"):
        return len(corpus)
    return None


def _describe_corpus(corpus: Any) -> str:
    paths = _as_paths(corpus)
    return f"files {[str(p) for p in paths]}" if paths is not None else "the corpus"


# ----------------------------------------------------------------------------------------------
# 1. Counting
# ----------------------------------------------------------------------------------------------


def _backend(tokenizer: Any):
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ConfigurationError(
            f"{type(tokenizer).__name__} is not a fast tokenizer (no `backend_tokenizer`). Load it with "
            "AutoTokenizer.from_pretrained(...), which gives a `tokenizers`-backed tokenizer."
        )
    return backend


def _full_vocab_size(tokenizer: Any) -> int:
    backend = _backend(tokenizer)
    size = backend.get_vocab_size(with_added_tokens=True)
    added = backend.get_added_tokens_decoder()  # ids of added tokens may lie beyond the model vocabulary
    return max(size, max(added, default=-1) + 1)


def batch_sentence_counts(backend: Any, texts: Sequence[str], vocab_size: int) -> np.ndarray:
    """Per token id, how many of ``texts`` contain it: shape ``(vocab_size,)``, int64.

    One ``encode_batch_fast`` call (Rust, multi-threaded, no offsets); each sentence's ids go through
    a ``set`` (duplicates within a sentence count once) and one ``np.bincount`` sums the batch —
    measured faster than a vectorised ``np.unique`` over ``sentence * V + id`` keys.
    """
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
    encodings = encode(list(texts), add_special_tokens=False)
    unique_ids = np.fromiter(itertools.chain.from_iterable(set(e.ids) for e in encodings), dtype=np.int64)
    return np.bincount(unique_ids, minlength=vocab_size)


def _batched(items: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _map_counts(batch: dict[str, list], backend: Any, vocab_size: int, text_column: str) -> dict[str, list]:
    """``datasets.map`` function: one output row per input batch (sparse document frequencies)."""
    texts = [t for t in batch[text_column] if isinstance(t, str) and t.strip()]
    counts = batch_sentence_counts(backend, texts, vocab_size) if texts else np.zeros(vocab_size, np.int64)
    nonzero = np.flatnonzero(counts)
    return {"token_ids": [nonzero], "sentence_counts": [counts[nonzero]], "num_sentences": [len(texts)]}


def count_sentence_occurrences(
    tokenizer: Any,
    corpus: Any,
    *,
    batch_size: int = 1000,
    num_proc: int | None = None,
    show_progress: bool = True,
    text_column: str = "text",
) -> tuple[np.ndarray, int]:
    """Document frequency of every token id over the sentences of ``corpus``.

    Returns ``(counts, num_sentences)``: ``counts[i]`` (int64, shape ``(V,)`` with V the tokenizer's
    size including added tokens) is the number of sentences whose encoding (without special tokens)
    contains id ``i``. ``num_proc > 1`` spreads the batches over processes with ``datasets.map``
    (the corpus is then materialised as a ``datasets.Dataset``). Raises :class:`DataError` for an
    empty corpus.
    """
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise ConfigurationError(f"batch_size must be at least 1, got {batch_size}.")
    backend = _backend(tokenizer)
    vocab_size = _full_vocab_size(tokenizer)
    counts = np.zeros(vocab_size, dtype=np.int64)
    num_sentences = 0
    if num_proc is not None and num_proc > 1:
        from datasets import Dataset

        if hasattr(corpus, "column_names") and hasattr(corpus, "map"):
            dataset, column = corpus, text_column
            if column not in dataset.column_names:
                list(_iter_dataset(dataset, column))  # raises the DataError naming the columns
        else:
            dataset, column = Dataset.from_dict({"text": list(iter_corpus(corpus, text_column))}), "text"
        partial = dataset.map(
            _map_counts,
            batched=True,
            batch_size=batch_size,
            num_proc=num_proc,
            remove_columns=dataset.column_names,
            fn_kwargs={"backend": backend, "vocab_size": vocab_size, "text_column": column},
            desc="Counting sub-words per sentence",
        ).with_format("numpy")
        for row in partial:
            np.add.at(counts, row["token_ids"].astype(np.int64), row["sentence_counts"].astype(np.int64))
            num_sentences += int(row["num_sentences"])
    else:
        progress = tqdm(
            total=_corpus_length(corpus), unit=" sentences", desc="Counting sub-words", disable=not show_progress
        )
        with progress:
            for batch in _batched(iter_corpus(corpus, text_column), batch_size):
                counts += batch_sentence_counts(backend, batch, vocab_size)
                num_sentences += len(batch)
                progress.update(len(batch))
    if num_sentences == 0:
        raise DataError(
            f"{_describe_corpus(corpus)} holds no text (empty or whitespace only), so no vocabulary can be "
            "selected. Pass a non-empty target-language corpus."
        )
    return counts, num_sentences


# ----------------------------------------------------------------------------------------------
# 2. Selection
# ----------------------------------------------------------------------------------------------


def _post_processor_ids(node: Any) -> list[int]:
    """Token ids named by a serialised post-processor (Template/Bert/Roberta processing, Sequence)."""
    ids: list[int] = []
    if isinstance(node, dict):
        if node.get("type") == "TemplateProcessing":
            for special in node.get("special_tokens", {}).values():
                ids.extend(int(i) for i in special["ids"])
        elif node.get("type") in ("BertProcessing", "RobertaProcessing"):
            ids.extend(int(node[key][1]) for key in ("sep", "cls"))
        for sub in node.get("processors", []) or []:
            ids.extend(_post_processor_ids(sub))
    return ids


def always_kept_ids(tokenizer: Any) -> list[int]:
    """Ids kept whatever the corpus says, ascending: special and added tokens, ids used by the
    post-processor and padding, the model's unknown token and, for a byte-fallback Unigram, the 256
    ``<0xNN>`` byte pieces (so that unseen characters still fall back to bytes, not to ``unk``)."""
    data = json.loads(_backend(tokenizer).to_str())
    ids = set(int(i) for i in tokenizer.all_special_ids if i is not None)
    ids.update(int(token["id"]) for token in data.get("added_tokens", []))
    ids.update(_post_processor_ids(data.get("post_processor")))
    if data.get("padding"):
        ids.add(int(data["padding"]["pad_id"]))
    model = data["model"]
    if model.get("type") == "Unigram":
        if model.get("unk_id") is not None:
            ids.add(int(model["unk_id"]))
        if model.get("byte_fallback"):
            for index, (piece, _) in enumerate(model["vocab"]):
                if len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
                    ids.add(index)
    elif model.get("unk_token") is not None:
        unk = _backend(tokenizer).token_to_id(model["unk_token"])
        if unk is not None:
            ids.add(int(unk))
    return sorted(ids)


def _resolve_keep_tokens(tokenizer: Any, keep_tokens: Iterable[int | str], vocab_size: int) -> list[int]:
    ids: list[int] = []
    backend = _backend(tokenizer)
    for token in keep_tokens:
        if isinstance(token, str):
            token_id = backend.token_to_id(token)
            if token_id is None:
                raise ConfigurationError(
                    f"keep_tokens names {token!r}, which is not in the tokenizer's vocabulary. Pass "
                    "vocabulary entries (e.g. '##ing' for WordPiece, '▁the' for SentencePiece) or ids."
                )
        else:
            token_id = int(token)
            if not 0 <= token_id < vocab_size:
                raise ConfigurationError(f"keep_tokens id {token_id} is outside the vocabulary (0..{vocab_size - 1}).")
        ids.append(token_id)
    return ids


def select_vocabulary(
    counts: np.ndarray,
    num_sentences: int,
    tokenizer: Any,
    *,
    min_sentence_fraction: float = 0.0005,
    min_count: int | None = None,
    max_vocab_size: int | None = None,
    keep_tokens: Iterable[int | str] = (),
) -> list[int]:
    """Old ids to keep, in the new order (new id = position in the list).

    Order: :func:`always_kept_ids` (special tokens etc., original order), then ``keep_tokens`` (ids or
    token strings, as given), then the selected regular tokens in original id order. A regular token
    is selected when it occurs in at least ``min_sentence_fraction * num_sentences`` sentences; with
    ``min_count`` the threshold is that many sentences instead, and with ``max_vocab_size`` alone the
    most frequent tokens (ties: lower id) are kept until the whole vocabulary has that size (it also
    caps a ``min_count`` selection). Tokens that never occur are never selected.
    """
    counts = np.asarray(counts)
    if counts.ndim != 1:
        raise ConfigurationError(f"counts must be one-dimensional (one entry per token id), got shape {counts.shape}.")
    vocab_size = counts.shape[0]
    if vocab_size < _full_vocab_size(tokenizer):
        raise ConfigurationError(
            f"counts has {vocab_size} entries but the tokenizer has {_full_vocab_size(tokenizer)} tokens: "
            "count with the same tokenizer (count_sentence_occurrences(tokenizer, corpus))."
        )
    if not (isinstance(min_sentence_fraction, (int, float)) and 0 < min_sentence_fraction <= 1):
        raise ConfigurationError(
            f"min_sentence_fraction must be in (0, 1], got {min_sentence_fraction!r}; the paper uses 0.0005 (0.05 %)."
        )
    if min_count is not None and (int(min_count) != min_count or min_count < 1):
        raise ConfigurationError(f"min_count must be a positive integer (sentences), got {min_count!r}.")
    if num_sentences < 1:
        raise DataError("num_sentences is 0: the corpus was empty. Count on a non-empty corpus.")

    fixed = always_kept_ids(tokenizer)
    fixed_set = set(fixed)
    extra = [i for i in dict.fromkeys(_resolve_keep_tokens(tokenizer, keep_tokens, vocab_size)) if i not in fixed_set]
    forced = set(fixed) | set(extra)
    if max_vocab_size is not None and max_vocab_size <= len(forced):
        raise ConfigurationError(
            f"max_vocab_size={max_vocab_size} leaves no room for regular tokens: {len(forced)} special tokens "
            "and keep_tokens are always kept. Use a larger max_vocab_size."
        )

    regular = np.ones(vocab_size, dtype=bool)
    regular[list(forced)] = False
    if min_count is not None:
        threshold, described = int(min_count), f"min_count={min_count}"
    elif max_vocab_size is None:
        threshold = max(1, math.ceil(min_sentence_fraction * num_sentences - 1e-9))
        described = f"min_sentence_fraction={min_sentence_fraction} ({threshold} of {num_sentences} sentences)"
    else:
        threshold, described = 1, f"max_vocab_size={max_vocab_size}"
    selected = np.flatnonzero(regular & (counts >= threshold))
    if max_vocab_size is not None and len(selected) > max_vocab_size - len(forced):
        order = np.lexsort((selected, -counts[selected]))  # most frequent first, then lower id
        selected = np.sort(selected[order[: max_vocab_size - len(forced)]])
    if len(selected) == 0:
        raise ConfigurationError(
            f"The threshold {described} keeps no regular token (the most frequent one is in "
            f"{int(counts[regular].max(initial=0))} of {num_sentences} sentences). Use a lower threshold "
            "or a larger corpus in the target language."
        )
    return fixed + extra + selected.tolist()


# ----------------------------------------------------------------------------------------------
# 3. Tokenizer
# ----------------------------------------------------------------------------------------------


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
    if model_type == "BPE":
        raise ConfigurationError(
            "Vocabulary reduction of BPE tokenizers (RoBERTa, GPT-2 style) is not supported: removing tokens "
            "needs pruning of the merge table. Use a WordPiece (mBERT) or Unigram/SentencePiece (XLM-R) tokenizer."
        )
    if model_type not in _SUPPORTED_MODELS:
        raise ConfigurationError(
            f"Unsupported tokenizer model {model_type!r}; vocabulary reduction handles {', '.join(_SUPPORTED_MODELS)}."
        )
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


# ----------------------------------------------------------------------------------------------
# 4. Model
# ----------------------------------------------------------------------------------------------


def _head_module(model: nn.Module) -> nn.Module | None:
    """The module holding the MLM decoder (``cls.predictions`` / ``lm_head``), via ``student.mlm_head``."""
    from .student import SUPPORTED_MODEL_TYPES, mlm_head

    if getattr(model.config, "model_type", None) in SUPPORTED_MODEL_TYPES and type(model).__name__.endswith(
        "ForMaskedLM"
    ):
        head = mlm_head(model)
        module = getattr(model, head.attribute)
        return module.predictions if head.attribute == "cls" else module
    return None


def _same_parameter(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    return a is not None and b is not None and (a is b or (a.data_ptr() == b.data_ptr() and a.shape == b.shape))


def _shift_position_embeddings(model: nn.Module, old_pad: int, new_pad: int) -> None:
    """RoBERTa-style models number positions from ``pad_token_id + 1``; when the pad id moves, move the
    rows of the position table with it so that every token still gets the same position vector."""
    embeddings = getattr(model.base_model, "embeddings", None)
    position = getattr(embeddings, "position_embeddings", None)
    if position is None or getattr(embeddings, "padding_idx", None) != old_pad:
        return
    weight = position.weight.data
    shift = old_pad - new_pad
    new_weight = weight.clone()
    new_weight[new_pad : weight.shape[0] - shift] = weight[old_pad:]
    position.weight.data = new_weight
    position.padding_idx = new_pad
    embeddings.padding_idx = new_pad


def reduce_model_vocab(model: nn.Module, kept_ids: Sequence[int]) -> nn.Module:
    """Keep only the rows ``kept_ids`` (new id = position) of the vocabulary-sized weights, in place.

    Input embeddings ``(V, D) → (V', D)``; for masked-LM models the decoder weight ``(V, D)`` and bias
    ``(V,)`` too. A decoder tied to the input embeddings stays tied; an untied one gets its own sliced
    copy (and ``config.tie_word_embeddings=False`` so that reloading keeps it untied). Models without
    an MLM head (encoders, token classifiers) only have their embeddings sliced. ``config.vocab_size``
    and the special-token ids of the config are updated. Returns ``model``.
    """
    embeddings = model.get_input_embeddings()
    vocab_size, _ = embeddings.weight.shape
    kept = _check_kept_ids(kept_ids, vocab_size)
    old_to_new = {old: new for new, old in enumerate(kept)}
    index = torch.tensor(kept, dtype=torch.long, device=embeddings.weight.device)

    head = _head_module(model)
    decoder = head.decoder if head is not None else model.get_output_embeddings()
    if decoder is not None and not isinstance(decoder, nn.Linear):
        decoder = None
    tied = decoder is not None and _same_parameter(decoder.weight, embeddings.weight)
    # BERT/RoBERTa heads also hold the bias as ``head.bias``: shared with ``decoder.bias`` when the model
    # ties its weights, a separate (unused) parameter otherwise. Keep whichever structure we find.
    head_bias = getattr(head, "bias", None) if head is not None else None
    bias_shared = decoder is not None and _same_parameter(head_bias, decoder.bias)

    old_pad = embeddings.padding_idx
    new_pad = old_to_new.get(old_pad) if old_pad is not None else None
    new_embeddings = nn.Embedding(
        len(kept),
        embeddings.embedding_dim,
        padding_idx=new_pad,
        device=embeddings.weight.device,
        dtype=embeddings.weight.dtype,
    )
    new_embeddings.weight = nn.Parameter(
        embeddings.weight.data[index].clone(), requires_grad=embeddings.weight.requires_grad
    )
    model.set_input_embeddings(new_embeddings)

    if decoder is not None:
        new_decoder = nn.Linear(
            decoder.in_features,
            len(kept),
            bias=decoder.bias is not None,
            device=decoder.weight.device,
            dtype=decoder.weight.dtype,
        )
        if tied:
            new_decoder.weight = new_embeddings.weight
        else:
            new_decoder.weight = nn.Parameter(
                decoder.weight.data[index].clone(), requires_grad=decoder.weight.requires_grad
            )
        if decoder.bias is not None:
            new_decoder.bias = nn.Parameter(decoder.bias.data[index].clone(), requires_grad=decoder.bias.requires_grad)
        if head is not None:
            head.decoder = new_decoder
            if bias_shared:
                head.bias = new_decoder.bias
            elif isinstance(head_bias, nn.Parameter) and head_bias.shape[0] == vocab_size:
                head.bias = nn.Parameter(head_bias.data[index].clone(), requires_grad=head_bias.requires_grad)
        else:
            model.set_output_embeddings(new_decoder)
        if hasattr(model.config, "tie_word_embeddings"):
            model.config.tie_word_embeddings = tied

    config = model.config
    config.vocab_size = len(kept)
    if old_pad is not None and new_pad is not None and new_pad != old_pad:
        from .student import is_roberta_like

        if is_roberta_like(model):
            _shift_position_embeddings(model, old_pad, new_pad)
    for name in CONFIG_TOKEN_ID_ATTRIBUTES:
        value = getattr(config, name, None)
        if value is None:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        remapped = [old_to_new.get(int(v)) for v in values]
        if any(v is None for v in remapped):
            logger.warning("config.%s=%s is not among the kept tokens; setting it to None.", name, value)
            setattr(config, name, None)
        else:
            setattr(config, name, remapped if isinstance(value, (list, tuple)) else remapped[0])
    return model


# ----------------------------------------------------------------------------------------------
# All together
# ----------------------------------------------------------------------------------------------


def reduce_vocab_with_counts(
    model: nn.Module | None,
    tokenizer: Any,
    counts: np.ndarray,
    num_sentences: int,
    *,
    min_sentence_fraction: float = 0.0005,
    min_count: int | None = None,
    max_vocab_size: int | None = None,
    keep_tokens: Iterable[int | str] = (),
) -> tuple[nn.Module | None, Any]:
    """:func:`reduce_vocab` from precomputed :func:`count_sentence_occurrences` results (e.g. counts
    taken once on a training split). ``model`` may be ``None`` to reduce only the tokenizer."""
    original_vocab_size = _full_vocab_size(tokenizer)
    if model is not None:
        model_vocab = model.get_input_embeddings().weight.shape[0]
        if model_vocab < original_vocab_size:
            raise ConfigurationError(
                f"The model has {model_vocab} embeddings but the tokenizer {original_vocab_size} tokens: "
                "they do not belong together. Load the tokenizer that was saved with the model."
            )
    kept = select_vocabulary(
        counts,
        num_sentences,
        tokenizer,
        min_sentence_fraction=min_sentence_fraction,
        min_count=min_count,
        max_vocab_size=max_vocab_size,
        keep_tokens=keep_tokens,
    )
    new_tokenizer = reduce_tokenizer(tokenizer, kept)
    if model is not None:
        original_model_vocab = model.get_input_embeddings().weight.shape[0]
        reduce_model_vocab(model, kept)
        info = dict(getattr(model.config, "eliquare", None) or {})
        info["vocab_reduction"] = {
            "original_vocab_size": int(original_model_vocab),
            "kept_vocab_size": len(kept),
            "min_sentence_fraction": min_sentence_fraction if min_count is None and max_vocab_size is None else None,
            "min_count": min_count,
            "max_vocab_size": max_vocab_size,
            "corpus_sentences": int(num_sentences),
        }
        model.config.eliquare = info
    logger.info("Vocabulary reduced from %d to %d tokens.", original_vocab_size, len(kept))
    return model, new_tokenizer


def reduce_vocab(
    model: nn.Module | None,
    tokenizer: Any,
    corpus: Any,
    *,
    min_sentence_fraction: float = 0.0005,
    min_count: int | None = None,
    max_vocab_size: int | None = None,
    keep_tokens: Iterable[int | str] = (),
    batch_size: int = 1000,
    num_proc: int | None = None,
    text_column: str = "text",
    show_progress: bool = True,
) -> tuple[nn.Module | None, Any]:
    """Reduce ``model`` (in place) and ``tokenizer`` to the sub-words of ``corpus``; returns both.

    Count (:func:`count_sentence_occurrences`), select (:func:`select_vocabulary`: sub-words in at
    least ``min_sentence_fraction`` of the sentences — the paper's 0.05 % — or ``min_count`` /
    ``max_vocab_size``, always the special tokens and ``keep_tokens``), rebuild the tokenizer and slice
    the model. Provenance goes to ``model.config.eliquare["vocab_reduction"]``.
    """
    # Validate the threshold before the (long) counting pass.
    if not (isinstance(min_sentence_fraction, (int, float)) and 0 < min_sentence_fraction <= 1):
        raise ConfigurationError(
            f"min_sentence_fraction must be in (0, 1], got {min_sentence_fraction!r}; the paper uses 0.0005 (0.05 %)."
        )
    counts, num_sentences = count_sentence_occurrences(
        tokenizer,
        corpus,
        batch_size=batch_size,
        num_proc=num_proc,
        show_progress=show_progress,
        text_column=text_column,
    )
    return reduce_vocab_with_counts(
        model,
        tokenizer,
        counts,
        num_sentences,
        min_sentence_fraction=min_sentence_fraction,
        min_count=min_count,
        max_vocab_size=max_vocab_size,
        keep_tokens=keep_tokens,
    )


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------


@dataclass
class VocabReductionArguments:
    """Arguments of ``python -m hf_eliquare.vocab``."""

    model: str = field(metadata={"help": "Model directory or Hub id (with its tokenizer)."})
    corpus: list[str] = field(metadata={"help": "Target-language text files (.txt, .gz; or .jsonl/.csv/.parquet)."})
    output_dir: str = field(metadata={"help": "Where to write the reduced model and tokenizer."})
    min_sentence_fraction: float = field(
        default=0.0005, metadata={"help": "Keep sub-words in at least this fraction of sentences (paper: 0.0005)."}
    )
    min_count: int | None = field(default=None, metadata={"help": "Instead: keep sub-words in at least N sentences."})
    max_vocab_size: int | None = field(default=None, metadata={"help": "Keep at most N tokens (most frequent)."})
    keep_tokens: list[str] = field(default_factory=list, metadata={"help": "Tokens always kept."})
    text_column: str = field(default="text", metadata={"help": "Text column of .jsonl/.csv/.parquet corpora."})
    batch_size: int = field(default=1000, metadata={"help": "Sentences per encode_batch call."})
    num_proc: int | None = field(default=None, metadata={"help": "Processes for counting (datasets.map)."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace an existing output_dir."})


def _load_model(path: str) -> nn.Module:
    import transformers
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(path)
    for architecture in getattr(config, "architectures", None) or []:
        model_class = getattr(transformers, architecture, None)
        if model_class is not None:
            return model_class.from_pretrained(path)
    return AutoModel.from_pretrained(path)


def _finished(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def main(argv: Sequence[str] | None = None) -> None:
    from transformers import AutoTokenizer, HfArgumentParser

    from ._cli import setup_logging
    from .hub import resolve_pretrained

    parser = HfArgumentParser(VocabReductionArguments)
    args_list = list(argv) if argv is not None else sys.argv[1:]
    if len(args_list) == 1 and args_list[0].endswith((".json", ".yaml", ".yml")):
        loader = parser.parse_json_file if args_list[0].endswith(".json") else parser.parse_yaml_file
        (args,) = loader(os.path.abspath(args_list[0]))
    else:
        (args,) = parser.parse_args_into_dataclasses(args=args_list)
    setup_logging()

    output_dir = Path(args.output_dir)
    if _finished(output_dir) and not args.overwrite_output_dir:
        raise OutputDirError(
            f"Output directory {str(output_dir)!r} is not empty. Choose another --output_dir or pass "
            "--overwrite_output_dir."
        )
    model_path = resolve_pretrained(args.model, "model")
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = _load_model(model_path)
    before_vocab, before_params = model.get_input_embeddings().weight.shape[0], model.num_parameters()
    model, tokenizer = reduce_vocab(
        model,
        tokenizer,
        [Path(p) for p in args.corpus],
        min_sentence_fraction=args.min_sentence_fraction,
        min_count=args.min_count,
        max_vocab_size=args.max_vocab_size,
        keep_tokens=args.keep_tokens,
        batch_size=args.batch_size,
        num_proc=args.num_proc,
        text_column=args.text_column,
    )
    after_vocab, after_params = model.get_input_embeddings().weight.shape[0], model.num_parameters()

    with atomic_output_dir(output_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    sentences = model.config.eliquare["vocab_reduction"]["corpus_sentences"]
    print(f"corpus sentences: {sentences}")
    print(f"vocabulary: {before_vocab} -> {after_vocab} tokens ({after_vocab / before_vocab:.1%})")
    print(f"parameters: {before_params:,} -> {after_params:,} ({after_params / before_params:.1%})")
    print(f"saved to {output_dir}")


if __name__ == "__main__":
    from ._cli import run_main

    run_main(main)
