"""Narrow students and the optional terms in the trainer: weight selection, Q/K/V hooks, projections (gradients,
checkpoints, resume, final save), normalisation, refusals, and run_distill.py end to end."""

import json
import math

import pytest
import torch
from conftest import tiny_bert, tiny_xlmr
from reference_distiller import reference_distillation_loss
from safetensors import safe_open
from test_trainer import VOCAB, ListDataset, make_args, premasked_batch, rows_of, stack_rows
from torch import nn

from hf_eliquare import ConfigurationError, DistillationTrainer, DistillationTrainingArguments, create_student
from hf_eliquare.objectives import PROJECTIONS_ATTRIBUTE, capture_qkv
from hf_eliquare.student import evenly_spaced_indices


def wide_teacher(make=tiny_bert, hidden=64, heads=4, layers=4, seed=1):
    """A teacher with 4 heads of 16 (the conftest models have 2 heads)."""
    model = make(vocab_size=VOCAB, layers=layers, hidden=hidden, seed=seed)
    model.config.num_attention_heads = heads
    torch.manual_seed(seed)
    return type(model)(model.config).eval()


# ------------------------------------------------------------------------------------------------ creation
@pytest.mark.parametrize("make", [tiny_bert, tiny_xlmr], ids=["bert", "xlm-roberta"])
def test_narrow_student_is_a_consistent_weight_selection(make):
    teacher = wide_teacher(make)
    student = create_student(teacher, num_layers=2, hidden_size=32)
    c = student.config
    assert (c.hidden_size, c.num_attention_heads, c.intermediate_size, c.num_hidden_layers) == (32, 2, 64, 2)
    init = c.eliquare["distillation_init"]
    assert init["method"] == "weight_selection" and init["teacher_hidden_size"] == 64
    hid = torch.tensor(evenly_spaced_indices(64, 32))
    heads = evenly_spaced_indices(4, 2)  # whole heads of 16 dims: teacher heads 0 and 2
    qkv = torch.tensor([h * 16 + d for h in heads for d in range(16)])
    ffn = torch.tensor(evenly_spaced_indices(128, 64))
    t, s = teacher.base_model, student.base_model
    assert torch.equal(s.embeddings.word_embeddings.weight, t.embeddings.word_embeddings.weight[:, hid])
    assert torch.equal(s.embeddings.LayerNorm.weight, t.embeddings.LayerNorm.weight[hid])
    for s_idx, t_idx in enumerate([0, 2]):
        sl, tl = s.encoder.layer[s_idx], t.encoder.layer[t_idx]
        assert torch.equal(sl.attention.self.query.weight, tl.attention.self.query.weight[qkv][:, hid])
        assert torch.equal(sl.attention.self.value.bias, tl.attention.self.value.bias[qkv])
        assert torch.equal(sl.attention.output.dense.weight, tl.attention.output.dense.weight[hid][:, qkv])
        assert torch.equal(sl.intermediate.dense.weight, tl.intermediate.dense.weight[ffn][:, hid])
        assert torch.equal(sl.output.dense.weight, tl.output.dense.weight[hid][:, ffn])
        assert torch.equal(sl.output.LayerNorm.bias, tl.output.LayerNorm.bias[hid])
    # the MLM head is selected the same way, and the decoder stays tied to the (selected) embeddings
    s_dec, t_dec = student.get_output_embeddings(), teacher.get_output_embeddings()
    assert s_dec.weight.data_ptr() == student.get_input_embeddings().weight.data_ptr()
    assert torch.equal(s_dec.bias, t_dec.bias)
    ids = torch.randint(4, VOCAB, (2, 9))
    assert student(input_ids=ids).logits.shape == (2, 9, VOCAB)


