"""The optional layer-to-layer and attention terms of the objective, around the pure losses.

    L = α_ce·L_ce + α_mlm·L_mlm + α_cos·L_cos + α_hidden·L_hidden + α_attn·L_attn + α_rel·L_rel

* ``L_hidden`` — TinyBERT / PKD: for each student layer ``i`` and its teacher layer ``map[i]``, the MSE (or
  ``1 − cos``) between ``P_i(h_s^(i))`` and ``h_t^(map[i])`` (layer outputs), mean over the layer pairs.
  ``P_i`` is a learned ``Linear(D_s → D_t)`` when the widths differ, the identity otherwise;
* ``L_attn`` — the attention-distribution KL ``KL(A_t ‖ A_s)`` of the same layer pairs, mean over heads and
  pairs (needs equal head counts);
* ``L_rel`` — MiniLMv2: Q–Q, K–K and V–V relation KLs from one teacher layer to one student layer, over
  ``relation_heads`` relation heads (any widths / head counts whose widths the relation heads divide).

Everything that depends on shapes is checked by :func:`plan_objectives` when the trainer is created (and by
``run_distill.py`` before any corpus work), so impossible requests fail in seconds with the fix named.

The learned projections live on the student as the submodule ``distillation_projections`` during training:
the optimizer, DDP, bf16 autocast, checkpoints and ``--resume_from_checkpoint`` then handle them like any other
student weight. :func:`detach_projections` takes them off before the final save, so the saved student is a plain
``*ForMaskedLM``.

Q, K and V are read with forward hooks on the ``query`` / ``key`` / ``value`` linear layers of the attention
(:func:`capture_qkv`): the models never return attention probabilities, so SDPA / flash attention stay in use.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .errors import ConfigurationError
from .losses import attention_kl_loss, hidden_state_loss, minilm_relation_loss
from .student import default_teacher_layers, evenly_spaced_indices

#: Attribute of the student that holds the learned projections while it is trained.
PROJECTIONS_ATTRIBUTE = "distillation_projections"
#: Names of the optional components, as logged (``eval_`` prefixed in evaluation).
EXTRA_COMPONENTS = ("loss_hidden", "loss_attn", "loss_rel")


@dataclass(frozen=True)
class ObjectivePlan:
    """What the optional terms need, resolved against the two models' configs (all indices 0-based)."""

    layer_map: tuple[int, ...] | None  # teacher layer per student layer (L_hidden / L_attn), None if unused
    hidden: bool  # L_hidden on
    attn: bool  # L_attn on
    relation_layers: tuple[int, int] | None  # (student layer, teacher layer) of L_rel, None if off
    relation_heads: int | None
    num_attention_heads: int  # the student's (= the teacher's when attn)
    hidden_projection: bool  # L_hidden goes through Linear(D_s → D_t) per layer
    cos_projection: bool  # L_cos goes through Linear(D_s → D_t)

    @property
    def components(self) -> tuple[str, ...]:
        on = {"loss_hidden": self.hidden, "loss_attn": self.attn, "loss_rel": self.relation_layers is not None}
        return tuple(name for name in EXTRA_COMPONENTS if on[name])

    @property
    def student_capture_layers(self) -> tuple[int, ...]:
        """Student layers whose Q/K/V are read (by hooks)."""
        layers = set(range(len(self.layer_map))) if self.attn else set()
        if self.relation_layers is not None:
            layers.add(self.relation_layers[0])
        return tuple(sorted(layers))

    @property
    def teacher_capture_layers(self) -> tuple[int, ...]:
        layers = set(self.layer_map) if self.attn else set()
        if self.relation_layers is not None:
            layers.add(self.relation_layers[1])
        return tuple(sorted(layers))


def _resolve_layer(index: int, depth: int, flag: str, role: str) -> int:
    if not -depth <= index < depth:
        raise ConfigurationError(
            f"--{flag} {index} is out of range: the {role} has layers 0..{depth - 1} (or -{depth}..-1 from the end)."
        )
    return index % depth


def default_layer_map(teacher_config, student_config) -> list[int]:
    """The student's initialisation map (``config.eliquare["teacher_layers"]``, DistilBERT's 2n − 1) when it fits
    the two configs, else evenly spaced teacher layers (the same rule)."""
    depth_t, depth_s = teacher_config.num_hidden_layers, student_config.num_hidden_layers
    copied = (getattr(student_config, "eliquare", None) or {}).get("teacher_layers")
    if copied and len(copied) == depth_s and all(0 <= int(x) < depth_t for x in copied):
        return [int(x) for x in copied]
    return default_teacher_layers(depth_t, depth_s)


