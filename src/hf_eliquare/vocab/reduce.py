"""VocabReduce as a whole: count, select, rebuild the tokenizer, slice the model, record provenance."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from torch import nn

from ..errors import ConfigurationError
from .counting import _full_vocab_size, count_sentence_occurrences
from .model import reduce_model_vocab
from .selection import VocabSelection, select_vocabulary
from .tokenizer import check_reducible, reduce_tokenizer

logger = logging.getLogger(__name__)


def _check_model_matches(model: nn.Module | None, tokenizer: Any) -> None:
    if model is None:
        return
    model_vocab = model.get_input_embeddings().weight.shape[0]
    tokenizer_vocab = _full_vocab_size(tokenizer)
    if model_vocab < tokenizer_vocab:
        raise ConfigurationError(
            f"The model has {model_vocab} embeddings but the tokenizer {tokenizer_vocab} tokens: "
            "they do not belong together. Load the tokenizer that was saved with the model."
        )


def reduce_vocab_with_counts(
    model: nn.Module | None,
    tokenizer: Any,
    counts: np.ndarray,
    num_sentences: int,
    selection: VocabSelection | None = None,
    **keywords: Any,
) -> tuple[nn.Module | None, Any]:
    """:func:`reduce_vocab` from precomputed :func:`count_sentence_occurrences` results (e.g. counts
    taken once on a training split). ``model`` may be ``None`` to reduce only the tokenizer."""
    selection = VocabSelection.of(selection, **keywords)
    original_vocab_size = _full_vocab_size(tokenizer)
    _check_model_matches(model, tokenizer)
    kept = select_vocabulary(counts, num_sentences, tokenizer, selection)
    new_tokenizer = reduce_tokenizer(tokenizer, kept)
    if model is not None:
        original_model_vocab = model.get_input_embeddings().weight.shape[0]
        reduce_model_vocab(model, kept)
        info = dict(getattr(model.config, "eliquare", None) or {})
        info["vocab_reduction"] = {
            "original_vocab_size": int(original_model_vocab),
            "kept_vocab_size": len(kept),
            **selection.describe(),
            "corpus_sentences": int(num_sentences),
        }
        model.config.eliquare = info
    logger.info("Vocabulary reduced from %d to %d tokens.", original_vocab_size, len(kept))
    return model, new_tokenizer


def reduce_vocab(
    model: nn.Module | None,
    tokenizer: Any,
    corpus: Any,
    selection: VocabSelection | None = None,
    *,
    batch_size: int = 1000,
    num_proc: int | None = None,
    text_column: str = "text",
    show_progress: bool = True,
    **keywords: Any,
) -> tuple[nn.Module | None, Any]:
    """Reduce ``model`` (in place) and ``tokenizer`` to the sub-words of ``corpus``; returns both.

    Count (:func:`count_sentence_occurrences`; ``corpus`` as :func:`iter_corpus` reads it: files as
    ``str`` or ``Path``, a ``datasets.Dataset`` or sentences), select (:func:`select_vocabulary` with a
    :class:`VocabSelection` or its keywords ``min_sentence_fraction`` — the paper's 0.05 % —,
    ``min_count``, ``max_vocab_size``, ``keep_tokens``; special tokens always), rebuild the tokenizer
    and slice the model. Provenance goes to ``model.config.eliquare["vocab_reduction"]``.
    The rule and the tokenizer type are checked before the counting pass.
    """
    selection = VocabSelection.of(selection, **keywords)
    check_reducible(tokenizer)
    counts, num_sentences = count_sentence_occurrences(
        tokenizer,
        corpus,
        batch_size=batch_size,
        num_proc=num_proc,
        show_progress=show_progress,
        text_column=text_column,
    )
    return reduce_vocab_with_counts(model, tokenizer, counts, num_sentences, selection)