def test_shapes_that_cannot_be_selected_are_random_and_recorded(tmp_path):
    teacher = wide_teacher()
    more_heads = create_student(teacher, num_layers=2, hidden_size=32, num_attention_heads=8)
    assert more_heads.config.eliquare["distillation_init"]["method"] == "random"
    scratch = create_student(teacher, num_layers=2, hidden_size=32, init="random")
    assert scratch.config.eliquare["distillation_init"]["method"] == "random"
    assert not torch.equal(
        scratch.bert.embeddings.word_embeddings.weight, teacher.bert.embeddings.word_embeddings.weight[:, ::2]
    )
    same = create_student(teacher, num_layers=2)
    assert same.config.eliquare["distillation_init"]["method"] == "copy"
    # recorded in config.json
    scratch.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["eliquare"]["distillation_init"]["method"] == "random" and saved["hidden_size"] == 32


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"hidden_size": 30, "num_attention_heads": 4}, "not divisible by its 4 attention heads"),
        ({"hidden_size": 32, "num_attention_heads": 0}, "must be ≥ 1"),
        ({"hidden_size": 32, "intermediate_size": 0}, "must be ≥ 1"),
        ({"init": "magic"}, "init must be"),
    ],
)
def test_impossible_student_shapes_are_refused(kwargs, message):
    with pytest.raises(ConfigurationError, match=message):
        create_student(wide_teacher(), num_layers=2, **kwargs)


# ------------------------------------------------------------------------------------------------ hooks
def test_hooks_see_the_attention_the_model_computes():
    """The attention probabilities rebuilt from hooked Q and K equal the eager attention's own output."""
    from hf_eliquare.losses import _relation_log_probs

    model = wide_teacher()
    model.config._attn_implementation = "eager"
    batch = premasked_batch(seed=3)
    with torch.no_grad(), capture_qkv(model, [0, 3]) as qkv:
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_attentions=True)
    for layer in (0, 3):
        ours = _relation_log_probs(qkv[layer]["query"], qkv[layer]["key"], 4, batch["attention_mask"].bool()).exp()
        rows = batch["attention_mask"].bool()
        assert torch.allclose(
            ours.permute(0, 2, 1, 3)[rows], out.attentions[layer].permute(0, 2, 1, 3)[rows], atol=1e-6
        )
    # our hooks are removed afterwards (transformers adds its own output-capturing hooks elsewhere)
    projections = [
        getattr(layer.attention.self, n) for layer in model.bert.encoder.layer for n in ("query", "key", "value")
    ]
    assert not any(m._forward_hooks for m in projections)


# ------------------------------------------------------------------------------------------------ the trainer
def literal_extra_terms(student, teacher, projections, batch, layer_map, relation_layers, relation_heads, heads):
    """The optional terms from the models' own outputs (eager attentions, hidden states), written out literally."""
    for m in (student, teacher):
        m.config._attn_implementation = "eager"
    s = student(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        output_hidden_states=True,
        output_attentions=True,
    )
    with torch.no_grad():
        t = teacher(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            output_hidden_states=True,
            output_attentions=True,
        )
    rows = batch["attention_mask"].bool()
    n_tok = rows.sum()
    hidden = sum(
        nn.MSELoss()(projections[f"layer_{i}"](s.hidden_states[i + 1][rows]), t.hidden_states[j + 1][rows])
        for i, j in enumerate(layer_map)
    ) / len(layer_map)
    kl = nn.KLDivLoss(reduction="sum")
    attn = 0.0
    for i, j in enumerate(layer_map):
        a_s, a_t = s.attentions[i].permute(0, 2, 1, 3)[rows], t.attentions[j].permute(0, 2, 1, 3)[rows]  # (N, H, L)
        a_s = a_s.clamp_min(1e-30)  # padding keys have probability 0 in both
        attn = attn + kl(torch.log(a_s), a_t) / (heads * n_tok)
    attn = attn / len(layer_map)
    rel = 0.0
    (si, ti) = relation_layers
    s_layer, t_layer = (
        student.base_model.encoder.layer[si].attention.self,
        teacher.base_model.encoder.layer[ti].attention.self,
    )
    for name in ("query", "key", "value"):
        xs = getattr(s_layer, name)(s.hidden_states[si])
        xt = getattr(t_layer, name)(t.hidden_states[ti])
        for b, n in enumerate(batch["attention_mask"].sum(1).tolist()):
            for h in range(relation_heads):
                ds, dt = xs.shape[-1] // relation_heads, xt.shape[-1] // relation_heads
                a = xs[b, :n, h * ds : (h + 1) * ds]
                c = xt[b, :n, h * dt : (h + 1) * dt]
                r_s = torch.log_softmax(a @ a.T / math.sqrt(ds), -1)
                r_t = torch.softmax(c @ c.T / math.sqrt(dt), -1)
                rel = rel + kl(r_s, r_t.detach()) / (relation_heads * n_tok)
    for m in (student, teacher):
        m.config._attn_implementation = "sdpa"
    return hidden, attn, rel


