"""DistillationTrainer: exact loss, gradient accumulation, training, checkpoints."""

import os

import numpy as np
import pytest
import torch
from conftest import tiny_bert, tiny_xlmr
from datasets import Dataset
from reference_distiller import reference_step_loss
from safetensors import safe_open

from hf_eliquare import (
    DataCollatorForDistillation,
    DistillationTrainer,
    DistillationTrainingArguments,
    create_student,
)
from hf_eliquare.masking import mlm_token_probs

VOCAB = 97


class Tok:
    pad_token_id = 0
    mask_token_id = 3
    all_special_ids = [0, 1, 2, 3]

    def save_pretrained(self, path):  # the Trainer saves the collator's tokenizer with checkpoints
        return ()


def premasked_batch(seed=0, batch=4, pad_id=0):
    """A padded batch with fixed MLM labels (variable lengths, so per-batch means differ)."""
    g = torch.Generator().manual_seed(seed)
    lengths = [12, 7, 9, 5, 11, 6, 8, 10][:batch]
    width = max(lengths)
    ids = torch.full((batch, width), pad_id)
    mask = torch.zeros(batch, width, dtype=torch.long)
    labels = torch.full((batch, width), -100)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(4, VOCAB, (n,), generator=g)
        ids[i, 0], ids[i, n - 1] = 1, 2
        mask[i, :n] = 1
        pos = torch.randperm(n - 2, generator=g)[: max(1, n // 4)] + 1
        labels[i, pos] = ids[i, pos]
        ids[i, pos[0]] = 3
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def make_args(tmp_path, **overrides):
    defaults = dict(
        output_dir=str(tmp_path / "out"),
        report_to="none",
        per_device_train_batch_size=4,
        gradient_accumulation_steps=1,
        num_train_epochs=1,
        eval_strategy="no",
        save_strategy="no",
        load_best_model_at_end=False,
        logging_steps=1,
        use_cpu=True,
        seed=0,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    defaults.update(overrides)
    return DistillationTrainingArguments(**defaults)


@pytest.mark.parametrize("make", [tiny_bert, tiny_xlmr], ids=["bert", "xlm-roberta"])
@pytest.mark.parametrize("restrict", [False, True])
@pytest.mark.parametrize("chunk", [0, 5])
def test_compute_loss_matches_reference_distiller(tmp_path, make, restrict, chunk):
    teacher = make(vocab_size=VOCAB, layers=4, seed=1)
    student = create_student(teacher, num_layers=2)
    with torch.no_grad():  # make the student differ from the teacher's copy
        for p in student.parameters():
            p.add_(0.05 * torch.randn_like(p))
    args = make_args(tmp_path, restrict_ce_to_mask=restrict, distill_chunk_size=chunk)
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args)
    batch = premasked_batch(seed=2)
    if make is tiny_xlmr:
        batch["input_ids"][batch["attention_mask"] == 0] = 1  # XLM-R pads with id 1
    student.train()
    loss, parts = trainer.compute_loss(student, dict(batch), return_outputs=True)
    ref_loss, ref_ce, ref_mlm, ref_cos = reference_step_loss(
        student, teacher, batch["input_ids"], batch["attention_mask"], batch["labels"], restrict_ce_to_mask=restrict
    )
    assert abs(loss.item() - ref_loss.item()) <= 1e-5
    assert abs(parts.loss_ce.item() - ref_ce.item()) <= 1e-5
    assert abs(parts.loss_mlm.item() - ref_mlm.item()) <= 1e-5
    assert abs(parts.loss_cos.item() - ref_cos.item()) <= 1e-5
    # and the same gradients as back-propagating the literal formula
    loss.backward()
    ours = {n: p.grad.clone() for n, p in student.named_parameters() if p.grad is not None}
    student.zero_grad()
    ref_loss.backward()
    for name, p in student.named_parameters():
        if p.grad is not None:
            assert torch.allclose(ours[name], p.grad, atol=1e-5, rtol=1e-4), name


class ListDataset(torch.utils.data.Dataset):
    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def rows_of(batch):
    return [{k: v[i] for k, v in batch.items()} for i in range(batch["input_ids"].shape[0])]


def stack_rows(rows):
    return {k: torch.stack([r[k] for r in rows]) for k in rows[0]}


def one_sgd_step(tmp_path, name, rows, batch_size, accumulation):
    teacher = tiny_bert(vocab_size=VOCAB, layers=4, seed=1)
    torch.manual_seed(5)
    student = create_student(teacher, num_layers=2)
    args = make_args(
        tmp_path / name,
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=accumulation,
        optim="sgd",
        learning_rate=0.5,
        warmup_steps=0,
        lr_scheduler_type="constant",
        max_grad_norm=1e9,
        train_sampling_strategy="sequential",
        max_steps=1,
    )
    trainer = DistillationTrainer(
        model=student, teacher_model=teacher, args=args, train_dataset=ListDataset(rows), data_collator=stack_rows
    )
    result = trainer.train()
    return student, result.training_loss


def test_gradient_accumulation_equals_large_batch(tmp_path):
    rows = rows_of(premasked_batch(seed=3, batch=8))
    big, loss_big = one_sgd_step(tmp_path, "big", rows, batch_size=8, accumulation=1)
    acc, loss_acc = one_sgd_step(tmp_path, "acc", rows, batch_size=4, accumulation=2)
    assert abs(loss_big - loss_acc) <= 1e-5
    changed = 0
    for (name, a), b in zip(big.named_parameters(), acc.parameters()):
        assert torch.allclose(a, b, atol=1e-5, rtol=0), name
    initial = create_student(tiny_bert(vocab_size=VOCAB, layers=4, seed=1), num_layers=2)
    changed = sum(not torch.equal(a, b) for a, b in zip(big.parameters(), initial.parameters()))
    assert changed > 0, "the step must have moved the weights"


def sentences_dataset(n=96, seed=0):
    rng = np.random.default_rng(seed)
    zipf = rng.zipf(1.3, size=(n, 30)) % (VOCAB - 4) + 4
    rows = []
    for i in range(n):
        length = int(rng.integers(12, 30))
        rows.append({"input_ids": [1, *zipf[i, : length - 2].tolist(), 2]})
    return Dataset.from_list(rows)


def test_training_reduces_loss_and_checkpoints_hold_no_teacher(tmp_path):
    train, valid = sentences_dataset(96, 0), sentences_dataset(24, 1)
    teacher = tiny_bert(vocab_size=VOCAB, layers=4, seed=1)
    # a teacher with some structure: sharpen its output distribution
    with torch.no_grad():
        teacher.cls.predictions.bias.copy_(torch.linspace(3, -3, VOCAB))
    student = create_student(teacher, num_layers=2)
    with torch.no_grad():
        for p in student.bert.encoder.parameters():
            p.add_(0.3 * torch.randn_like(p))
    counts = np.bincount(np.concatenate(train["input_ids"]), minlength=VOCAB)
    collator = DataCollatorForDistillation(Tok(), mlm_token_probs(counts, Tok.all_special_ids))
    args = make_args(
        tmp_path,
        num_train_epochs=3,
        per_device_train_batch_size=8,
        learning_rate=3e-3,
        eval_strategy="epoch",
        save_strategy="epoch",
        load_best_model_at_end=True,
        warmup_steps=0,
    )
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=args,
        train_dataset=train,
        eval_dataset=valid,
        data_collator=collator,
    )
    before = trainer.evaluate()["eval_loss"]
    trainer.train()
    evals = [h for h in trainer.state.log_history if "eval_loss" in h]
    after = evals[-1]["eval_loss"]
    assert after < before
    assert {"eval_loss_ce", "eval_loss_mlm", "eval_loss_cos"} <= set(evals[-1])
    train_logs = [h for h in trainer.state.log_history if "loss" in h and "loss_ce" in h]
    assert train_logs, "training logs carry the loss components"
    first = train_logs[0]
    expected = 5.0 * first["loss_ce"] + 2.0 * first["loss_mlm"] + 1.0 * first["loss_cos"]
    assert abs(first["loss"] - expected) < 1e-3 * max(1.0, expected)
    assert trainer.state.best_model_checkpoint is not None
    checkpoints = [d for d in os.listdir(args.output_dir) if d.startswith("checkpoint-")]
    assert len(checkpoints) == 3
    student_keys = set(student.state_dict())
    for ckpt in checkpoints:
        with safe_open(os.path.join(args.output_dir, ckpt, "model.safetensors"), "pt") as f:
            keys = set(f.keys())
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in keys}
        assert keys <= student_keys
        assert not any(".layer.2." in k or ".layer.3." in k for k in keys), "teacher layers leaked"
        assert all(shapes[k] == tuple(student.state_dict()[k].shape) for k in keys)
    # teacher stayed frozen and in eval mode
    assert not trainer.teacher_model.training
    assert all(not p.requires_grad for p in trainer.teacher_model.parameters())


