"""Step 2 of VocabReduce: which token ids to keep, in their new order, from one :class:`VocabSelection`."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from ..errors import ConfigurationError, DataError
from .counting import _backend, _full_vocab_size


@dataclass(frozen=True)
class VocabSelection:
    """What VocabReduce keeps, validated once, where it is made.

    * ``min_sentence_fraction`` — keep sub-words present in at least this share of the sentences
      (the paper: 0.0005, i.e. 0.05 %);
    * ``min_count`` — instead, keep sub-words present in at least this many sentences;
    * ``max_vocab_size`` — with neither, keep the most frequent tokens until the whole vocabulary has
      this size (it also caps a ``min_count`` selection);
    * ``keep_tokens`` — ids or token strings always kept (after the special tokens).
    """

    min_sentence_fraction: float = 0.0005
    min_count: int | None = None
    max_vocab_size: int | None = None
    keep_tokens: tuple[int | str, ...] = field(default=())

    def __post_init__(self):
        fraction = self.min_sentence_fraction
        if isinstance(fraction, bool) or not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
            raise ConfigurationError(
                f"min_sentence_fraction must be in (0, 1], got {fraction!r}; the paper uses 0.0005 (0.05 %)."
            )
        if self.min_count is not None and (int(self.min_count) != self.min_count or self.min_count < 1):
            raise ConfigurationError(f"min_count must be a positive integer (sentences), got {self.min_count!r}.")
        if self.max_vocab_size is not None and (
            int(self.max_vocab_size) != self.max_vocab_size or self.max_vocab_size < 1
        ):
            raise ConfigurationError(f"max_vocab_size must be a positive integer, got {self.max_vocab_size!r}.")
        object.__setattr__(self, "keep_tokens", tuple(self.keep_tokens or ()))

    @classmethod
    def of(cls, selection: VocabSelection | None = None, **keywords: Any) -> VocabSelection:
        """``selection`` itself, or one built from the keywords (the four field names) — not both."""
        if selection is not None:
            if keywords:
                raise ConfigurationError(f"Pass either selection= or the keywords {sorted(keywords)}, not both.")
            return selection
        unknown = set(keywords) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(
                f"Unknown vocabulary-selection keywords {sorted(unknown)}; use {[f.name for f in fields(cls)]}."
            )
        return cls(**keywords)

    def describe(self) -> dict[str, Any]:
        """Provenance for ``config.eliquare["vocab_reduction"]`` (the fraction only when it decided)."""
        fraction_used = self.min_count is None and self.max_vocab_size is None
        return {
            "min_sentence_fraction": self.min_sentence_fraction if fraction_used else None,
            "min_count": self.min_count,
            "max_vocab_size": self.max_vocab_size,
        }


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
    selection: VocabSelection | None = None,
    **keywords: Any,
) -> list[int]:
    """Old ids to keep, in the new order (new id = position in the list).

    Order: :func:`always_kept_ids` (special tokens etc., original order), then ``keep_tokens`` (ids or
    token strings, as given), then the selected regular tokens in original id order. A regular token
    is selected when it occurs in at least ``min_sentence_fraction * num_sentences`` sentences; with
    ``min_count`` the threshold is that many sentences instead, and with ``max_vocab_size`` alone the
    most frequent tokens (ties: lower id) are kept until the whole vocabulary has that size (it also
    caps a ``min_count`` selection). Tokens that never occur are never selected. The rule is a
    :class:`VocabSelection` (``selection=``) or its field names as keywords.
    """
    selection = VocabSelection.of(selection, **keywords)
    min_sentence_fraction, min_count = selection.min_sentence_fraction, selection.min_count
    max_vocab_size, keep_tokens = selection.max_vocab_size, selection.keep_tokens
    counts = np.asarray(counts)
    if counts.ndim != 1:
        raise ConfigurationError(f"counts must be one-dimensional (one entry per token id), got shape {counts.shape}.")
    vocab_size = counts.shape[0]
    if vocab_size < _full_vocab_size(tokenizer):
        raise ConfigurationError(
            f"counts has {vocab_size} entries but the tokenizer has {_full_vocab_size(tokenizer)} tokens: "
            "count with the same tokenizer (count_sentence_occurrences(tokenizer, corpus))."
        )
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