@pytest.mark.parametrize("chunk", [0, 5])
def test_all_terms_match_literal_reference_with_projections_and_gradients(tmp_path, chunk):
    teacher = wide_teacher()
    student = create_student(teacher, num_layers=2, hidden_size=32, num_attention_heads=4)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(0.05 * torch.randn_like(p))
    weights = dict(alpha_ce=5.0, alpha_mlm=2.0, alpha_cos=1.0, alpha_hidden=3.0, alpha_attn=2.0, alpha_rel=4.0)
    args = make_args(tmp_path, distill_chunk_size=chunk, relation_heads=8, relation_teacher_layer=2, **weights)
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args)
    projections = getattr(student, PROJECTIONS_ATTRIBUTE)
    assert set(projections) == {"cos", "layer_0", "layer_1"}
    with torch.no_grad():  # move the projections away from their selection initialisation
        for p in projections.parameters():
            p.add_(0.1 * torch.randn_like(p))
    batch = premasked_batch(seed=2)
    student.train()
    loss, parts = trainer.compute_loss(student, dict(batch), return_outputs=True)
    assert set(parts.extra) == {"loss_hidden", "loss_attn", "loss_rel"}

    ref_hidden, ref_attn, ref_rel = literal_extra_terms(
        student, teacher, projections, batch, [0, 2], (1, 2), relation_heads=8, heads=4
    )
    # the triple loss with the cos projection, literally: DistilBERT's formula on the projected last hidden state
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "output_hidden_states": True}
    s_out = student(**inputs)
    with torch.no_grad():
        t_out = teacher(**inputs)
    _, ref_ce, ref_mlm, ref_cos = reference_distillation_loss(
        s_out.logits, t_out.logits, projections["cos"](s_out.hidden_states[-1]), t_out.hidden_states[-1],
        batch["attention_mask"], batch["labels"],
    )  # fmt: skip
    for ours, ref in [
        (parts.loss_ce, ref_ce), (parts.loss_mlm, ref_mlm), (parts.loss_cos, ref_cos),
        (parts.extra["loss_hidden"], ref_hidden), (parts.extra["loss_attn"], ref_attn), (parts.extra["loss_rel"], ref_rel),
    ]:  # fmt: skip
        assert abs(ours.item() - ref.item()) <= 1e-5
    ref_loss = 5 * ref_ce + 2 * ref_mlm + ref_cos + 3 * ref_hidden + 2 * ref_attn + 4 * ref_rel
    assert abs(loss.item() - ref_loss.item()) <= 1e-5

    # gradients reach the projections and equal those of the literal formula
    loss.backward()
    ours = {n: p.grad.clone() for n, p in student.named_parameters() if p.grad is not None}
    assert all(ours[f"{PROJECTIONS_ATTRIBUTE}.{k}.weight"].abs().sum() > 0 for k in ("cos", "layer_0", "layer_1"))
    student.zero_grad()
    ref_loss.backward()
    for name, p in student.named_parameters():
        if p.grad is not None:
            assert torch.allclose(ours[name], p.grad, atol=1e-5, rtol=1e-4), name


