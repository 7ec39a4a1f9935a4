"""Student creation: a shallower (and optionally narrower) copy of the teacher, initialised from it.

DistilBERT (and Eliquare) take the teacher's architecture, keep half of its layers and initialise
student layer ``n`` (1-based) from teacher layer ``2n − 1``; the embeddings and the whole MLM head
are copied. The layer map is recorded in ``config.eliquare`` so that cards and users can see it.

A narrower student (``hidden_size``, ``num_attention_heads``, ``intermediate_size``) is initialised by
*weight selection* (Xu et al. 2023): the same tensors, restricted to a consistent, evenly spaced subset of
the teacher's dimensions; ``config.eliquare["distillation_init"]`` records which initialisation was used.
"""

from __future__ import annotations

import copy
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel

from .errors import ConfigurationError

logger = logging.getLogger(__name__)

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


def evenly_spaced_indices(size: int, keep: int) -> list[int]:
    """``keep`` of ``range(size)``, evenly spaced from the first: ``[(i * size) // keep for i in range(keep)]``.

    The weight-selection rule of narrow students (the same rule as the 2n − 1 layer map, applied to a
    dimension): ``evenly_spaced_indices(768, 384) == [0, 2, 4, …]``. Deterministic, so the indices need not
    be stored: ``config.eliquare["distillation_init"]`` records the sizes and the rule.
    """
    if not 1 <= keep <= size:
        raise ConfigurationError(f"Cannot select {keep} of {size} dimensions.")
    return [(i * size) // keep for i in range(keep)]


def check_student_shape(hidden_size: int, num_attention_heads: int, intermediate_size: int) -> None:
    """Refuse a student shape the attention cannot have (the message names the fix)."""
    for name, value in (
        ("hidden_size", hidden_size),
        ("num_attention_heads", num_attention_heads),
        ("intermediate_size", intermediate_size),
    ):
        if int(value) < 1:
            raise ConfigurationError(f"The student's {name} must be ≥ 1, got {value}.")
    if hidden_size % num_attention_heads:
        raise ConfigurationError(
            f"The student's hidden size {hidden_size} is not divisible by its {num_attention_heads} attention heads "
            f"(each head gets hidden_size / num_attention_heads dimensions). Choose --student_hidden_size a "
            f"multiple of --student_num_attention_heads (e.g. {num_attention_heads * max(1, hidden_size // num_attention_heads)})."
        )


def student_config(
    teacher_config,
    layers: Sequence[int],
    hidden_size: int | None = None,
    num_attention_heads: int | None = None,
    intermediate_size: int | None = None,
):
    """The student's config: the teacher's, with ``len(layers)`` layers and the given (or the teacher's) width.

    When only ``hidden_size`` is given, the head size is kept (heads = hidden / teacher head size, when that
    divides) and the FFN keeps the teacher's ratio ``intermediate_size / hidden_size``.
    """
    config = copy.deepcopy(teacher_config)
    config.num_hidden_layers = len(layers)
    t_hidden, t_heads = teacher_config.hidden_size, teacher_config.num_attention_heads
    hidden = int(hidden_size or t_hidden)
    if num_attention_heads is None:
        head_dim = t_hidden // t_heads
        num_attention_heads = hidden // head_dim if hidden % head_dim == 0 and hidden >= head_dim else t_heads
    if intermediate_size is None:
        intermediate_size = (teacher_config.intermediate_size * hidden) // t_hidden
    check_student_shape(hidden, int(num_attention_heads), int(intermediate_size))
    config.hidden_size = hidden
    config.num_attention_heads = int(num_attention_heads)
    config.intermediate_size = int(intermediate_size)
    return config


#: Parameters whose axes are (output, input) in terms of the kinds of dimension they index.
_AXES = (
    (re.compile(r"\.attention\.self\.(query|key|value)\.weight$"), ("heads", "hidden")),
    (re.compile(r"\.attention\.self\.(query|key|value)\.bias$"), ("heads",)),
    (re.compile(r"\.attention\.output\.dense\.weight$"), ("hidden", "heads")),
    (re.compile(r"\.intermediate\.dense\.weight$"), ("ffn", "hidden")),
    (re.compile(r"\.intermediate\.dense\.bias$"), ("ffn",)),
    (re.compile(r"\.layer\.\d+\.output\.dense\.weight$"), ("hidden", "ffn")),
)


def _selection_indices(teacher_config, config) -> dict[str, torch.Tensor] | None:
    """Per kind of dimension, the teacher indices a narrow student keeps; ``None`` if it cannot be selected.

    * ``hidden``: evenly spaced model dimensions, the same in the embeddings, every LayerNorm, every
      layer's input and output, the MLM head and its (tied) decoder, so the residual stream stays consistent;
    * ``heads``: whole heads (evenly spaced) and, inside each, evenly spaced head dimensions;
    * ``ffn``: evenly spaced FFN units, the same in every layer.
    """
    t_heads, s_heads = teacher_config.num_attention_heads, config.num_attention_heads
    t_head_dim, s_head_dim = teacher_config.hidden_size // t_heads, config.hidden_size // s_heads
    if (
        config.hidden_size > teacher_config.hidden_size
        or s_heads > t_heads
        or s_head_dim > t_head_dim
        or config.intermediate_size > teacher_config.intermediate_size
    ):
        return None
    heads = evenly_spaced_indices(t_heads, s_heads)
    dims = evenly_spaced_indices(t_head_dim, s_head_dim)
    return {
        "hidden": torch.tensor(evenly_spaced_indices(teacher_config.hidden_size, config.hidden_size)),
        "heads": torch.tensor([h * t_head_dim + d for h in heads for d in dims]),
        "ffn": torch.tensor(evenly_spaced_indices(teacher_config.intermediate_size, config.intermediate_size)),
    }


def _select(key: str, value: torch.Tensor, target_shape, indices, teacher_config) -> torch.Tensor:
    """The slice of a teacher tensor that initialises the student tensor of ``target_shape``."""
    kinds = next((axes for pattern, axes in _AXES if pattern.search(key)), None)
    if kinds is None:  # embeddings, LayerNorms, the MLM head: any axis of the teacher's width is "hidden"
        kinds = tuple(
            "hidden" if size == teacher_config.hidden_size and size != target else None
            for size, target in zip(value.shape, target_shape)
        )
    for axis, kind in enumerate(kinds):
        if kind is not None and value.shape[axis] != target_shape[axis]:
            value = value.index_select(axis, indices[kind].to(value.device))
    if tuple(value.shape) != tuple(target_shape):
        raise RuntimeError(f"Weight selection for {key} gave {tuple(value.shape)}, expected {tuple(target_shape)}.")
    return value


def create_student(
    teacher: PreTrainedModel,
    num_layers: int = 6,
    layers: Sequence[int] | None = None,
    *,
    hidden_size: int | None = None,
    num_attention_heads: int | None = None,
    intermediate_size: int | None = None,
    init: str = "teacher",
) -> PreTrainedModel:
    """A new model of the teacher's class with ``num_layers`` encoder layers, initialised from the teacher.

    ``layers`` (0-based teacher indices, increasing) overrides the default map of
    :func:`default_teacher_layers`; when given, ``num_layers`` is taken from its length.

    Width: ``hidden_size``, ``num_attention_heads``, ``intermediate_size`` default to the teacher's (with only
    ``hidden_size`` given, the head size and the FFN ratio are kept; see :func:`student_config`).

    ``init``:

    * ``"teacher"`` (default): of the teacher's width, the embeddings, the chosen layers and the whole MLM
      head are copied (DistilBERT). Narrower, the same tensors are copied after *weight selection*
      (Xu et al. 2023, "Initializing Models with Larger Ones"): a consistent, evenly spaced subset of the
      model dimensions, of the heads (and head dimensions) and of the FFN units, the same in every layer
      (:func:`_selection_indices`). A shape that cannot be selected (wider, more heads, larger heads or FFN
      than the teacher) falls back to a random initialisation, with a warning;
    * ``"random"``: the architecture's own random initialisation (a student trained from scratch).

    What was done is stored in ``config.eliquare``: ``teacher_layers`` (the layer map) and
    ``distillation_init`` (``{"method": "copy" | "weight_selection" | "random", …}``).
    """
    check_supported(teacher)
    if init not in ("teacher", "random"):
        raise ConfigurationError(f"init must be 'teacher' or 'random', got {init!r}.")
    teacher_config = teacher.config
    num_teacher_layers = teacher_config.num_hidden_layers
    if layers is None:
        layers = default_teacher_layers(num_teacher_layers, num_layers)
    else:
        layers = validate_teacher_layers(layers, num_teacher_layers)
    config = student_config(teacher_config, layers, hidden_size, num_attention_heads, intermediate_size)
    same_width = (config.hidden_size, config.num_attention_heads, config.intermediate_size) == (
        teacher_config.hidden_size,
        teacher_config.num_attention_heads,
        teacher_config.intermediate_size,
    )
    indices = None if same_width or init == "random" else _selection_indices(teacher_config, config)
    if init == "random":
        method = "random"
    elif same_width:
        method = "copy"
    elif indices is not None:
        method = "weight_selection"
    else:
        method = "random"
        logger.warning(
            "The student (hidden %d, %d heads, FFN %d) is larger than the teacher in some dimension, so its "
            "weights cannot be selected from the teacher's: it starts from a random initialisation.",
            config.hidden_size,
            config.num_attention_heads,
            config.intermediate_size,
        )
    init_info = {
        "method": method,
        "hidden_size": config.hidden_size,
        "num_attention_heads": config.num_attention_heads,
        "intermediate_size": config.intermediate_size,
    }
    if method == "weight_selection":
        init_info.update(
            selection="evenly_spaced",
            teacher_hidden_size=teacher_config.hidden_size,
            teacher_num_attention_heads=teacher_config.num_attention_heads,
            teacher_intermediate_size=teacher_config.intermediate_size,
        )
    info = dict(getattr(teacher_config, "eliquare", None) or {})
    info.update(
        teacher=teacher_config.name_or_path or getattr(teacher, "name_or_path", None) or None,
        teacher_num_layers=num_teacher_layers,
        teacher_layers=list(layers),
        distillation_init=init_info,
    )
    config.eliquare = info
    student = type(teacher)(config).to(dtype=teacher.dtype, device=teacher.device)
    if method == "random":
        return student

    index = {teacher_idx: student_idx for student_idx, teacher_idx in enumerate(layers)}
    pattern = re.compile(r"^(.*\.encoder\.layer\.)(\d+)(\..*)$")
    target = student.state_dict()
    state = {}
    for key, value in teacher.state_dict().items():
        match = pattern.match(key)
        if match is not None:
            if int(match.group(2)) not in index:
                continue
            key = f"{match.group(1)}{index[int(match.group(2))]}{match.group(3)}"
        if indices is not None and key in target:
            value = _select(key, value, target[key].shape, indices, teacher_config)
        state[key] = value
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