def _divisors_of_both(a: int, b: int) -> list[int]:
    g = math.gcd(a, b)
    return [d for d in range(1, g + 1) if g % d == 0]


def plan_objectives(args, teacher_config, student_config) -> ObjectivePlan:
    """Check the optional terms against the shapes and resolve their layers; refuse what cannot work.

    ``args``: a :class:`~hf_eliquare.DistillationTrainingArguments` (or anything with its fields).
    """
    depth_t, depth_s = teacher_config.num_hidden_layers, student_config.num_hidden_layers
    width_t, width_s = teacher_config.hidden_size, student_config.hidden_size
    heads_t, heads_s = teacher_config.num_attention_heads, student_config.num_attention_heads
    hidden, attn = args.alpha_hidden > 0, args.alpha_attn > 0

    layer_map = None
    if args.hidden_layer_map is not None:
        layer_map = [int(x) for x in args.hidden_layer_map]
        if len(layer_map) != depth_s:
            raise ConfigurationError(
                f"--hidden_layer_map has {len(layer_map)} entries but the student has {depth_s} layers: give one "
                f"0-based teacher layer per student layer (e.g. {' '.join(map(str, default_layer_map(teacher_config, student_config)))})."
            )
        bad = [x for x in layer_map if not 0 <= x < depth_t]
        if bad:
            raise ConfigurationError(
                f"--hidden_layer_map names teacher layers {bad}, out of range: the teacher has layers "
                f"0..{depth_t - 1} (0-based)."
            )
    if (hidden or attn) and layer_map is None:
        layer_map = default_layer_map(teacher_config, student_config)
    if attn and heads_s != heads_t:
        raise ConfigurationError(
            f"--alpha_attn compares attention maps head by head, but the teacher has {heads_t} heads and the "
            f"student {heads_s}. Use --student_num_attention_heads {heads_t}, or the relation loss (--alpha_rel), "
            "which works across head counts."
        )

    relation_layers, relation_heads = None, None
    if args.alpha_rel > 0:
        relation_heads = int(args.relation_heads or heads_s)
        if width_s % relation_heads or width_t % relation_heads:
            raise ConfigurationError(
                f"--relation_heads {relation_heads} must divide both the student's width ({width_s}) and the "
                f"teacher's ({width_t}), since Q, K and V of each are split into that many relation heads. Choose one "
                f"of {', '.join(map(str, _divisors_of_both(width_s, width_t)))}."
            )
        relation_layers = (
            _resolve_layer(args.relation_student_layer, depth_s, "relation_student_layer", "student"),
            _resolve_layer(args.relation_teacher_layer, depth_t, "relation_teacher_layer", "teacher"),
        )
    return ObjectivePlan(
        layer_map=tuple(layer_map) if layer_map is not None else None,
        hidden=hidden,
        attn=attn,
        relation_layers=relation_layers,
        relation_heads=relation_heads,
        num_attention_heads=heads_s,
        hidden_projection=hidden and width_s != width_t,
        cos_projection=args.alpha_cos > 0 and width_s != width_t,
    )


# ------------------------------------------------------------------------------------------------ projections
def _projection(student_config, teacher_config) -> nn.Linear:
    """``Linear(D_s → D_t)``. For a weight-selected student, initialised as the inverse of the selection: student
    dimension ``j`` (= teacher dimension ``idx[j]``) is written back to ``idx[j]`` and the rest is 0, so the loss
    starts from the teacher's own coordinates; otherwise PyTorch's default initialisation."""
    width_s, width_t = student_config.hidden_size, teacher_config.hidden_size
    layer = nn.Linear(width_s, width_t)
    init = (getattr(student_config, "eliquare", None) or {}).get("distillation_init") or {}
    if init.get("method") == "weight_selection" and init.get("teacher_hidden_size") == width_t:
        with torch.no_grad():
            layer.weight.zero_()
            layer.bias.zero_()
            layer.weight[evenly_spaced_indices(width_t, width_s), range(width_s)] = 1.0
    return layer


def build_projections(plan: ObjectivePlan, student_config, teacher_config) -> nn.ModuleDict | None:
    """The learned projections the plan needs (``"cos"``, ``"layer_<i>"``), or ``None``."""
    modules = {}
    if plan.cos_projection:
        modules["cos"] = _projection(student_config, teacher_config)
    if plan.hidden_projection:
        for i in range(len(plan.layer_map)):
            modules[f"layer_{i}"] = _projection(student_config, teacher_config)
    return nn.ModuleDict(modules) if modules else None