def test_default_path_adds_nothing(tmp_path):
    teacher = tiny_bert(vocab_size=VOCAB, layers=4, seed=1)
    student = create_student(teacher, num_layers=2)
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=make_args(tmp_path))
    assert not hasattr(student, PROJECTIONS_ATTRIBUTE) and trainer.objective_plan.components == ()
    _, parts = trainer.compute_loss(student, premasked_batch(seed=1), return_outputs=True)
    assert parts.extra == {}


def one_sgd_step(tmp_path, name, rows, batch_size, accumulation):
    teacher = wide_teacher()
    torch.manual_seed(5)
    student = create_student(teacher, num_layers=2, hidden_size=32, num_attention_heads=4)
    args = make_args(
        tmp_path / name, per_device_train_batch_size=batch_size, gradient_accumulation_steps=accumulation,
        optim="sgd", learning_rate=0.5, warmup_steps=0, lr_scheduler_type="constant", max_grad_norm=1e9,
        train_sampling_strategy="sequential", max_steps=1, alpha_hidden=1.0, alpha_attn=1.0, alpha_rel=1.0,
    )  # fmt: skip
    trainer = DistillationTrainer(
        model=student, teacher_model=teacher, args=args, train_dataset=ListDataset(rows), data_collator=stack_rows
    )
    result = trainer.train()
    return student, result.training_loss, trainer.state.log_history


def test_new_terms_are_normalised_by_the_accumulated_token_count(tmp_path):
    """Accumulation 2 × 4 equals one batch of 8 (the property that makes 2 processes equal one)."""
    rows = rows_of(premasked_batch(seed=3, batch=8))
    big, loss_big, log_big = one_sgd_step(tmp_path, "big", rows, 8, 1)
    acc, loss_acc, log_acc = one_sgd_step(tmp_path, "acc", rows, 4, 2)
    assert abs(loss_big - loss_acc) <= 1e-5
    for key in ("loss_hidden", "loss_attn", "loss_rel"):
        assert log_big[0][key] == pytest.approx(log_acc[0][key], abs=1e-6)
    for (name, a), b in zip(big.named_parameters(), acc.parameters()):
        assert torch.allclose(a, b, atol=1e-5, rtol=0), name


@pytest.mark.parametrize(
    "teacher_kwargs, student_kwargs, args, message",
    [
        ({}, {"num_attention_heads": 2}, {"alpha_attn": 1.0}, "teacher has 4 heads and the student 2"),
        ({}, {}, {"alpha_rel": 1.0, "relation_heads": 3}, "must divide both"),
        ({}, {}, {"alpha_hidden": 1.0, "hidden_layer_map": [0, 1, 2]}, "has 3 entries but the student has 2"),
        ({}, {}, {"alpha_hidden": 1.0, "hidden_layer_map": [0, 4]}, "out of range"),
        ({}, {}, {"alpha_rel": 1.0, "relation_teacher_layer": 4}, "relation_teacher_layer 4 is out of range"),
        ({}, {}, {"alpha_rel": 1.0, "relation_student_layer": -3}, "relation_student_layer -3 is out of range"),
    ],
)
def test_impossible_objectives_are_refused_when_the_trainer_is_created(
    tmp_path, teacher_kwargs, student_kwargs, args, message
):
    teacher = wide_teacher(**teacher_kwargs)
    student = create_student(teacher, num_layers=2, hidden_size=32, **student_kwargs)
    with pytest.raises(ConfigurationError, match=message):
        DistillationTrainer(model=student, teacher_model=teacher, args=make_args(tmp_path, **args))


def test_argument_validation_of_new_weights():
    with pytest.raises(ConfigurationError, match="≥ 0"):
        DistillationTrainingArguments(output_dir="x", alpha_rel=-1, report_to="none")
    with pytest.raises(ConfigurationError, match="mse' or 'cosine"):
        DistillationTrainingArguments(output_dir="x", hidden_loss="l1", report_to="none")
    with pytest.raises(ConfigurationError, match="relation_heads"):
        DistillationTrainingArguments(output_dir="x", relation_heads=0, report_to="none")
    only_rel = DistillationTrainingArguments(
        output_dir="x", alpha_ce=0, alpha_mlm=0, alpha_cos=0, alpha_rel=1, report_to="none"
    )
    assert only_rel.alpha_rel == 1
    defaults = DistillationTrainingArguments(output_dir="x", report_to="none")
    assert (defaults.alpha_hidden, defaults.alpha_attn, defaults.alpha_rel) == (0.0, 0.0, 0.0)


