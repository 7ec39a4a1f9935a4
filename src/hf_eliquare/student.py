"""Student creation: a shallower copy of the teacher, initialised from every other teacher layer.

DistilBERT (and Eliquare) take the teacher's architecture, keep half of its layers and initialise
student layer ``n`` (1-based) from teacher layer ``2n − 1``; the embeddings and the whole MLM head
are copied. The layer map is recorded in ``config.eliquare`` so that cards and users can see it.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel

from .errors import ConfigurationError

#: ``config.model_type`` values whose ``*ForMaskedLM`` classes hf_eliquare can distil.
SUPPORTED_MODEL_TYPES = ("bert", "roberta", "xlm-roberta", "camembert")
_ROBERTA_LIKE = ("roberta", "xlm-roberta", "camembert")


@dataclass
class MaskedLMHead:
    """The pieces of an MLM head: ``logits = decoder(transform(hidden))``."""

    attribute: str  # name of the head module on the *ForMaskedLM model ("cls" or "lm_head")
    transform: Callable[[torch.Tensor], torch.Tensor]  # (…, D) → (…, D)
    decoder: nn.Linear  # weight (V, D), bias (V,)


def check_supported(model: nn.Module, role: str = "teacher") -> None:
    """Raise a :class:`ConfigurationError` naming the fix when ``model`` is not a supported MLM."""
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ConfigurationError(
            f"The {role} is a {type(model).__name__} (model_type={model_type!r}); hf_eliquare distils "
            f"masked-language models of the families {', '.join(SUPPORTED_MODEL_TYPES)} "
            "(e.g. bert-base-multilingual-cased, xlm-roberta-base)."
        )
    if not type(model).__name__.endswith("ForMaskedLM"):
        raise ConfigurationError(
            f"The {role} is a {type(model).__name__}, which has no masked-language-modelling head, but "
            "distillation needs the teacher's MLM logits. Load it with AutoModelForMaskedLM.from_pretrained(...)."
        )


def load_masked_lm(name_or_path: str, role: str = "teacher", **kwargs) -> PreTrainedModel:
    """``AutoModelForMaskedLM.from_pretrained`` that refuses what cannot be distilled, before or after loading.

    The architecture is checked on the config first (GPT-2 & co. otherwise fail deep inside the Auto
    class). A checkpoint saved without its MLM head (e.g. ``BertModel``) loads into ``*ForMaskedLM``
    with a *randomly initialised* head and only a warning; here that is an error.
    """
    from transformers import AutoConfig, AutoModelForMaskedLM

    config = AutoConfig.from_pretrained(name_or_path, **kwargs)
    if config.model_type not in SUPPORTED_MODEL_TYPES:
        architectures = ", ".join(config.architectures or []) or config.model_type
        raise ConfigurationError(
            f"The {role} {name_or_path!r} is a {architectures} (model_type={config.model_type!r}); hf_eliquare "
            f"distils masked-language models of the families {', '.join(SUPPORTED_MODEL_TYPES)}. Pass such a "
            "model instead (e.g. bert-base-multilingual-cased, xlm-roberta-base)."
        )
    model, info = AutoModelForMaskedLM.from_pretrained(name_or_path, output_loading_info=True, **kwargs)
    head = mlm_head(model).attribute
    missing = sorted(k for k in info["missing_keys"] if k.startswith(f"{head}."))
    if missing:
        raise ConfigurationError(
            f"The {role} {name_or_path!r} has no masked-language-modelling head (saved as "
            f"{', '.join(config.architectures or ['?'])}; missing {', '.join(missing[:3])}…), so its head would be "
            "random and the distillation targets meaningless. Use the checkpoint of the *ForMaskedLM model "
            "(e.g. BertForMaskedLM, XLMRobertaForMaskedLM)."
        )
    check_finite_weights(model, role)
    return model


def check_finite_weights(model: nn.Module, role: str = "teacher") -> None:
    """Refuse a model with NaN or infinite weights (a corrupt or diverged checkpoint) before training on it."""
    bad = [name for name, p in model.named_parameters() if not torch.isfinite(p).all()]
    if bad:
        raise ConfigurationError(
            f"The {role} has NaN or infinite weights in {', '.join(bad[:3])}{'…' if len(bad) > 3 else ''}: the "
            "checkpoint is corrupt or comes from a diverged run. Re-download it or use an earlier checkpoint."
        )


def mlm_head(model: PreTrainedModel) -> MaskedLMHead:
    """Split the MLM head of a supported model into transform and decoder (shapes in the docstring above).

    The model is checked once, where it is loaded or given (:func:`load_masked_lm`, :func:`create_student`,
    ``DistillationTrainer.__init__``), not here: this runs on every training step."""
    if model.config.model_type == "bert":
        predictions = model.cls.predictions
        return MaskedLMHead("cls", predictions.transform, predictions.decoder)
    head = model.lm_head

    def transform(hidden: torch.Tensor) -> torch.Tensor:
        return head.layer_norm(nn.functional.gelu(head.dense(hidden)))

    return MaskedLMHead("lm_head", transform, head.decoder)


#: Weights of the teacher's pooler (``tanh(dense(h_[CLS]))``) as a BERT checkpoint stores them.
POOLER_SUFFIXES = ("pooler.dense.weight", "pooler.dense.bias")


def add_pooler_to_saved_model(directory: str | os.PathLike, pooler: dict[str, torch.Tensor]) -> None:
    """Write ``pooler`` into the ``model.safetensors`` of a saved ``*ForMaskedLM`` so that
    ``AutoModelForSequenceClassification.from_pretrained(directory)`` starts from it (``*ForMaskedLM`` ignores
    it when loading). Keys are renamed to the saved model's base-model prefix (``bert.``, ``roberta.``)."""
    from safetensors.torch import load_file, save_file
    from transformers.utils import SAFE_WEIGHTS_NAME

    if not pooler:
        return
    path = os.path.join(directory, SAFE_WEIGHTS_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: the student is expected as one safetensors file")
    state = load_file(path)
    prefix = next(key.split(".", 1)[0] for key in state if ".embeddings." in key)  # "bert" / "roberta"
    for key, value in pooler.items():
        suffix = next(s for s in POOLER_SUFFIXES if key.endswith(s))
        state[f"{prefix}.{suffix}"] = value.contiguous()
    save_file(state, path, metadata={"format": "pt"})


def default_teacher_layers(num_teacher_layers: int, num_student_layers: int) -> list[int]:
    """0-based teacher layers for each student layer: evenly spaced from the first one.

    For half the depth this is DistilBERT's choice, student layer n ← teacher layer 2n − 1 (1-based),
    i.e. ``[0, 2, 4, 6, 8, 10]`` for 12 → 6.
    """
    if not 1 <= num_student_layers <= num_teacher_layers:
        raise ConfigurationError(
            f"The student must have between 1 and {num_teacher_layers} layers (the teacher's depth), "
            f"got {num_student_layers}. Choose --num_student_layers (num_layers) from 1 to {num_teacher_layers}."
        )
    return [(i * num_teacher_layers) // num_student_layers for i in range(num_student_layers)]


def validate_teacher_layers(layers: Sequence[int], num_teacher_layers: int) -> list[int]:
    layers = [int(x) for x in layers]
    if not layers:
        raise ConfigurationError("`layers` is empty: name at least one teacher layer (0-based) to copy.")
    bad = [x for x in layers if not 0 <= x < num_teacher_layers]
    if bad:
        raise ConfigurationError(
            f"Teacher layers {bad} are out of range: the teacher has layers 0..{num_teacher_layers - 1} (0-based). "
            "Pick --student_layers (layers) from that range."
        )
    if len(set(layers)) != len(layers):
        raise ConfigurationError(
            f"--student_layers (layers) {layers} repeats a teacher layer: each student layer needs its own. "
            "Name each teacher layer once."
        )
    if layers != sorted(layers):
        raise ConfigurationError(
            f"--student_layers (layers) {layers} must be increasing, to keep the teacher's layer order."
        )
    return layers


def create_student(
    teacher: PreTrainedModel, num_layers: int = 6, layers: Sequence[int] | None = None
) -> PreTrainedModel:
    """A new model of the teacher's class with ``num_layers`` encoder layers copied from the teacher.

    ``layers`` (0-based teacher indices, increasing) overrides the default map of
    :func:`default_teacher_layers`; when given, ``num_layers`` is taken from its length. Embeddings,
    the chosen layers and the whole MLM head are copied; the map is stored in ``config.eliquare``.
    """
    check_supported(teacher)
    num_teacher_layers = teacher.config.num_hidden_layers
    if layers is None:
        layers = default_teacher_layers(num_teacher_layers, num_layers)
    else:
        layers = validate_teacher_layers(layers, num_teacher_layers)
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = len(layers)
    info = dict(getattr(teacher.config, "eliquare", None) or {})
    info.update(
        teacher=teacher.config.name_or_path or getattr(teacher, "name_or_path", None) or None,
        teacher_num_layers=num_teacher_layers,
        teacher_layers=list(layers),
    )
    config.eliquare = info
    student = type(teacher)(config).to(dtype=teacher.dtype, device=teacher.device)

    index = {teacher_idx: student_idx for student_idx, teacher_idx in enumerate(layers)}
    pattern = re.compile(r"^(.*\.encoder\.layer\.)(\d+)(\..*)$")
    state = {}
    for key, value in teacher.state_dict().items():
        match = pattern.match(key)
        if match is None:
            state[key] = value
        elif int(match.group(2)) in index:
            state[f"{match.group(1)}{index[int(match.group(2))]}{match.group(3)}"] = value
    missing, unexpected = student.load_state_dict(state, strict=False)
    if unexpected or missing:
        raise RuntimeError(f"Copying teacher weights failed: missing={missing}, unexpected={unexpected}")
    student.tie_weights()
    return student


def freeze_position_embeddings(model: PreTrainedModel) -> bool:
    """Freeze the learned position embeddings (the paper does this for XLM-R students). Returns
    whether something was frozen."""
    embeddings = getattr(model.base_model, "embeddings", None)
    position = getattr(embeddings, "position_embeddings", None)
    if position is None:
        return False
    position.weight.requires_grad_(False)
    return True


def is_roberta_like(model: PreTrainedModel) -> bool:
    return getattr(model.config, "model_type", None) in _ROBERTA_LIKE
