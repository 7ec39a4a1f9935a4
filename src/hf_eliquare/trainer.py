"""`DistillationTrainer`: the Hugging Face Trainer with DistilBERT's teacher → student objective."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math

import torch
from torch import nn
from transformers import PreTrainedModel, Trainer, TrainerCallback

from .config import DistillationTrainingArguments
from .errors import ConfigurationError, TrainingDivergedError
from .losses import DistillationLossOutput, cosine_loss, distillation_loss, fused_head_distillation_loss
from .objectives import (
    PROJECTIONS_ATTRIBUTE,
    attach_projections,
    build_projections,
    capture_qkv,
    extra_losses,
    plan_objectives,
    project,
    projections_detached,
)
from .sampling import LengthGroupedBatchSampler
from .student import check_finite_weights, check_supported, mlm_head

logger = logging.getLogger(__name__)

_COMPONENTS = ("loss_ce", "loss_mlm", "loss_cos")


class _CollatorEpochCallback(TrainerCallback):
    """Tell the masking collator which epoch it is, so masks change every epoch but not on resume."""

    def __init__(self, collator):
        self.collator = collator

    def on_epoch_begin(self, args, state, control, **kwargs):
        if hasattr(self.collator, "set_epoch"):
            self.collator.set_epoch(int(math.floor((state.epoch or 0.0) + 1e-6)))


@contextlib.contextmanager
def _mlm_head_bypassed(model: PreTrainedModel):
    """Within the block, ``model(...)`` returns the last hidden state as ``logits`` (the head is an
    identity). The forward still goes through DDP; the head is applied afterwards on the positions
    that need it."""
    attribute = mlm_head(model).attribute
    head = getattr(model, attribute)
    setattr(model, attribute, nn.Identity())
    try:
        yield
    finally:
        setattr(model, attribute, head)


def _check_has_labels(batch) -> None:
    if "labels" not in batch:
        raise ConfigurationError(
            "The training batches have no 'labels' (the masked positions): pass "
            "data_collator=DataCollatorForDistillation(tokenizer, token_probs) to DistillationTrainer "
            "(see hf_eliquare.masking), or a collator of your own that masks and sets 'labels'."
        )


class DistillationTrainer(Trainer):
    """Trains ``model`` (the student) to imitate ``teacher_model`` with DistilBERT's triple loss, plus the
    optional layer-to-layer and attention terms of :mod:`hf_eliquare.objectives` when they are weighted.

    ``teacher_model`` is a ``*ForMaskedLM`` model or a Hub id / local path of one. It is put in eval
    mode, never receives gradients, is placed on the device by the accelerator in evaluation mode
    (as TRL's trainers do) and is never saved: checkpoints hold the student only.

    The vocabulary-sized terms are computed from the last hidden states at the positions that need
    them (all tokens, or the masked ones with ``restrict_ce_to_mask``), chunk by chunk
    (``args.distill_chunk_size``), so no ``B × L × V`` logits tensor exists for either model.

    Under gradient accumulation and data parallelism the loss is normalised by the number of tokens
    (and masked tokens) in the whole accumulated, global batch: accumulation of 2 × 4 gives the same
    update as one batch of 8, and 2 processes the same as one with twice the accumulation. The optional
    terms are normalised by the global token count too.

    A student narrower than the teacher is compared through learned projections (``L_cos``, ``L_hidden``);
    they are attached to the student as ``distillation_projections`` while it trains (so they are optimised,
    checkpointed and restored on resume with it) and left out by :meth:`save_model`.
    """

    _tag_names = ["hf_eliquare", "distillation", "eliquare"]

    def __init__(
        self,
        model: PreTrainedModel | None = None,
        teacher_model: PreTrainedModel | str | None = None,
        args: DistillationTrainingArguments | None = None,
        data_collator=None,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        callbacks=None,
        **kwargs,
    ):
        if args is None:  # the Trainer would create a default output directory in the working directory
            raise ConfigurationError(
                "DistillationTrainer needs args=DistillationTrainingArguments(output_dir=...): where checkpoints "
                "and the student go (and the alphas, temperature, …)."
            )
        if not isinstance(args, DistillationTrainingArguments):
            raise ConfigurationError(
                "DistillationTrainer needs DistillationTrainingArguments (alphas, temperature, …)."
            )
        if teacher_model is None:
            raise ConfigurationError(
                "DistillationTrainer needs a teacher_model (a *ForMaskedLM model, a path or a Hub id)."
            )
        if isinstance(teacher_model, str):
            from .loading import load_teacher_model

            teacher_model = load_teacher_model(teacher_model)
        check_supported(teacher_model, "teacher")
        check_supported(model, "student")
        check_finite_weights(teacher_model, "teacher")
        check_finite_weights(model, "student")
        if teacher_model.config.vocab_size != model.config.vocab_size:
            raise ConfigurationError(
                f"Teacher and student vocabularies differ ({teacher_model.config.vocab_size} vs "
                f"{model.config.vocab_size}): the distillation loss compares their distributions token by token. "
                "Create the student from this teacher (create_student), or reduce both with the same kept ids."
            )
        # Refuses impossible shapes (head counts, relation heads, layer maps) before any work.
        self.objective_plan = plan_objectives(args, teacher_model.config, model.config)
        if self.objective_plan.cos_projection:
            logger.info(
                "The student is narrower than the teacher (%d vs %d): L_cos compares the teacher's last hidden "
                "states with a learned projection of the student's.",
                model.config.hidden_size,
                teacher_model.config.hidden_size,
            )
        if args.eval_strategy != "no" and eval_dataset is None:
            raise ConfigurationError(
                f"args.eval_strategy is {str(args.eval_strategy)!r} (and load_best_model_at_end="
                f"{args.load_best_model_at_end} keeps the best validation checkpoint) but no eval_dataset was given. "
                "Pass eval_dataset=..., or set eval_strategy='no' and load_best_model_at_end=False."
            )
        if args.dataloader_pin_memory and not torch.cuda.is_available():
            args.dataloader_pin_memory = False  # pinning needs an accelerator; on CPU it only warns every run
        # On the student before the Trainer places it and builds the optimizer: trained and saved with it.
        attach_projections(model, build_projections(self.objective_plan, model.config, teacher_model.config))
        self._components = _COMPONENTS + self.objective_plan.components
        super().__init__(
            model=model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            callbacks=callbacks,
            **kwargs,
        )
        teacher_model.eval()
        teacher_model.requires_grad_(False)
        if self.is_deepspeed_enabled:
            self.teacher_model = _prepare_deepspeed_teacher(teacher_model, self.accelerator)
        else:
            self.teacher_model = self.accelerator.prepare_model(teacher_model, evaluation_mode=True)
        # Full-vocabulary logits only where the model is sharded (the head's weights must be gathered
        # by the wrapper's own forward) or when asked for with distill_chunk_size=0.
        self.use_fused_head = args.distill_chunk_size > 0 and not (self.is_deepspeed_enabled or self.is_fsdp_enabled)
        # compute_loss normalises by the accumulated (global) token counts from get_batch_samples.
        self.loss_is_scaled_for_ga = True
        # Per mode: (Σ L_ce, Σ L_mlm, Σ L_cos, Σ extra…, n_ce, n_mlm, n_tok, n_tok…) on the device, read only
        # when logging.
        self._component_sums: dict[str, torch.Tensor | None] = {"train": None, "eval": None}
        if data_collator is not None:
            self.add_callback(_CollatorEpochCallback(data_collator))

    # ------------------------------------------------------------------ batching and normalisers
    def _get_train_sampler(self, train_dataset=None):
        """``group_by_length`` (the default): :class:`LengthGroupedBatchSampler` over the dataset's ``length``
        column, seeded with ``(data_seed or seed, epoch)``; its order does not depend on the number of processes
        or on gradient accumulation. Other strategies, or a dataset without lengths, go to the Trainer."""
        dataset = self.train_dataset if train_dataset is None else train_dataset
        column = self.args.length_column_name
        if self.args.train_sampling_strategy == "group_by_length" and column in getattr(dataset, "column_names", ()):
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            return LengthGroupedBatchSampler(dataset[column], self.args.per_device_train_batch_size, seed=seed)
        return super()._get_train_sampler(train_dataset)

    def _get_eval_sampler(self, eval_dataset):
        """Validation in order of length (stable), whatever the training order: little padding, and the same
        batches — hence the same masks and a comparable validation loss — for every ``train_sampling_strategy``
        (the Trainer would otherwise use a length-grouped order only under ``group_by_length``)."""
        column = self.args.length_column_name
        if eval_dataset is not None and column in getattr(eval_dataset, "column_names", ()):
            lengths = torch.as_tensor(eval_dataset[column])
            return torch.sort(lengths, stable=True).indices.tolist()
        return super()._get_eval_sampler(eval_dataset)

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        """Also count the tokens and masked tokens of the whole accumulated (and global) batch."""
        batch_samples, _ = super().get_batch_samples(epoch_iterator, num_batches, device)
        counts = torch.zeros(2, dtype=torch.long, device=device)
        for batch in batch_samples:
            _check_has_labels(batch)
            counts[0] += batch["attention_mask"].sum().to(device)
            counts[1] += (batch["labels"] != -100).sum().to(device)
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            counts = self.accelerator.gather(counts[None]).sum(0)
        return batch_samples, counts

    # ------------------------------------------------------------------ the loss
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        args = self.args
        _check_has_labels(inputs)
        labels = inputs["labels"]
        attention_mask = inputs["attention_mask"]
        model_inputs = {k: v for k, v in inputs.items() if k != "labels"}
        global_counts = torch.is_tensor(num_items_in_batch) and num_items_in_batch.shape == (2,) and model.training
        num_tokens = num_items_in_batch[0] if global_counts else None
        num_masked = num_items_in_batch[1] if global_counts else None

        plan = self.objective_plan
        student = self.accelerator.unwrap_model(model)
        projections = getattr(student, PROJECTIONS_ATTRIBUTE, None)
        capture = contextlib.ExitStack()
        student_qkv, teacher_qkv = {}, {}
        if plan.components:
            student_qkv = capture.enter_context(capture_qkv(student, plan.student_capture_layers))
            teacher_qkv = capture.enter_context(
                capture_qkv(self.accelerator.unwrap_model(self.teacher_model), plan.teacher_capture_layers)
            )
        with capture:
            if self.use_fused_head:
                parts, student_states, teacher_states = self._fused_loss(
                    model, model_inputs, attention_mask, labels, num_tokens, num_masked, projections
                )
            else:
                student_out = model(**model_inputs, output_hidden_states=True)
                with torch.no_grad(), self.accelerator.autocast():
                    teacher_out = self.teacher_model(**model_inputs, output_hidden_states=True)
                student_states, teacher_states = student_out.hidden_states, teacher_out.hidden_states
                parts = distillation_loss(
                    student_out.logits,
                    teacher_out.logits,
                    project(projections, "cos", student_out.hidden_states[-1]),
                    teacher_out.hidden_states[-1],
                    attention_mask,
                    labels,
                    alpha_ce=args.alpha_ce,
                    alpha_mlm=args.alpha_mlm,
                    alpha_cos=args.alpha_cos,
                    temperature=args.temperature,
                    restrict_ce_to_mask=args.restrict_ce_to_mask,
                    num_tokens=num_tokens,
                    num_masked=num_masked,
                )
            if plan.components:
                extra = extra_losses(
                    plan,
                    projections,
                    student_hidden_states=student_states,
                    teacher_hidden_states=teacher_states,
                    student_qkv=student_qkv,
                    teacher_qkv=teacher_qkv,
                    attention_mask=attention_mask,
                    hidden_loss=args.hidden_loss,
                    num_tokens=num_tokens,
                )
                weights = _component_weights(args)
                total = parts.loss + sum(weights[name] * term for name, term in extra.items())
                parts = dataclasses.replace(
                    parts, loss=total, extra={name: term.detach() for name, term in extra.items()}
                )
        loss = parts.loss
        if not torch.isfinite(loss.detach()).all():
            raise TrainingDivergedError(
                f"The distillation loss became {loss.item()} at step {self.state.global_step} "
                f"(loss_ce={parts.loss_ce.item():.4g}, loss_mlm={parts.loss_mlm.item():.4g}, "
                f"loss_cos={parts.loss_cos.item():.4g}"
                + "".join(f", {name}={term.item():.4g}" for name, term in parts.extra.items())
                + "). Nothing was written for this step; the checkpoints in "
                f"{args.output_dir} are from before it. Lower --learning_rate, use --bf16 instead of --fp16, "
                "check the teacher's outputs on this batch (overflowing activations), and resume from the last "
                "checkpoint with --resume_from_checkpoint."
            )
        self._record_components(parts, attention_mask, labels, num_tokens, num_masked)
        if global_counts and args.average_tokens_across_devices and args.world_size > 1:
            # DDP averages gradients over processes; the loss is already normalised by global counts.
            loss = loss * self.accelerator.num_processes
        return (loss, parts) if return_outputs else loss

    def _fused_loss(self, model, model_inputs, attention_mask, labels, num_tokens, num_masked, projections=None):
        """The triple loss with the chunked head; also returns both models' ``hidden_states`` (``None`` unless
        the layer-to-layer loss needs them)."""
        args = self.args
        student = self.accelerator.unwrap_model(model)
        teacher = self.accelerator.unwrap_model(self.teacher_model)
        all_states = self.objective_plan.hidden
        with _mlm_head_bypassed(student):
            student_out = model(**model_inputs, output_hidden_states=all_states)
        student_last = student_out.logits  # (B, L, D): the head is an identity here
        # The accelerator's autocast wraps only the prepared models' own forward; the teacher's encoder
        # and both heads are called directly, so mixed precision is applied to them here.
        autocast = self.accelerator.autocast
        with torch.no_grad(), autocast():
            teacher_out = teacher.base_model(**model_inputs, output_hidden_states=all_states)
        teacher_last = teacher_out.last_hidden_state  # (B, L, D)

        tokens = attention_mask.bool()
        masked = labels != -100
        ce_rows = masked if args.restrict_ce_to_mask else tokens
        zero = student_last.new_zeros((), dtype=torch.float32)
        loss_cos = (
            cosine_loss(project(projections, "cos", student_last[tokens]), teacher_last[tokens], num_tokens)
            if args.alpha_cos > 0
            else zero
        )
        if args.alpha_ce > 0 or args.alpha_mlm > 0:
            rows = ce_rows | masked if args.alpha_ce > 0 else masked
            s_head, t_head = mlm_head(student), mlm_head(teacher)
            with autocast():
                s_hidden = s_head.transform(student_last[rows])  # (N, D)
                with torch.no_grad():
                    t_hidden = t_head.transform(teacher_last[rows])
            weighted, loss_ce, loss_mlm = fused_head_distillation_loss(
                s_hidden,
                s_head.decoder.weight,
                s_head.decoder.bias,
                t_hidden,
                t_head.decoder.weight,
                t_head.decoder.bias,
                labels[rows],
                ce_rows[rows],
                alpha_ce=args.alpha_ce,
                alpha_mlm=args.alpha_mlm,
                temperature=args.temperature,
                num_ce=num_masked if args.restrict_ce_to_mask else num_tokens,
                num_masked=num_masked,
                chunk_size=args.distill_chunk_size,
            )
        else:
            weighted, loss_ce, loss_mlm = zero, zero, zero
        parts = DistillationLossOutput(
            weighted + args.alpha_cos * loss_cos, loss_ce.detach(), loss_mlm.detach(), loss_cos.detach()
        )
        return parts, student_out.hidden_states, teacher_out.hidden_states

    # ------------------------------------------------------------------ logging
    def _record_components(self, parts, attention_mask, labels, num_tokens, num_masked):
        """Keep sums and counts so logged parts are exact token-weighted means over the log window.

        Everything stays on the device (no synchronisation in the training step)."""
        dtype = torch.float32 if parts.loss.device.type == "mps" else torch.float64
        n_tok = attention_mask.sum().to(dtype)
        n_mask = (labels != -100).sum().to(dtype)
        n_ce = n_mask if self.args.restrict_ce_to_mask else n_tok
        # Parts were divided by the global (num_*) or the local count; undo that to get local sums.
        d_tok = n_tok if num_tokens is None else num_tokens.to(dtype)
        d_mask = n_mask if num_masked is None else num_masked.to(dtype)
        d_ce = d_mask if self.args.restrict_ce_to_mask else d_tok
        d_tok, d_mask, d_ce = (x.clamp(min=1) for x in (d_tok, d_mask, d_ce))
        extra = [parts.extra[name].to(dtype) * d_tok for name in self._components[3:]]  # all per token
        record = torch.stack(
            [
                parts.loss_ce.to(dtype) * d_ce,
                parts.loss_mlm.to(dtype) * d_mask,
                parts.loss_cos.to(dtype) * d_tok,
                *extra,
                n_ce,
                n_mask,
                n_tok,
                *[n_tok] * len(extra),
            ]
        )
        mode = "train" if self.model.training else "eval"
        current = self._component_sums[mode]
        self._component_sums[mode] = record if current is None else current + record.to(current.device)

    def _reduced_components(self, mode: str) -> dict[str, float]:
        sums = self._component_sums[mode]
        self._component_sums[mode] = None
        k = len(self._components)
        if self.args.world_size > 1:
            local = sums if sums is not None else torch.zeros(2 * k, dtype=torch.float64)
            sums = self.accelerator.reduce(local.to(self.args.device), reduction="sum")
        if sums is None or float(sums[k:].sum()) == 0:
            return {}
        values = sums[:k] / sums[k:].clamp(min=1)
        return dict(zip(self._components, values.tolist()))

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add ``loss_ce``, ``loss_mlm``, ``loss_cos`` and the optional terms that are on (``loss_hidden``,
        ``loss_attn``, ``loss_rel``; ``eval_*`` in evaluation) to the Trainer's logs.

        In evaluation ``eval_loss`` becomes the token-weighted validation distillation loss
        ``α_ce·L_ce + α_mlm·L_mlm + α_cos·L_cos (+ α·L of the optional terms)`` over the whole validation set
        (the Trainer's own value averages per-batch means), so ``metric_for_best_model="loss"`` picks the best
        epoch.
        """
        is_eval = any(key.startswith("eval_") for key in logs)
        mode = "eval" if is_eval else "train"
        if mode == "train" and "loss" not in logs:
            super().log(logs, start_time)
            return
        components = self._reduced_components(mode)
        if components:
            if is_eval:
                weights = _component_weights(self.args)
                logs["eval_loss"] = sum(weights[name] * value for name, value in components.items())
                logs.update({f"eval_{k}": v for k, v in components.items()})
            else:
                logs.update(components)
        super().log(logs, start_time)

    # ------------------------------------------------------------------ saving
    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        """Checkpoints (``_internal_call``) keep the learned projections, for resuming; a model saved by the user
        is the plain student without them."""
        if _internal_call:
            return super().save_model(output_dir, _internal_call)
        with projections_detached(self.accelerator.unwrap_model(self.model)):
            return super().save_model(output_dir, _internal_call)

    def push_to_hub(self, *args, **kwargs):
        """The Hub gets the plain student, without the learned projections (the Trainer saves it as a checkpoint
        first, which would keep them)."""
        with projections_detached(self.accelerator.unwrap_model(self.model)):
            return super().push_to_hub(*args, **kwargs)

    # ------------------------------------------------------------------ evaluation
    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Loss only: full-vocabulary logits of a validation set are never gathered."""
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    def get_eval_dataloader(self, eval_dataset=None):
        """Validation masks are the same every epoch (epoch −1), so validation losses are comparable."""
        collator = self.data_collator
        if hasattr(collator, "set_epoch"):
            self.data_collator = dataclasses.replace(collator, epoch=-1)
        try:
            return super().get_eval_dataloader(eval_dataset)
        finally:
            self.data_collator = collator


def _component_weights(args: DistillationTrainingArguments) -> dict[str, float]:
    return {
        "loss_ce": args.alpha_ce,
        "loss_mlm": args.alpha_mlm,
        "loss_cos": args.alpha_cos,
        "loss_hidden": args.alpha_hidden,
        "loss_attn": args.alpha_attn,
        "loss_rel": args.alpha_rel,
    }


def _prepare_deepspeed_teacher(model: nn.Module, accelerator) -> nn.Module:
    """Wrap the frozen teacher in a DeepSpeed inference engine with the student's ZeRO config (as TRL)."""
    import copy

    import deepspeed

    plugin = accelerator.state.deepspeed_plugin
    config = copy.deepcopy(plugin.deepspeed_config)
    stage = config.get("zero_optimization", {}).get("stage", 0)
    if stage != 3:
        config["zero_optimization"] = {"stage": 0}
    config.pop("optimizer", None)
    config.pop("scheduler", None)
    engine, *_ = deepspeed.initialize(model=model, config=config)
    engine.eval()
    return engine