# ------------------------------------------------------------------------------------------------ checkpoints
def train_narrow(tmp_path, name, max_steps, resume=None, bf16=False):
    teacher = wide_teacher()
    torch.manual_seed(3)
    student = create_student(teacher, num_layers=2, hidden_size=32)
    rows = rows_of(premasked_batch(seed=5, batch=8))
    args = make_args(
        tmp_path / name, per_device_train_batch_size=2, max_steps=max_steps, save_strategy="steps", save_steps=2,
        learning_rate=1e-2, warmup_steps=0, alpha_hidden=1.0, alpha_rel=1.0, train_sampling_strategy="sequential",
        bf16=bf16,
    )  # fmt: skip
    trainer = DistillationTrainer(
        model=student, teacher_model=teacher, args=args, train_dataset=ListDataset(rows), data_collator=stack_rows
    )
    trainer.train(resume_from_checkpoint=resume)
    return trainer, student


def test_projections_train_checkpoint_resume_and_are_dropped_at_save(tmp_path):
    from transformers import AutoModelForMaskedLM

    full, student = train_narrow(tmp_path, "full", max_steps=4)
    projections = getattr(student, PROJECTIONS_ATTRIBUTE)
    # trained: not the inverse-selection initialisation any more
    w = projections["layer_0"].weight.detach()
    init = torch.zeros_like(w)
    init[evenly_spaced_indices(64, 32), range(32)] = 1
    assert not torch.allclose(w, init)
    # checkpoints hold the projections (and the optimizer their state)
    ckpt = tmp_path / "full" / "out" / "checkpoint-2"
    with safe_open(str(ckpt / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert {f"{PROJECTIONS_ATTRIBUTE}.{k}.weight" for k in ("cos", "layer_0", "layer_1")} <= keys
    # resuming from step 2 ends exactly where the uninterrupted run ended, projections included
    resumed, student_b = train_narrow(tmp_path, "full", max_steps=4, resume=str(ckpt))
    state_a, state_b = student.state_dict(), student_b.state_dict()
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        assert torch.allclose(state_a[key], state_b[key], atol=1e-6), key
    # the final save is a plain *ForMaskedLM
    resumed.save_model(str(tmp_path / "final"))
    assert hasattr(student_b, PROJECTIONS_ATTRIBUTE), "saving does not take them off the training student"
    with safe_open(str(tmp_path / "final" / "model.safetensors"), "pt") as f:
        assert not any(k.startswith(PROJECTIONS_ATTRIBUTE) for k in f.keys())
    reloaded, info = AutoModelForMaskedLM.from_pretrained(tmp_path / "final", output_loading_info=True)
    assert not info["unexpected_keys"] and not info["missing_keys"]
    assert reloaded.config.hidden_size == 32


def test_bf16_step_with_new_terms(tmp_path):
    teacher = wide_teacher()
    student = create_student(teacher, num_layers=2, hidden_size=32, num_attention_heads=4)
    batch = premasked_batch(seed=4)
    losses = {}
    for bf16 in (False, True):
        args = make_args(tmp_path / str(bf16), bf16=bf16, alpha_hidden=1.0, alpha_attn=1.0, alpha_rel=1.0)
        trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args)
        student.train()
        with trainer.compute_loss_context_manager():
            loss, parts = trainer.compute_loss(trainer.model, dict(batch), return_outputs=True)
        loss.backward()
        grad = getattr(student, PROJECTIONS_ATTRIBUTE)["layer_0"].weight.grad
        assert grad is not None and torch.isfinite(grad).all()
        student.zero_grad()
        losses[bf16] = (loss.item(), {k: v.item() for k, v in parts.extra.items()})
    assert losses[True][0] != losses[False][0], "bf16 autocast was not applied"
    assert abs(losses[True][0] - losses[False][0]) < 3e-2 * abs(losses[False][0])
    for key, value in losses[False][1].items():
        assert abs(losses[True][1][key] - value) < 5e-2 * abs(value) + 1e-3, key


# ------------------------------------------------------------------------------------------------ run_distill.py
@pytest.mark.parametrize("reduction", ["pre", "post"])
def test_run_distill_narrow_student_end_to_end(tiny_teacher_and_corpus, tmp_path, reduction):
    from test_run_distill import base_argv, load_script
    from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline

    teacher, corpus = tiny_teacher_and_corpus  # hidden 32, 2 heads of 16, 4 layers
    out = tmp_path / "student"
    extra = [
        "--vocab_reduction", reduction, "--min_sentence_fraction", "0.01", "--num_train_epochs", "1",
        "--student_hidden_size", "16", "--alpha_hidden", "1", "--alpha_rel", "1", "--relation_heads", "4",
    ]  # fmt: skip
    trainer = load_script().main(base_argv(teacher, corpus, out, *extra))
    logged = [h for h in trainer.state.log_history if "loss_rel" in h]
    assert logged and all(math.isfinite(h["loss_hidden"]) for h in logged)
    assert any("eval_loss_rel" in h and "eval_loss_hidden" in h for h in trainer.state.log_history)

    model, info = AutoModelForMaskedLM.from_pretrained(out, output_loading_info=True)
    assert not info["unexpected_keys"] and not info["missing_keys"], "a plain *ForMaskedLM, no projections"
    assert (model.config.hidden_size, model.config.num_attention_heads, model.config.intermediate_size) == (16, 1, 32)
    assert model.config.eliquare["distillation_init"]["method"] == "weight_selection"
    assert model.config.eliquare["vocab_reduction"]["kept_vocab_size"] == model.config.vocab_size
    run = json.loads((out / "eliquare_run.json").read_text())
    assert run["alpha_rel"] == 1.0 and run["relation_heads"] == 4
    assert run["distillation_init"]["method"] == "weight_selection"
    assert run["student_parameters"] == model.num_parameters()
    card = (out / "README.md").read_text()
    assert "weight selection from the teacher" in card and "hidden 16 of 32" in card
    assert "| Additional loss terms | + 1 · hidden states (mse" in card
    assert "1 · MiniLMv2 Q–Q/K–K/V–V relations (4 relation heads, teacher layer last → student layer last)" in card
    tokenizer = AutoTokenizer.from_pretrained(out)
    fill = pipeline("fill-mask", model=model, tokenizer=tokenizer)
    assert len(fill(f"Ka {tokenizer.mask_token} li.")) == 5


@pytest.mark.parametrize(
    "extra, fragments",
    [
        (["--student_hidden_size", "24", "--student_num_attention_heads", "5"], ["not divisible by its 5"]),
        (["--student_hidden_size", "16", "--alpha_attn", "1"], ["teacher has 2 heads and the student 1"]),
        (["--alpha_rel", "1", "--relation_heads", "5"], ["--relation_heads 5 must divide"]),
        (["--alpha_hidden", "1", "--hidden_layer_map", "0", "9"], ["out of range"]),
    ],
)
def test_run_distill_refuses_impossible_shapes_before_corpus_work(tmp_path, capsys, extra, fragments):
    from _reliability import build_teacher, distill_argv, load_script, looks_finished, write_corpus
    from test_bad_inputs import fails

    teacher = build_teacher(tmp_path / "teacher")
    corpus = write_corpus(tmp_path / "corpus.txt", 20)
    fails(load_script(), capsys, distill_argv(teacher, corpus, tmp_path / "out", *extra), *fragments)
    assert not looks_finished(tmp_path / "out")


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="torch.distributed with the gloo backend is not available in this torch build")  # fmt: skip
def test_two_processes_equal_one_with_the_new_terms_and_a_narrow_student(tmp_path):
    """DDP over gloo: the projections are synchronised and the new terms use the global token counts."""
    import sys

    from _reliability import (
        build_teacher,
        distill_argv,
        max_weight_difference,
        run_script,
        subprocess_env,
        write_corpus,
    )
    from test_multiprocess import free_port, history

    teacher = build_teacher(tmp_path / "teacher", dropout=0.0)
    corpus = write_corpus(tmp_path / "corpus.txt", 60)

    def argv(out, accumulation):
        return distill_argv(
            teacher, corpus, out,
            "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", str(accumulation),
            "--max_train_samples", "32", "--num_train_epochs", "1", "--seed", "5", "--learning_rate", "2e-3",
            "--logging_steps", "1", "--eval_strategy", "epoch", "--save_strategy", "epoch",
            "--student_hidden_size", "16", "--alpha_hidden", "1", "--alpha_rel", "1", "--relation_heads", "4",
        )  # fmt: skip

    port = free_port()
    launcher = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port),
    ]  # fmt: skip
    env = subprocess_env(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    two = run_script(argv(tmp_path / "two", 2), env=env, launcher=launcher)
    if two.returncode != 0 and "gloo" in two.stderr.lower() and "connect" in two.stderr.lower():
        pytest.skip(f"accelerate could not start two gloo processes here: {two.stderr[-500:]}")
    assert two.returncode == 0, two.stderr[-4000:]
    one = run_script(argv(tmp_path / "one", 4))
    assert one.returncode == 0, one.stderr[-4000:]
    h_two, h_one = history(tmp_path / "two"), history(tmp_path / "one")
    compared = 0
    for a, b in zip(h_two, h_one, strict=True):
        for key in ("loss", "loss_cos", "loss_hidden", "loss_rel", "eval_loss", "eval_loss_rel"):
            if key in b:
                assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), (key, a["step"])
                compared += 1
    assert compared >= 2 * 4 + 2
    assert max_weight_difference(tmp_path / "two", tmp_path / "one") <= 1e-5


