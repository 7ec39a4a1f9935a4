"""Training arguments for language-specific distillation."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
from transformers import TrainingArguments

from .errors import ConfigurationError

logger = logging.getLogger(__name__)

#: The paper's distillation batch: 8 sequences per device × 4 GPUs × 50 accumulation steps.
PAPER_GLOBAL_BATCH_SIZE = 1600


@dataclass
class DistillationTrainingArguments(TrainingArguments):
    r"""
    [`TrainingArguments`] for [`DistillationTrainer`]: DistilBERT's triple loss, with the Eliquare paper's
    training recipe as defaults.

    Parameters:
        > Loss

        alpha_ce (`float`, *optional*, defaults to `5.0`):
            Weight of the distillation loss `KL(softmax(t/τ) ‖ softmax(s/τ))·τ²`.
        alpha_mlm (`float`, *optional*, defaults to `2.0`):
            Weight of the student's masked-language-modelling cross-entropy.
        alpha_cos (`float`, *optional*, defaults to `1.0`):
            Weight of the cosine loss `1 − cos(h_s, h_t)` between the last hidden states.
        temperature (`float`, *optional*, defaults to `2.0`):
            Softmax temperature τ of the distillation loss.
        restrict_ce_to_mask (`bool`, *optional*, defaults to `False`):
            Compute the distillation loss at the masked positions only, instead of at every non-padding
            position. The MLM heads of teacher and student then run on ~15% of the positions.
            With a student narrower than the teacher, `L_cos` compares the teacher's last hidden states with a
            learned linear projection of the student's (see below).

        > Layer-to-layer and attention terms (off by default; docs/narrow_students.md)

        alpha_hidden (`float`, *optional*, defaults to `0.0`):
            Weight of the hidden-state loss between mapped layers (TinyBERT / PKD), mean over the layer pairs.
            When the widths differ, each student layer goes through its own learned linear projection to the
            teacher's width; the projections are trained with the student, saved in checkpoints and dropped
            from the final model.
        hidden_loss (`str`, *optional*, defaults to `"mse"`):
            `"mse"` (TinyBERT: mean squared error per position) or `"cosine"` (`1 − cos`).
        hidden_layer_map (`list[int]`, *optional*):
            For each student layer, the 0-based teacher layer whose output it learns. Default: the layers the
            student was initialised from (`config.eliquare["teacher_layers"]`, DistilBERT's 2n − 1 map), else
            evenly spaced ones.
        alpha_attn (`float`, *optional*, defaults to `0.0`):
            Weight of the attention-distribution KL between the mapped layers (TinyBERT's layer map, MiniLM's
            KL), mean over heads and layer pairs. Needs equal head counts in teacher and student.
        alpha_rel (`float`, *optional*, defaults to `0.0`):
            Weight of MiniLMv2's self-attention relation loss (Q–Q + K–K + V–V KL) from
            `relation_teacher_layer` to `relation_student_layer`; works across widths and head counts.
        relation_heads (`int`, *optional*):
            Relation heads of MiniLMv2 (must divide both widths). Default: the student's attention heads.
        relation_teacher_layer / relation_student_layer (`int`, *optional*, defaults to `-1`):
            0-based layers (negative: from the end) of the relation loss; default: last → last.

        Q, K and V are read by forward hooks on the attention projections, so the models keep their fast
        (SDPA / flash) attention; the attention maps are recomputed in the loss.

        > Masking

        mlm_probability (`float`, *optional*, defaults to `0.15`):
            Share of the eligible (non-special, non-padding) tokens that are predicted.
        mlm_smoothing (`float`, *optional*, defaults to `0.7`):
            Tokens are chosen with probability ∝ `count ** -mlm_smoothing` (0 = uniform).
        mask_replace_prob / random_replace_prob (`float`, *optional*, defaults to `0.8` / `0.1`):
            Of the chosen tokens, the shares replaced by [MASK] and by a random token (the rest are kept).

        > Efficiency

        distill_chunk_size (`int`, *optional*, defaults to `1024`):
            Positions per chunk when the vocabulary-sized logits are computed. The loss never holds more
            than `chunk × V` logits at a time; `0` computes the full logits at once (the literal formula).

        > Batch

        global_batch_size (`int`, *optional*, defaults to `None` = `1600`, the paper's 8 × 4 GPUs × 50):
            Sequences per optimizer step over all processes. It sets `gradient_accumulation_steps` to
            `global_batch_size / (per_device_train_batch_size × world_size)`, which must be a whole number.
            When only `gradient_accumulation_steps` is given, it wins and the global batch follows from it;
            when both are given they must agree. Both unset: the paper's 1600.

        > Output

        overwrite_output_dir (`bool`, *optional*, defaults to `False`):
            Allow writing into an `output_dir` that already holds a finished model.

    Defaults that differ from [`TrainingArguments`] (the paper / DistilBERT's `train.py`):
        - `learning_rate`: `5e-4` instead of `5e-5`;
        - `adam_epsilon`: `1e-6` instead of `1e-8`; `adam_beta2`: `0.98` instead of `0.999` (DistilBERT);
        - `max_grad_norm`: `5.0` instead of `1.0` (DistilBERT);
        - `warmup_steps`: `0.05` (5% of the steps, DistilBERT's `warmup_prop`) instead of `0`;
        - `num_train_epochs`: `10` instead of `3`;
        - `per_device_train_batch_size`: `8`; `gradient_accumulation_steps`: derived from `global_batch_size`
          (1600, the paper's): 200 on one process, 50 on four, instead of `1`;
        - `train_sampling_strategy`: `"group_by_length"` instead of `"random"` (DistilBERT's `group_by_size`):
          batches of similar lengths in a seeded random order, see [`DistillationTrainer`];
        - `eval_strategy` and `save_strategy`: `"epoch"`; `load_best_model_at_end`: `True` with
          `metric_for_best_model="loss"` (the validation distillation loss), so the best epoch is kept;
        - `logging_steps`: `50` instead of `500`;
        - `remove_unused_columns`: `False` (the collator needs `input_ids` only and builds the rest);
        - `ddp_find_unused_parameters`: `False` — the MLM head runs outside the DDP forward (see
          [`DistillationTrainer`]), so DDP must not mark it unused.
    """

    alpha_ce: float = field(default=5.0, metadata={"help": "Weight of the distillation (KL) loss."})
    alpha_mlm: float = field(default=2.0, metadata={"help": "Weight of the masked-LM loss."})
    alpha_cos: float = field(default=1.0, metadata={"help": "Weight of the cosine hidden-state loss."})
    temperature: float = field(default=2.0, metadata={"help": "Softmax temperature of the distillation loss."})
    restrict_ce_to_mask: bool = field(
        default=False, metadata={"help": "Distillation loss at the masked positions only (default: all tokens)."}
    )
    alpha_hidden: float = field(default=0.0, metadata={"help": "Weight of the layer-to-layer hidden-state loss."})
    hidden_loss: str = field(
        default="mse", metadata={"help": "Hidden-state distance: mse or cosine.", "choices": ["mse", "cosine"]}
    )
    hidden_layer_map: list[int] | None = field(
        default=None,
        metadata={"help": "0-based teacher layer for each student layer (default: the layers it was copied from)."},
    )
    alpha_attn: float = field(default=0.0, metadata={"help": "Weight of the attention-distribution KL (same heads)."})
    alpha_rel: float = field(default=0.0, metadata={"help": "Weight of MiniLMv2's Q-Q/K-K/V-V relation loss."})
    relation_heads: int | None = field(
        default=None, metadata={"help": "MiniLMv2 relation heads (default: the student's attention heads)."}
    )
    relation_teacher_layer: int = field(
        default=-1, metadata={"help": "Teacher layer of the relation loss (0-based, negative from the end)."}
    )
    relation_student_layer: int = field(
        default=-1, metadata={"help": "Student layer of the relation loss (0-based, negative from the end)."}
    )
    mlm_probability: float = field(default=0.15, metadata={"help": "Share of eligible tokens that are predicted."})
    mlm_smoothing: float = field(
        default=0.7, metadata={"help": "Masking weight ∝ count**-mlm_smoothing (rare tokens masked more)."}
    )
    mask_replace_prob: float = field(default=0.8, metadata={"help": "Chosen tokens replaced by [MASK]."})
    random_replace_prob: float = field(default=0.1, metadata={"help": "Chosen tokens replaced by a random token."})
    distill_chunk_size: int = field(
        default=1024, metadata={"help": "Positions per chunk for the vocabulary-sized logits (0: all at once)."}
    )
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Allow writing into an output_dir that already holds a finished model."}
    )

    # Paper / DistilBERT defaults.
    learning_rate: float = field(default=5e-4, metadata={"help": "The initial learning rate for AdamW."})
    adam_epsilon: float = field(default=1e-6, metadata={"help": "Epsilon for the AdamW optimizer."})
    adam_beta2: float = field(default=0.98, metadata={"help": "Beta2 for the AdamW optimizer."})
    max_grad_norm: float = field(default=5.0, metadata={"help": "Max gradient norm."})
    warmup_steps: float = field(
        default=0.05, metadata={"help": "Linear warm-up: steps (int) or a ratio of the total (float in [0, 1))."}
    )
    num_train_epochs: float = field(default=10.0, metadata={"help": "Total number of training epochs."})
    per_device_train_batch_size: int = field(default=8, metadata={"help": "Batch size per device for training."})
    gradient_accumulation_steps: int | None = field(
        default=None,
        metadata={"help": "Micro-batches per optimizer step (default: from --global_batch_size)."},
    )
    global_batch_size: int | None = field(
        default=None,
        metadata={
            "help": "Sequences per optimizer step over all processes (default 1600 = the paper's 8 × 4 GPUs × 50); "
            "sets gradient_accumulation_steps from the per-device batch and the number of processes."
        },
    )
    train_sampling_strategy: str = field(
        default="group_by_length",
        metadata={
            "help": "Training order: 'group_by_length' (default: batches of similar lengths, seeded random order "
            "between them, as DistilBERT's group_by_size), 'random', 'sequential' or 'batch_rebalance'.",
            "choices": ["random", "sequential", "group_by_length", "batch_rebalance"],
        },
    )
    eval_strategy: str = field(default="epoch", metadata={"help": "When to evaluate: 'no', 'steps' or 'epoch'."})
    save_strategy: str = field(default="epoch", metadata={"help": "When to save: 'no', 'steps', 'epoch' or 'best'."})
    load_best_model_at_end: bool = field(default=True, metadata={"help": "Keep the best validation checkpoint."})
    metric_for_best_model: str | None = field(default="loss", metadata={"help": "Metric that picks the best model."})
    logging_steps: float = field(default=50, metadata={"help": "Log every X optimizer steps."})
    remove_unused_columns: bool = field(default=False, metadata={"help": "Drop dataset columns unknown to the model."})
    ddp_find_unused_parameters: bool | None = field(
        default=False, metadata={"help": "find_unused_parameters for DDP (must stay False for the fused head)."}
    )

    def __post_init__(self):
        if self.fp16 and not _has_fp16_device():
            raise ConfigurationError(
                "--fp16 needs a CUDA (or other fp16-capable accelerator) device, but none is available, so "
                "training would silently run in fp32. On a CPU use --bf16 (mixed precision with bfloat16), or "
                "drop --fp16."
            )
        super().__post_init__()
        self.gradient_accumulation_steps, self.global_batch_size = resolve_global_batch(
            self.global_batch_size, self.gradient_accumulation_steps, self.per_device_train_batch_size, self.world_size
        )
        if self.temperature <= 0:
            raise ConfigurationError(f"temperature must be > 0, got {self.temperature}.")
        alphas = {
            "alpha_ce": self.alpha_ce,
            "alpha_mlm": self.alpha_mlm,
            "alpha_cos": self.alpha_cos,
            "alpha_hidden": self.alpha_hidden,
            "alpha_attn": self.alpha_attn,
            "alpha_rel": self.alpha_rel,
        }
        negative = {k: v for k, v in alphas.items() if v < 0}
        if negative:
            raise ConfigurationError(f"Loss weights must be ≥ 0, got {negative}.")
        if sum(alphas.values()) <= 0:
            raise ConfigurationError(f"At least one of {', '.join(alphas)} must be > 0.")
        if self.hidden_loss not in ("mse", "cosine"):
            raise ConfigurationError(f"--hidden_loss must be 'mse' or 'cosine', got {self.hidden_loss!r}.")
        if self.hidden_layer_map is not None and not self.hidden_layer_map:
            raise ConfigurationError("--hidden_layer_map is empty: give one teacher layer per student layer.")
        if self.relation_heads is not None and self.relation_heads < 1:
            raise ConfigurationError(f"--relation_heads must be ≥ 1, got {self.relation_heads}.")
        if not 0.0 < self.mlm_probability <= 1.0:
            raise ConfigurationError(f"mlm_probability must be in (0, 1], got {self.mlm_probability}.")
        if self.mlm_smoothing < 0:
            raise ConfigurationError(f"mlm_smoothing must be ≥ 0, got {self.mlm_smoothing}.")
        if self.distill_chunk_size < 0:
            raise ConfigurationError(f"distill_chunk_size must be ≥ 0, got {self.distill_chunk_size}.")
        if self.ddp_find_unused_parameters:
            raise ConfigurationError(
                "ddp_find_unused_parameters=True is not supported: the MLM head runs outside the DDP forward "
                "(to avoid full-vocabulary logits), so DDP would mark it unused. Leave it at False."
            )


def resolve_global_batch(
    global_batch_size: int | None, gradient_accumulation_steps: int | None, per_device_batch_size: int, world_size: int
) -> tuple[int, int]:
    """``(gradient_accumulation_steps, global_batch_size)`` from what was given (see the class docstring).

    ``global = per_device × world_size × accumulation``. The global batch wins when only it (or nothing: the
    paper's 1600) is given; an explicit accumulation alone wins; both given must agree. The arithmetic is logged.
    """
    if per_device_batch_size is None or per_device_batch_size < 1:
        raise ConfigurationError(f"--per_device_train_batch_size must be at least 1, got {per_device_batch_size}.")
    per_step = per_device_batch_size * world_size  # sequences of one micro-batch over all processes
    if global_batch_size is None and gradient_accumulation_steps is not None:
        if gradient_accumulation_steps < 1:
            raise ConfigurationError(
                f"--gradient_accumulation_steps must be at least 1, got {gradient_accumulation_steps}."
            )
        accumulation = gradient_accumulation_steps
        origin = "from --gradient_accumulation_steps"
    else:
        target = PAPER_GLOBAL_BATCH_SIZE if global_batch_size is None else global_batch_size
        if target < 1:
            raise ConfigurationError(f"--global_batch_size must be at least 1, got {target}.")
        origin = "the paper's default" if global_batch_size is None else "from --global_batch_size"
        if target % per_step:
            named = (
                f"--global_batch_size {target}"
                if global_batch_size is not None
                else f"The default global batch {target} (the paper's, --global_batch_size)"
            )
            raise ConfigurationError(
                f"{named} is not a multiple of per_device_train_batch_size × processes = "
                f"{per_device_batch_size} × {world_size} = {per_step}, so no whole number of accumulation steps "
                f"gives it. Choose a global batch that is a multiple of {per_step} (e.g. "
                f"{max(1, round(target / per_step)) * per_step}), or another per-device batch."
            )
        accumulation = target // per_step
        if gradient_accumulation_steps is not None and gradient_accumulation_steps != accumulation:
            raise ConfigurationError(
                f"--gradient_accumulation_steps {gradient_accumulation_steps} contradicts --global_batch_size {target}: "
                f"{per_device_batch_size} per device × {world_size} process(es) needs {accumulation} accumulation "
                "steps. Give only one of the two."
            )
    global_batch = per_step * accumulation
    logger.info(
        "Global batch %d sequences (%s) = %d per device × %d process(es) × %d accumulation steps",
        global_batch,
        origin,
        per_device_batch_size,
        world_size,
        accumulation,
    )
    return accumulation, global_batch


def _has_fp16_device() -> bool:
    if torch.cuda.is_available():
        return True
    for name in ("xpu", "npu", "mlu", "musa", "hpu"):
        backend = getattr(torch, name, None)
        if backend is not None and getattr(backend, "is_available", lambda: False)():
            return True
    return False
