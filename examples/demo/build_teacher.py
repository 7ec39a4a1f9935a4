#!/usr/bin/env python
"""Build the demo's tiny BERT teacher: MLM-train it briefly on the shipped Slovene sample.

    python examples/demo/build_teacher.py            # → examples/demo/teacher/ (skipped if already built)
    python examples/demo/build_teacher.py --force    # rebuild

The embedded demo distils a student out of a teacher, and a random teacher would give the student
nothing to learn. mBERT itself cannot be downloaded offline, so this script makes a stand-in: a
4-layer BERT (hidden 128, 4 heads, intermediate 256, 128 positions) over the demo tokenizer (real
mBERT pieces, ``examples/demo/tokenizer``), trained with the Trainer and
``DataCollatorForLanguageModeling`` on the *training* split of the sample — the same seeded 90:10
split, built by ``hf_eliquare.data.build_mlm_datasets``, that the distillation run uses, so neither
run sees the validation sentences. It prints the validation MLM loss before and after training (same
masks both times) and records both in ``teacher/demo_teacher.json``.

Needs no network and no ``../shared``. Seeded; about a minute on 2 CPU cores. Written into a
temporary directory next to the target and renamed at the end.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertForMaskedLM,
    DataCollatorForLanguageModeling,
    Trainer,
    TrainingArguments,
    set_seed,
)

from hf_eliquare.cli import parse_args, run_main, setup_logging
from hf_eliquare.data import build_mlm_datasets

logger = logging.getLogger("build_teacher")

DEMO_DIR = Path(__file__).resolve().parent


@dataclass
class TeacherArguments:
    """What to build and how long to train it."""

    output_dir: str = field(default=str(DEMO_DIR / "teacher"), metadata={"help": "Where the teacher goes."})
    tokenizer: str = field(default=str(DEMO_DIR / "tokenizer"), metadata={"help": "The demo tokenizer."})
    train_file: str = field(default=str(DEMO_DIR / "data" / "sl_sample.txt"), metadata={"help": "Text sample."})
    force: bool = field(default=False, metadata={"help": "Rebuild even if the teacher already exists."})
    hidden_size: int = 128
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    intermediate_size: int = 256
    max_position_embeddings: int = 128
    num_train_epochs: float = field(default=3.0, metadata={"help": "MLM epochs over the training split."})
    per_device_train_batch_size: int = 32
    group_by_length: bool = field(default=True, metadata={"help": "Batches of similar lengths (less padding)."})
    learning_rate: float = 2e-3
    seed: int = field(default=42, metadata={"help": "Also the seed of the 90:10 split (as in the demo config)."})


class MaskedPositionsTrainer(Trainer):
    """MLM loss with the vocabulary head applied at the masked positions only (~15%), not at every
    position: the same loss as ``BertForMaskedLM(labels=...)``, about 3x cheaper on this tiny model,
    whose cost is dominated by the ``hidden × vocab`` decoder."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        hidden = model.bert(**inputs).last_hidden_state  # (B, L, H)
        selected = labels != -100
        logits = model.cls(hidden[selected])  # (n_masked, V)
        loss = torch.nn.functional.cross_entropy(logits, labels[selected])
        return (loss, {"logits": logits}) if return_outputs else loss


def masked_lm_loss(trainer: Trainer, dataset, seed: int) -> float:
    """Validation MLM loss with masks drawn from ``seed`` (the same masks on every call)."""
    torch.manual_seed(seed)
    return trainer.evaluate(dataset)["eval_loss"]


def is_built(path: str) -> bool:
    return all(os.path.isfile(os.path.join(path, name)) for name in ("config.json", "model.safetensors"))


def main(argv: list[str] | None = None):
    setup_logging()
    (args,) = parse_args(TeacherArguments, argv)  # the package's one argument rule
    if is_built(args.output_dir) and not args.force:
        logger.info("The demo teacher already exists in %s; nothing to do (pass --force to rebuild).", args.output_dir)
        return None

    set_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    datasets = build_mlm_datasets(
        tokenizer, train_files=[args.train_file], max_seq_length=args.max_position_embeddings, seed=args.seed
    )
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=args.hidden_size,
        num_hidden_layers=args.num_hidden_layers,
        num_attention_heads=args.num_attention_heads,
        intermediate_size=args.intermediate_size,
        max_position_embeddings=args.max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = BertForMaskedLM(config)

    parent = os.path.dirname(os.path.abspath(args.output_dir))
    os.makedirs(parent, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix=".tmp-teacher-", dir=parent)
    try:
        training_args = TrainingArguments(
            output_dir=os.path.join(tmp_dir, "trainer"),
            num_train_epochs=args.num_train_epochs,
            per_device_train_batch_size=args.per_device_train_batch_size,
            per_device_eval_batch_size=64,
            learning_rate=args.learning_rate,
            weight_decay=0.01,
            warmup_steps=0.06,
            lr_scheduler_type="linear",
            logging_steps=25,
            eval_strategy="no",
            save_strategy="no",
            report_to="none",
            seed=args.seed,
            dataloader_num_workers=0,
            # Batches of similar lengths (DistilBERT's group_by_size): ~2.4x fewer padded positions.
            train_sampling_strategy="group_by_length" if args.group_by_length else "random",
            disable_tqdm=True,
        )
        trainer = MaskedPositionsTrainer(
            model=model,
            args=training_args,
            data_collator=DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15),
            train_dataset=datasets["train"],
            processing_class=tokenizer,
        )
        loss_before = masked_lm_loss(trainer, datasets["validation"], args.seed)
        started = time.time()
        trainer.train()
        runtime = time.time() - started
        loss_after = masked_lm_loss(trainer, datasets["validation"], args.seed)
        logger.info(
            "Validation MLM loss: %.3f before → %.3f after training (perplexity %.0f → %.0f; uniform guess: ln %d = %.2f)",
            loss_before,
            loss_after,
            math.exp(loss_before),
            math.exp(loss_after),
            len(tokenizer),
            math.log(len(tokenizer)),
        )

        final = os.path.join(tmp_dir, "final")
        trainer.save_model(final)
        tokenizer.save_pretrained(final)
        leftover = os.path.join(final, "training_args.bin")
        if os.path.exists(leftover):
            os.remove(leftover)
        record = {
            "what": "tiny MLM teacher for the embedded demo (not a useful Slovene model)",
            "train_sequences": len(datasets["train"]),
            "validation_sequences": len(datasets["validation"]),
            "validation_mlm_loss_before": round(loss_before, 4),
            "validation_mlm_loss_after": round(loss_after, 4),
            "train_runtime_s": round(runtime, 1),
            "global_steps": trainer.state.global_step,
            "arguments": {k: v for k, v in vars(args).items() if k not in ("output_dir", "force")},
            "torch_threads": torch.get_num_threads(),
        }
        with open(os.path.join(final, "demo_teacher.json"), "w") as handle:
            json.dump(record, handle, indent=2)
        if os.path.isdir(args.output_dir):
            shutil.rmtree(args.output_dir)
        os.replace(final, args.output_dir)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    logger.info("Demo teacher saved to %s", args.output_dir)
    return record


if __name__ == "__main__":
    run_main(main)