def test_equal_widths_need_no_projection(tmp_path):
    teacher = wide_teacher()
    student = create_student(teacher, num_layers=2)
    args = make_args(tmp_path, alpha_hidden=1.0, hidden_loss="cosine", alpha_attn=1.0, hidden_layer_map=[1, 3])
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args)
    assert not hasattr(student, PROJECTIONS_ATTRIBUTE)
    assert trainer.objective_plan.layer_map == (1, 3)
    batch = premasked_batch(seed=6)
    _, parts = trainer.compute_loss(student, dict(batch), return_outputs=True)
    # the literal cosine between the mapped layers' outputs, averaged over the two pairs
    with torch.no_grad():
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        s = student(**inputs, output_hidden_states=True).hidden_states
        t = teacher(**inputs, output_hidden_states=True).hidden_states
    rows = batch["attention_mask"].bool()
    ones = torch.ones(int(rows.sum()))
    ref = sum(nn.CosineEmbeddingLoss()(s[i + 1][rows], t[j + 1][rows], ones) for i, j in enumerate([1, 3])) / 2
    assert abs(parts.extra["loss_hidden"].item() - ref.item()) <= 1e-5
    assert parts.extra["loss_attn"] > 0


def test_xlm_roberta_narrow_student_fused_and_full_logits_agree(tmp_path):
    """The hooks and projections work on XLM-R too; the fused head and full logits give the same terms."""
    teacher = wide_teacher(tiny_xlmr)
    student = create_student(teacher, num_layers=2, hidden_size=32, num_attention_heads=4)
    batch = premasked_batch(seed=7)
    batch["input_ids"][batch["attention_mask"] == 0] = 1  # XLM-R pads with id 1
    results = {}
    for chunk in (0, 5):
        args = make_args(tmp_path / str(chunk), distill_chunk_size=chunk, alpha_hidden=1.0, alpha_attn=1.0,
                         alpha_rel=1.0, relation_heads=8)  # fmt: skip
        trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args)
        student.train()
        loss, parts = trainer.compute_loss(student, dict(batch), return_outputs=True)
        loss.backward()
        grad = getattr(student, PROJECTIONS_ATTRIBUTE)["layer_1"].weight.grad
        assert grad is not None and grad.abs().sum() > 0
        student.zero_grad()
        results[chunk] = (loss.item(), {k: v.item() for k, v in parts.extra.items()})
    assert results[0][0] == pytest.approx(results[5][0], abs=1e-5)
    assert results[0][1] == pytest.approx(results[5][1], abs=1e-6)