def test_args_validation():
    from hf_eliquare import ConfigurationError

    with pytest.raises(ConfigurationError, match="temperature"):
        DistillationTrainingArguments(output_dir="x", temperature=0, report_to="none")
    with pytest.raises(ConfigurationError, match="≥ 0"):
        DistillationTrainingArguments(output_dir="x", alpha_cos=-1, report_to="none")
    with pytest.raises(ConfigurationError, match="At least one"):
        DistillationTrainingArguments(output_dir="x", alpha_ce=0, alpha_mlm=0, alpha_cos=0, report_to="none")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigurationError, match="--bf16"):
            DistillationTrainingArguments(output_dir="x", fp16=True, report_to="none")
    args = DistillationTrainingArguments(output_dir="x", report_to="none")
    assert (args.learning_rate, args.adam_epsilon, args.gradient_accumulation_steps) == (5e-4, 1e-6, 200)
    assert (args.global_batch_size, args.train_sampling_strategy) == (1600, "group_by_length")
    assert (args.alpha_ce, args.alpha_mlm, args.alpha_cos, args.temperature) == (5.0, 2.0, 1.0, 2.0)


def test_vocab_mismatch_is_refused(tmp_path):
    from hf_eliquare import ConfigurationError

    teacher = tiny_bert(vocab_size=VOCAB)
    other = create_student(tiny_bert(vocab_size=VOCAB + 1), num_layers=2)
    with pytest.raises(ConfigurationError, match="vocabularies differ"):
        DistillationTrainer(model=other, teacher_model=teacher, args=make_args(tmp_path))


@pytest.mark.parametrize("chunk", [0, 5])
def test_bf16_mixed_precision_step_is_close_to_fp32(tmp_path, chunk):
    """bf16 autocast covers the student, the teacher's encoder and both heads; the loss stays close to fp32."""
    teacher = tiny_bert(vocab_size=VOCAB, layers=4, seed=1)
    student = create_student(teacher, num_layers=2)
    batch = premasked_batch(seed=4)
    student.train()
    losses = {}
    for bf16 in (False, True):
        args = make_args(tmp_path / str(bf16), bf16=bf16, distill_chunk_size=chunk)
        trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args)
        with trainer.compute_loss_context_manager():
            loss = trainer.compute_loss(trainer.model, dict(batch))
        loss.backward()
        grad = student.bert.encoder.layer[0].output.dense.weight.grad
        assert grad is not None and torch.isfinite(grad).all()
        student.zero_grad()
        losses[bf16] = loss.item()
    assert losses[True] != losses[False], "bf16 autocast was not applied"
    assert abs(losses[True] - losses[False]) < 2e-2 * abs(losses[False])
