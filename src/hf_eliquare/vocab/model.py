"""Step 4 of VocabReduce: the vocabulary-sized weights of a model sliced to the kept ids, in place."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import nn

from ..student import SUPPORTED_MODEL_TYPES, is_roberta_like, mlm_head
from .tokenizer import _check_kept_ids

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


def _head_module(model: nn.Module) -> nn.Module | None:
    """The module holding the MLM decoder (``cls.predictions`` / ``lm_head``), via ``student.mlm_head``."""
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