def test_push_to_hub_sends_the_student_without_projections(tmp_path, monkeypatch):
    from transformers import Trainer

    seen = {}

    def fake_push(self, *args, **kwargs):  # the Trainer's push saves the model as a checkpoint, then uploads
        seen["has_projections"] = hasattr(self.model, PROJECTIONS_ATTRIBUTE)

    monkeypatch.setattr(Trainer, "push_to_hub", fake_push)
    teacher = wide_teacher()
    student = create_student(teacher, num_layers=2, hidden_size=32)
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=make_args(tmp_path, alpha_hidden=1.0))
    trainer.push_to_hub()
    assert seen == {"has_projections": False}
    assert hasattr(student, PROJECTIONS_ATTRIBUTE), "put back afterwards"


# ------------------------------------------------------------------------------------------------ card, start-up
def test_card_shows_initialisation_and_the_optional_terms_only_when_weighted(tmp_path):
    from huggingface_hub import ModelCard
    from test_cards import make_student_dir

    from hf_eliquare.hub.cards import write_student_card

    (tmp_path / "plain").mkdir()
    (tmp_path / "terms").mkdir()
    plain = make_student_dir(tmp_path / "plain")
    text = ModelCard.load(write_student_card(plain)).text
    assert "| Student initialisation | copied from the teacher |" in text  # made before narrow students existed
    assert "Additional loss terms" not in text
    assert "| α_ce / α_mlm / α_cos | 5 / 2 / 1 |\n| Temperature τ | 2 |" in text  # the table stays one table

    run = {"alpha_attn": 2.0, "alpha_hidden": 0.0, "alpha_rel": 3.0, "relation_heads": 8}
    run.update(relation_teacher_layer=-2, relation_student_layer=1, distillation_init={"method": "weight_selection"})
    terms = make_student_dir(tmp_path / "terms", run=run)
    config = json.loads((terms / "config.json").read_text())
    config["eliquare"]["distillation_init"] = {"method": "random"}  # the model's own record wins over the summary's
    (terms / "config.json").write_text(json.dumps(config))
    text = ModelCard.load(write_student_card(terms)).text
    assert "| Student initialisation | random (trained from scratch) |" in text
    assert (
        "| Additional loss terms | + 2 · attention-distribution KL + 3 · MiniLMv2 Q–Q/K–K/V–V relations "
        "(8 relation heads, teacher layer -2 (from the end) → student layer 1) |\n| Temperature τ |"
    ) in text


def test_student_shape_flags_are_refused_before_the_teacher_is_loaded(tmp_path, capsys):
    from _reliability import distill_argv, load_script, write_corpus
    from test_bad_inputs import fails

    corpus = write_corpus(tmp_path / "corpus.txt", 5)
    missing_teacher = tmp_path / "no-such-teacher"  # loading it would fail: the flag is refused first
    argv = distill_argv(missing_teacher, corpus, tmp_path / "out", "--student_hidden_size", "0")
    fails(load_script(), capsys, argv, "--student_hidden_size must be at least 1")
    argv = distill_argv(missing_teacher, corpus, tmp_path / "out", "--student_init", "zeros")
    fails(load_script(), capsys, argv, "--student_init", "zeros")
    assert not (tmp_path / "out").exists()
