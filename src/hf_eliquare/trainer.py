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
    """Trains ``model`` (the student) to imitate ``teacher_model`` with DistilBERT's triple loss.

    ``teacher_model`` is a ``*ForMaskedLM`` model or a Hub id / local path of one. It is put in eval
    mode, never receives gradients, is placed on the device by the accelerator in evaluation mode
    (as TRL's trainers do) and is never saved: checkpoints hold the student only.

    The vocabulary-sized terms are computed from the last hidden states at the positions that need
    them (all tokens, or the masked ones with ``restrict_ce_to_mask``), chunk by chunk
    (``args.distill_chunk_size``), so no ``B × L × V`` logits tensor exists for either model.

    Under gradient accumulation and data parallelism the loss is normalised by the number of tokens
    (and masked tokens) in the whole accumulated, global batch: accumulation of 2 × 4 gives the same
    update as one batch of 8, and 2 processes the same as one with twice the accumulation.
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
        if args.alpha_cos > 0 and teacher_model.config.hidden_size != model.config.hidden_size:
            raise ConfigurationError(
                f"alpha_cos > 0 needs equal hidden sizes (teacher {teacher_model.config.hidden_size}, student "
                f"{model.config.hidden_size}). Set alpha_cos=0 or use a student of the teacher's width."
            )
        if args.eval_strategy != "no" and eval_dataset is None:
            raise ConfigurationError(
                f"args.eval_strategy is {str(args.eval_strategy)!r} (and load_best_model_at_end="
                f"{args.load_best_model_at_end} keeps the best validation checkpoint) but no eval_dataset was given. "
                "Pass eval_dataset=..., or set eval_strategy='no' and load_best_model_at_end=False."
            )
        if args.dataloader_pin_memory and not torch.cuda.is_available():
            args.dataloader_pin_memory = False  # pinning needs an accelerator; on CPU it only warns every run
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
        # Per mode: (Σ L_ce, Σ L_mlm, Σ L_cos, n_ce, n_mlm, n_tok) on the device, read only when logging.
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

        if self.use_fused_head:
            parts = self._fused_loss(model, model_inputs, attention_mask, labels, num_tokens, num_masked)
        else:
            student_out = model(**model_inputs, output_hidden_states=True)
            with torch.no_grad(), self.accelerator.autocast():
                teacher_out = self.teacher_model(**model_inputs, output_hidden_states=True)
            parts = distillation_loss(
                student_out.logits,
                teacher_out.logits,
                student_out.hidden_states[-1],
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
        loss = parts.loss
        if not torch.isfinite(loss.detach()).all():
            raise TrainingDivergedError(
                f"The distillation loss became {loss.item()} at step {self.state.global_step} "
                f"(loss_ce={parts.loss_ce.item():.4g}, loss_mlm={parts.loss_mlm.item():.4g}, "
                f"loss_cos={parts.loss_cos.item():.4g}). Nothing was written for this step; the checkpoints in "
                f"{args.output_dir} are from before it. Lower --learning_rate, use --bf16 instead of --fp16, "
                "check the teacher's outputs on this batch (overflowing activations), and resume from the last "
                "checkpoint with --resume_from_checkpoint."
            )
        self._record_components(parts, attention_mask, labels, num_tokens, num_masked)
        if global_counts and args.average_tokens_across_devices and args.world_size > 1:
            # DDP averages gradients over processes; the loss is already normalised by global counts.
            loss = loss * self.accelerator.num_processes
        return (loss, parts) if return_outputs else loss

    def _fused_loss(self, model, model_inputs, attention_mask, labels, num_tokens, num_masked):
        args = self.args
        student = self.accelerator.unwrap_model(model)
        teacher = self.accelerator.unwrap_model(self.teacher_model)
        with _mlm_head_bypassed(student):
            student_last = model(**model_inputs).logits  # (B, L, D): the head is an identity here
        # The accelerator's autocast wraps only the prepared models' own forward; the teacher's encoder
        # and both heads are called directly, so mixed precision is applied to them here.
        autocast = self.accelerator.autocast
        with torch.no_grad(), autocast():
            teacher_last = teacher.base_model(**model_inputs).last_hidden_state  # (B, L, D)

        tokens = attention_mask.bool()
        masked = labels != -100
        ce_rows = masked if args.restrict_ce_to_mask else tokens
        zero = student_last.new_zeros((), dtype=torch.float32)
        loss_cos = cosine_loss(student_last[tokens], teacher_last[tokens], num_tokens) if args.alpha_cos > 0 else zero
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
        return DistillationLossOutput(
            weighted + args.alpha_cos * loss_cos, loss_ce.detach(), loss_mlm.detach(), loss_cos.detach()
        )

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
        record = torch.stack(
            [
                parts.loss_ce.to(dtype) * d_ce,
                parts.loss_mlm.to(dtype) * d_mask,
                parts.loss_cos.to(dtype) * d_tok,
                n_ce,
                n_mask,
                n_tok,
            ]
        )
        mode = "train" if self.model.training else "eval"
        current = self._component_sums[mode]
        self._component_sums[mode] = record if current is None else current + record.to(current.device)

    def _reduced_components(self, mode: str) -> dict[str, float]:
        sums = self._component_sums[mode]
        self._component_sums[mode] = None
        if self.args.world_size > 1:
            local = sums if sums is not None else torch.zeros(6, dtype=torch.float64)
            sums = self.accelerator.reduce(local.to(self.args.device), reduction="sum")
        if sums is None or float(sums[3:].sum()) == 0:
            return {}
        values = sums[:3] / sums[3:].clamp(min=1)
        return dict(zip(_COMPONENTS, values.tolist()))

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add ``loss_ce``, ``loss_mlm``, ``loss_cos`` (``eval_*`` in evaluation) to the Trainer's logs.

        In evaluation ``eval_loss`` becomes the token-weighted validation distillation loss
        ``α_ce·L_ce + α_mlm·L_mlm + α_cos·L_cos`` over the whole validation set (the Trainer's own
        value averages per-batch means), so ``metric_for_best_model="loss"`` picks the best epoch.
        """
        is_eval = any(key.startswith("eval_") for key in logs)
        mode = "eval" if is_eval else "train"
        if mode == "train" and "loss" not in logs:
            super().log(logs, start_time)
            return
        components = self._reduced_components(mode)
        if components:
            if is_eval:
                a = self.args
                logs["eval_loss"] = (
                    a.alpha_ce * components["loss_ce"]
                    + a.alpha_mlm * components["loss_mlm"]
                    + a.alpha_cos * components["loss_cos"]
                )
                logs.update({f"eval_{k}": v for k, v in components.items()})
            else:
                logs.update(components)
        super().log(logs, start_time)

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