def attach_projections(student: nn.Module, projections: nn.ModuleDict | None) -> None:
    """Put ``projections`` on the student (replacing earlier ones) so they train and checkpoint with it."""
    if hasattr(student, PROJECTIONS_ATTRIBUTE):
        delattr(student, PROJECTIONS_ATTRIBUTE)
    if projections is not None:
        first = next(student.parameters())
        student.add_module(PROJECTIONS_ATTRIBUTE, projections.to(device=first.device))


def detach_projections(student: nn.Module) -> nn.ModuleDict | None:
    """Take the projections off the student (a plain ``*ForMaskedLM`` again) and return them."""
    projections = getattr(student, PROJECTIONS_ATTRIBUTE, None)
    if projections is not None:
        delattr(student, PROJECTIONS_ATTRIBUTE)
    return projections


@contextlib.contextmanager
def projections_detached(student: nn.Module) -> Iterator[None]:
    """Within the block the student has no projections (for saving the final model)."""
    projections = detach_projections(student)
    try:
        yield
    finally:
        if projections is not None:
            student.add_module(PROJECTIONS_ATTRIBUTE, projections)


def project(projections: nn.ModuleDict | None, name: str, hidden: torch.Tensor) -> torch.Tensor:
    """``projections[name](hidden)``, or ``hidden`` when there is no such projection (equal widths)."""
    if projections is None or name not in projections:
        return hidden
    layer = projections[name]
    return layer(hidden.to(layer.weight.dtype))  # under autocast the matmul still runs in the autocast dtype


# ------------------------------------------------------------------------------------------------ Q/K/V hooks
@contextlib.contextmanager
def capture_qkv(model: nn.Module, layers: Sequence[int]) -> Iterator[dict[int, dict[str, torch.Tensor]]]:
    """Within the block, every forward of ``model`` records ``{layer: {"query": (B, L, W), "key": …, "value": …}}``
    (the outputs of the attention's projection layers, heads concatenated) for the given encoder layers.

    Hooks on ``nn.Linear`` outputs: the attention kernel itself is untouched."""
    captured: dict[int, dict[str, torch.Tensor]] = {}
    handles = []
    blocks = model.base_model.encoder.layer  # BERT and RoBERTa-like models: ModuleList of layers
    try:
        for index in layers:
            attention = blocks[index].attention.self
            for name in ("query", "key", "value"):

                def hook(module, inputs, output, index=index, name=name):
                    captured.setdefault(index, {})[name] = output

                handles.append(getattr(attention, name).register_forward_hook(hook))
        yield captured
    finally:
        for handle in handles:
            handle.remove()


# ------------------------------------------------------------------------------------------------ the terms
def extra_losses(
    plan: ObjectivePlan,
    projections: nn.ModuleDict | None,
    *,
    student_hidden_states: Sequence[torch.Tensor] | None,
    teacher_hidden_states: Sequence[torch.Tensor] | None,
    student_qkv: dict[int, dict[str, torch.Tensor]],
    teacher_qkv: dict[int, dict[str, torch.Tensor]],
    attention_mask: torch.Tensor,
    hidden_loss: str = "mse",
    num_tokens: torch.Tensor | float | None = None,
) -> dict[str, torch.Tensor]:
    """The un-weighted optional terms that are on, each divided by ``num_tokens`` (default: this batch's).

    ``*_hidden_states``: the models' ``hidden_states`` tuples (index 0 = embeddings, ``i + 1`` = output of layer
    ``i``); ``*_qkv``: from :func:`capture_qkv`; ``attention_mask``: ``(B, L)``.
    """
    tokens = attention_mask.bool()
    terms = {}
    if plan.hidden:
        per_layer = [
            hidden_state_loss(
                project(projections, f"layer_{i}", student_hidden_states[i + 1][tokens]),
                teacher_hidden_states[t + 1][tokens],
                hidden_loss,
                num_tokens,
            )
            for i, t in enumerate(plan.layer_map)
        ]
        terms["loss_hidden"] = torch.stack(per_layer).mean()
    if plan.attn:
        per_layer = [
            attention_kl_loss(
                student_qkv[i]["query"],
                student_qkv[i]["key"],
                teacher_qkv[t]["query"],
                teacher_qkv[t]["key"],
                attention_mask,
                plan.num_attention_heads,
                num_tokens,
            )
            for i, t in enumerate(plan.layer_map)
        ]
        terms["loss_attn"] = torch.stack(per_layer).mean()
    if plan.relation_layers is not None:
        s_layer, t_layer = plan.relation_layers
        names = ("query", "key", "value")
        terms["loss_rel"] = minilm_relation_loss(
            tuple(student_qkv[s_layer][n] for n in names),
            tuple(teacher_qkv[t_layer][n] for n in names),
            attention_mask,
            plan.relation_heads,
            num_tokens,
        )
    return terms
