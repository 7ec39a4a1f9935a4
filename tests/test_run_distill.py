"""examples/run_distill.py end to end on a tiny teacher: outputs, vocabulary reduction, card, Hub dry run."""

import importlib.util
import json

import pytest
from conftest import ROOT
from transformers import AutoModelForMaskedLM, AutoTokenizer

from hf_eliquare import OfflineError


def load_script(name="run_distill"):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def base_argv(teacher, corpus, out, *extra):
    return [
        "--teacher_model_name_or_path", str(teacher), "--train_file", str(corpus), "--lang", "sl",
        "--output_dir", str(out), "--num_student_layers", "2", "--max_seq_length", "32",
        "--num_train_epochs", "2", "--per_device_train_batch_size", "16", "--gradient_accumulation_steps", "1",
        "--logging_steps", "5", "--report_to", "none", "--disable_tqdm", "true", "--seed", "7",
        *extra,
    ]  # fmt: skip


@pytest.mark.parametrize("reduction", ["none", "pre", "post"])
def test_run_distill_end_to_end(tiny_teacher_and_corpus, tmp_path, reduction):
    teacher, corpus = tiny_teacher_and_corpus
    out = tmp_path / "student"
    extra = ["--vocab_reduction", reduction, "--min_sentence_fraction", "0.01"]
    trainer = load_script().main(base_argv(teacher, corpus, out, *extra, "--hub_dry_run", str(tmp_path / "dry")))

    model = AutoModelForMaskedLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    teacher_model = AutoModelForMaskedLM.from_pretrained(teacher)
    assert model.config.num_hidden_layers == 2
    assert model.config.eliquare["teacher_layers"] == [0, 2]
    assert model.config.vocab_size == len(tokenizer)
    if reduction == "none":
        assert model.config.vocab_size == teacher_model.config.vocab_size
    else:
        info = model.config.eliquare["vocab_reduction"]
        assert info["kept_vocab_size"] == model.config.vocab_size < teacher_model.config.vocab_size
        assert info["original_vocab_size"] == teacher_model.config.vocab_size
        assert info["min_sentence_fraction"] == 0.01
        # the reduced tokenizer still tokenises the training text to the same pieces
        line = corpus.read_text().splitlines()[0]
        assert tokenizer.tokenize(line) == AutoTokenizer.from_pretrained(teacher).tokenize(line)
    # the best epoch was kept (validation distillation loss)
    evals = [h["eval_loss"] for h in trainer.state.log_history if "eval_loss" in h]
    assert trainer.state.best_metric == pytest.approx(min(evals[:-1]))
    run = json.loads((out / "eliquare_run.json").read_text())
    assert run["alpha_ce"] == 5.0 and run["temperature"] == 2.0 and run["vocab_reduction_stage"] == reduction
    card = (out / "README.md").read_text()
    assert "language:\n- sl" in card and "fill-mask" in card and "{{" not in card
    staged = sorted(p.name for p in (tmp_path / "dry").iterdir())
    assert staged == sorted(
        [
            "README.md",
            "config.json",
            "eliquare_run.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
        ]
    )
    assert not list(tmp_path.glob(".student.tmp-*")), "no temporary directory left behind"
    # the student predicts with its own tokenizer through the standard pipeline
    from transformers import pipeline

    fill = pipeline("fill-mask", model=model, tokenizer=tokenizer)
    assert len(fill(f"Ka {tokenizer.mask_token} li.")) == 5


def test_yaml_config_file(tiny_teacher_and_corpus, tmp_path):
    teacher, corpus = tiny_teacher_and_corpus
    config = tmp_path / "run.yaml"
    config.write_text(
        f"teacher_model_name_or_path: {teacher}\ntrain_file: [{corpus}]\nlang: sl\noutput_dir: {tmp_path / 'out'}\n"
        "num_student_layers: 2\nmax_seq_length: 32\nnum_train_epochs: 1\nper_device_train_batch_size: 16\n"
        "gradient_accumulation_steps: 1\nreport_to: none\n"
    )
    model_args, data_args, training_args = load_script().parse_args([str(config)])
    assert model_args.num_student_layers == 2 and data_args.train_file == [str(corpus)]
    assert training_args.gradient_accumulation_steps == 1 and training_args.alpha_ce == 5.0


def test_push_offline_fails_before_any_training(tiny_teacher_and_corpus, tmp_path, monkeypatch):
    from transformers import Trainer

    import hf_eliquare.hub as hub

    teacher, corpus = tiny_teacher_and_corpus
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "hub_offline_mode", lambda: False)
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: False)

    def no_training(*args, **kwargs):
        raise AssertionError("training started although the push cannot succeed")

    monkeypatch.setattr(Trainer, "train", no_training)
    argv = base_argv(teacher, corpus, tmp_path / "out", "--push_to_hub", "true", "--hub_model_id", "me/eliquare-sl")
    with pytest.raises(OfflineError, match="cannot be reached"):
        load_script().main(argv)
    assert not (tmp_path / "out" / "model.safetensors").exists()
