"""Masked-LM pretraining from random initialisation: the study's teacher and its MLM-only baseline.

    python -m reproduction.mlm SPEC.json RESULT.json

Why a dedicated script and not ``DistillationTrainer(alpha_ce=alpha_cos=0)``: the distillation
trainer needs a teacher (it runs it on every batch even when only the MLM term is weighted) and
creates its student by copying teacher layers, whereas both the study's teacher and the "same
architecture, MLM only, from random initialisation" baseline start from a *random* BERT with no
teacher at all. What is shared with the package is what defines the objective: its masking collator
(:class:`hf_eliquare.DataCollatorForDistillation`: exactly 15 % of the eligible tokens, 80/10/10,
masks seeded by batch content so a resumed run masks the same way), its sentence tokenisation
(:func:`hf_eliquare.data.tokenize_sentences`) and transformers' ``Trainer`` (checkpoints, resume,
schedule, group-by-length batches).

The vocabulary head is applied at the masked positions only (~15 % of the tokens): the same loss as
``BertForMaskedLM(labels=...)``, several times cheaper when the ``hidden × vocab`` decoder dominates.

``init_from`` (a model directory) starts from those weights instead of a random initialisation: the second
phase of a teacher whose first phase ended on the MLM loss plateau (fresh optimizer and schedule).

Resumable: checkpoints go to ``work_dir`` every ``save_steps``; a new run resumes from the newest
complete one (SIGKILL-safe, as the Trainer writes ``trainer_state.json`` last). The final model is
written to a temporary directory and renamed to ``output_dir`` only when complete.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sys
import tempfile
import time

import torch
from datasets import Dataset, concatenate_datasets
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, Trainer, TrainerCallback, TrainingArguments

from hf_eliquare.data import token_counts, tokenize_sentences
from hf_eliquare.masking import DataCollatorForDistillation, mlm_token_probs

_CHECKPOINT = re.compile(r"checkpoint-(\d+)")
ELAPSED_FILE = "repro_elapsed.json"


def read_lines(path: str) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return [line.strip() for line in handle if line.strip()]


def tokenize_file(path: str, tokenizer, max_seq_length: int, min_seq_length: int) -> Dataset:
    sentences = Dataset.from_dict({"text": read_lines(path)})
    return tokenize_sentences(sentences, tokenizer, max_seq_length=max_seq_length, min_seq_length=min_seq_length)


def last_complete_checkpoint(work_dir: str) -> str | None:
    if not os.path.isdir(work_dir):
        return None
    steps = sorted(
        (int(m.group(1)), name) for name in os.listdir(work_dir) if (m := _CHECKPOINT.fullmatch(name)) is not None
    )
    for _, name in reversed(steps):
        path = os.path.join(work_dir, name)
        if os.path.isfile(os.path.join(path, "trainer_state.json")) and os.path.isfile(
            os.path.join(path, ELAPSED_FILE)
        ):
            return path
    return None


class MaskedPositionsTrainer(Trainer):
    """MLM loss with the decoder applied at the masked positions only; counts the useful tokens."""

    useful_tokens = 0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        if model.training:
            self.useful_tokens += int(inputs["attention_mask"].sum())
        hidden = model.bert(**inputs).last_hidden_state  # (B, L, H)
        selected = labels != -100
        logits = model.cls(hidden[selected])  # (n_masked, V)
        loss = torch.nn.functional.cross_entropy(logits, labels[selected])
        return (loss, {"logits": logits}) if return_outputs else loss


class CumulativeClock(TrainerCallback):
    """Training seconds and useful tokens summed over all sessions of a resumed run, saved in every
    checkpoint (``repro_elapsed.json``) so that the cost survives interruptions."""

    def __init__(self, trainer: MaskedPositionsTrainer, collator: DataCollatorForDistillation, previous: dict):
        self.trainer, self.collator = trainer, collator
        self.previous_s = previous.get("train_seconds", 0.0)
        self.trainer.useful_tokens = previous.get("useful_tokens", 0)
        self.started = time.time()

    def total(self) -> dict:
        return {
            "train_seconds": self.previous_s + time.time() - self.started,
            "useful_tokens": self.trainer.useful_tokens,
        }

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.collator.set_epoch(int(state.epoch or 0))  # new masks each epoch (as the package's trainer)

    def on_save(self, args, state, control, **kwargs):
        path = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        if os.path.isdir(path):
            with open(os.path.join(path, ELAPSED_FILE), "w") as handle:
                json.dump(self.total(), handle)


@torch.no_grad()
def evaluate_mlm(model, collator: DataCollatorForDistillation, dataset: Dataset, batch_size: int = 64) -> dict:
    """Masked-token cross-entropy (nats) and accuracy on ``dataset`` with fixed masks (collator seed, epoch
    999_999): the same positions are masked on every call, so numbers are comparable between models."""
    model.eval()
    saved_epoch = collator.epoch
    collator.set_epoch(999_999)
    order = sorted(range(len(dataset)), key=lambda i: dataset[i]["length"])
    loss_sum, correct, count = 0.0, 0, 0
    for start in range(0, len(order), batch_size):
        batch = collator([dataset[i] for i in order[start : start + batch_size]])
        labels = batch.pop("labels")
        hidden = model.bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        selected = labels != -100
        logits = model.cls(hidden[selected])
        gold = labels[selected]
        loss_sum += float(torch.nn.functional.cross_entropy(logits, gold, reduction="sum"))
        correct += int((logits.argmax(-1) == gold).sum())
        count += int(gold.numel())
    collator.set_epoch(saved_epoch)
    return {
        "mlm_loss": round(loss_sum / max(count, 1), 4),
        "masked_token_accuracy": round(correct / max(count, 1), 4),
        "masked_tokens": count,
        "sequences": len(dataset),
    }


def pretrain(spec: dict) -> dict:
    torch.set_num_threads(int(spec.get("threads") or torch.get_num_threads()))
    train_cfg, model_cfg = spec["train"], spec["model"]
    seed = int(train_cfg["seed"])
    tokenizer = AutoTokenizer.from_pretrained(spec["tokenizer"])
    max_len, min_len = int(model_cfg["max_position_embeddings"]), int(train_cfg.get("min_seq_length", 8))
    train_parts = {
        lang: tokenize_file(path, tokenizer, max_len, min_len) for lang, path in spec["train_files"].items()
    }
    validation = {
        lang: tokenize_file(path, tokenizer, max_len, min_len) for lang, path in spec["validation_files"].items()
    }
    train_dataset = concatenate_datasets(list(train_parts.values())).shuffle(seed=seed)
    counts = token_counts(train_dataset, len(tokenizer))
    collator = DataCollatorForDistillation(
        tokenizer=tokenizer,
        token_probs=mlm_token_probs(counts, tokenizer.all_special_ids, smoothing=float(train_cfg["mlm_smoothing"])),
        mlm_probability=float(train_cfg.get("mlm_probability", 0.15)),
        seed=seed,
    )

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=int(model_cfg["hidden_size"]),
        num_hidden_layers=int(model_cfg["num_hidden_layers"]),
        num_attention_heads=int(model_cfg["num_attention_heads"]),
        intermediate_size=int(model_cfg["intermediate_size"]),
        max_position_embeddings=max_len,
        pad_token_id=tokenizer.pad_token_id,
    )
    if spec.get("init_from"):
        model = BertForMaskedLM.from_pretrained(spec["init_from"])
        for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"):
            if getattr(model.config, key) != getattr(config, key):
                raise ValueError(
                    f"init_from {spec['init_from']}: {key} {getattr(model.config, key)} != {getattr(config, key)}"
                )
    else:
        model = BertForMaskedLM(config)

    work_dir = spec["work_dir"]
    os.makedirs(work_dir, exist_ok=True)
    resume = last_complete_checkpoint(work_dir)
    previous = {}
    if resume:
        with open(os.path.join(resume, ELAPSED_FILE)) as handle:
            previous = json.load(handle)
        print(f"Resuming from {resume}", flush=True)
    args = TrainingArguments(
        output_dir=work_dir,
        max_steps=int(train_cfg["max_steps"]),
        per_device_train_batch_size=int(train_cfg["batch_size"]),
        learning_rate=float(train_cfg["learning_rate"]),
        weight_decay=float(train_cfg.get("weight_decay", 0.01)),
        warmup_steps=int(train_cfg.get("warmup_steps", 0)),
        max_grad_norm=float(train_cfg.get("max_grad_norm", 1.0)),
        lr_scheduler_type="linear",
        logging_steps=int(train_cfg.get("logging_steps", 50)),
        save_strategy="steps",
        save_steps=int(train_cfg.get("save_steps", 200)),
        save_total_limit=2,
        eval_strategy="no",
        report_to="none",
        seed=seed,
        dataloader_num_workers=0,
        remove_unused_columns=False,
        train_sampling_strategy="group_by_length",
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
    )
    trainer = MaskedPositionsTrainer(
        model=model, args=args, data_collator=collator, train_dataset=train_dataset, processing_class=tokenizer
    )
    clock = CumulativeClock(trainer, collator, previous)
    trainer.add_callback(clock)
    trainer.train(resume_from_checkpoint=resume)
    totals = clock.total()

    per_language = {lang: evaluate_mlm(trainer.model, collator, ds) for lang, ds in validation.items()}
    all_masked = sum(v["masked_tokens"] for v in per_language.values())
    overall = {
        "mlm_loss": round(sum(v["mlm_loss"] * v["masked_tokens"] for v in per_language.values()) / all_masked, 4),
        "masked_token_accuracy": round(
            sum(v["masked_token_accuracy"] * v["masked_tokens"] for v in per_language.values()) / all_masked, 4
        ),
    }
    curve = [
        {"step": e["step"], "loss": round(e["loss"], 4)}
        for e in trainer.state.log_history
        if "loss" in e and "step" in e
    ]

    output_dir = spec["output_dir"]
    parent = os.path.dirname(os.path.abspath(output_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".mlm-final-", dir=parent)
    try:
        trainer.model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if os.path.isdir(output_dir):
            shutil.rmtree(output_dir)
        os.replace(tmp, output_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not spec.get("keep_checkpoints", False):
        shutil.rmtree(work_dir, ignore_errors=True)
    return {
        "parameters": trainer.model.num_parameters(),
        "vocab_size": len(tokenizer),
        "uniform_guess_loss": round(math.log(len(tokenizer)), 4),
        "global_steps": trainer.state.global_step,
        "train_sequences": {lang: len(ds) for lang, ds in train_parts.items()},
        "train_tokens": int(counts.sum()),
        "train_seconds": round(totals["train_seconds"], 1),
        "useful_tokens": int(totals["useful_tokens"]),
        "useful_tokens_per_s": round(totals["useful_tokens"] / max(totals["train_seconds"], 1e-9), 1),
        "validation": per_language,
        "validation_overall": overall,
        "loss_curve": curve,
        "torch_threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m reproduction.mlm SPEC.json RESULT.json", file=sys.stderr)
        return 2
    with open(argv[0]) as handle:
        spec = json.load(handle)
    result = pretrain(spec)
    tmp = argv[1] + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(result, handle, indent=2)
    os.replace(tmp, argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
