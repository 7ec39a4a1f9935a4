"""The catalogue of user mistakes: each one stops run_distill.py with exit code 2, one `error:` line that
names the problem and the fix, no Python traceback, and nothing in output_dir that looks like a model.

Most cases run the script's `main` in-process under `hf_eliquare.cli.run_main` (exactly what
`python examples/run_distill.py` does; an unexpected exception would fail the test with its traceback);
a few run the real command line in a subprocess. The CoNLL-U cases (malformed line, test-only label)
belong to run_finetune.py and are tested in tests/test_finetune.py.
"""

import gzip
import time

import pytest
import torch
from _reliability import (
    build_teacher,
    demo_lines,
    distill_argv,
    load_script,
    looks_finished,
    run_script,
    subprocess_env,
    write_corpus,
)
from conftest import DEMO_DIR, tiny_bert
from safetensors.torch import load_file

from hf_eliquare.cli import EXIT_USER_ERROR, run_main


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return build_teacher(tmp_path_factory.mktemp("bad-inputs") / "teacher")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("bad-inputs-corpus") / "corpus.txt", 60)


@pytest.fixture(scope="module")
def script():
    return load_script()


def fails(script, capsys, argv, *fragments):
    """Run main(argv) as the CLI does; return the error message after checking exit code and fragments."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_main(lambda: script.main([str(a) for a in argv]))
    assert exit_info.value.code == EXIT_USER_ERROR
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    err = stderr.rstrip().splitlines()[-1]  # progress bars from loading may come before it
    assert err.startswith("error: "), stderr[-2000:]
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


def argv_for(teacher, corpus, out, *extra):
    return distill_argv(teacher, corpus, out, "--num_train_epochs", "1", "--seed", "3", *extra)


# ------------------------------------------------------------------ through the real command line


def test_unknown_language_without_text(tmp_path):
    result = run_script(["--lang", "xx", "--output_dir", tmp_path / "out", "--report_to", "none"])
    assert result.returncode == EXIT_USER_ERROR
    assert "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error: Unknown language code 'xx'")
    assert "sl" in message and "--wikipedia_config 20231101.xx" in message and "--train_file" in message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("offline_flag", [None, "1"], ids=["unreachable-hub", "HF_HUB_OFFLINE=1"])
def test_hub_id_while_offline_fails_fast(tmp_path, offline_flag, monkeypatch):
    from hf_eliquare import hub

    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", offline_flag == "1")
    hub.hub_reachable.cache_clear()
    if offline_flag is None and hub.hub_reachable():
        pytest.skip("this machine can reach the Hub, so a Hub id is not an offline mistake here")
    hub.hub_reachable.cache_clear()
    started = time.monotonic()
    with pytest.raises(hub.OfflineError, match="pass the directory instead of the Hub id"):
        hub.resolve_pretrained("bert-base-multilingual-cased", "teacher model")
    assert time.monotonic() - started < 10, "must fail within seconds, not after the Hub client's retries"
    hub.hub_reachable.cache_clear()

    # The same through the command line: exit code and message. Its speed is the in-process check above
    # (a wall-clock bound on a subprocess would measure interpreter start-up, which depends on the load).
    env = subprocess_env(HF_HUB_OFFLINE=offline_flag, HF_DATASETS_OFFLINE=offline_flag)
    result = run_script(
        ["--teacher_model_name_or_path", "bert-base-multilingual-cased", "--lang", "sl", "--output_dir",
         tmp_path / "out", "--report_to", "none"], env=env,
    )  # fmt: skip
    assert result.returncode == EXIT_USER_ERROR, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert "needs the Hugging Face Hub" in message and "hf download bert-base-multilingual-cased" in message
    assert ("HF_HUB_OFFLINE=1" in message) == (offline_flag == "1")


# ------------------------------------------------------------------ data


def test_empty_corpus(script, capsys, teacher, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    fails(
        script, capsys, argv_for(teacher, empty, tmp_path / "out"), "has no text", "one paragraph or sentence per line"
    )
    assert not looks_finished(tmp_path / "out")


def test_whitespace_only_corpus(script, capsys, teacher, tmp_path):
    blank = tmp_path / "blank.txt"
    blank.write_text("  \n\t\n \u00a0 \n\n")
    fails(script, capsys, argv_for(teacher, blank, tmp_path / "out"), "blank.txt", "has no text")
    assert not looks_finished(tmp_path / "out")


def test_undecodable_bytes(script, capsys, teacher, tmp_path):
    latin2 = tmp_path / "latin2.txt"
    latin2.write_bytes("Šola in čas že.\n".encode("iso-8859-2"))
    fails(script, capsys, argv_for(teacher, latin2, tmp_path / "out"), "latin2.txt", "not valid UTF-8", "iconv")
    assert not looks_finished(tmp_path / "out")


def test_truncated_gzip(script, capsys, teacher, tmp_path):
    data = gzip.compress(("\n".join(demo_lines(200)) + "\n").encode())
    cut = tmp_path / "cut.txt.gz"
    cut.write_bytes(data[: len(data) // 2])
    fails(script, capsys, argv_for(teacher, cut, tmp_path / "out"), "cut.txt.gz", "truncated", "re-download")
    assert not looks_finished(tmp_path / "out")


def test_vocabulary_threshold_that_keeps_no_token(script, capsys, teacher, tmp_path):
    # Sentences built from distinct whole words: no token occurs in every training sentence.
    from transformers import AutoTokenizer

    vocab = AutoTokenizer.from_pretrained(DEMO_DIR / "tokenizer").get_vocab()
    words = sorted(w for w in vocab if w.isalpha() and w.islower() and len(w) >= 4)[: 40 * 14]
    lines = [" ".join(words[i * 14 : (i + 1) * 14]) for i in range(40)]
    text = tmp_path / "disjoint.txt"
    text.write_text("\n".join(lines) + "\n")
    err = fails(
        script, capsys,
        argv_for(teacher, text, tmp_path / "out", "--vocab_reduction", "pre", "--min_sentence_fraction", "1.0"),
        "keeps no regular token", "Use a lower threshold",
    )  # fmt: skip
    assert "min_sentence_fraction=1.0" in err
    assert not looks_finished(tmp_path / "out")


@pytest.mark.parametrize("fraction", ["0", "-0.1", "1.5"])
def test_min_sentence_fraction_out_of_range(script, capsys, teacher, corpus, tmp_path, fraction):
    fails(
        script, capsys, argv_for(teacher, corpus, tmp_path / "out", "--min_sentence_fraction", fraction),
        "--min_sentence_fraction must be in (0, 1]", "0.0005",
    )  # fmt: skip


# ------------------------------------------------------------------ models


def test_teacher_without_mlm_head(script, capsys, corpus, tmp_path):
    from transformers import AutoTokenizer, BertModel

    headless = tmp_path / "bert-model"
    BertModel(tiny_bert(vocab_size=7000).config).save_pretrained(headless)
    AutoTokenizer.from_pretrained(DEMO_DIR / "tokenizer").save_pretrained(headless)
    fails(
        script, capsys, argv_for(headless, corpus, tmp_path / "out"),
        "has no masked-language-modelling head", "BertModel", "*ForMaskedLM",
    )  # fmt: skip
    assert not looks_finished(tmp_path / "out")


def test_unsupported_architecture(script, capsys, corpus, tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=100)).save_pretrained(gpt2)
    fails(
        script,
        capsys,
        argv_for(gpt2, corpus, tmp_path / "out"),
        "GPT2LMHeadModel",
        "model_type='gpt2'",
        "xlm-roberta-base",
    )
    assert not looks_finished(tmp_path / "out")


def test_teacher_and_tokenizer_disagree(script, capsys, corpus, tmp_path):
    from transformers import AutoTokenizer

    mismatched = tmp_path / "mismatched"
    tiny_bert(vocab_size=100).save_pretrained(mismatched)  # 100 embeddings ...
    AutoTokenizer.from_pretrained(DEMO_DIR / "tokenizer").save_pretrained(mismatched)  # ... 7000 tokens
    fails(
        script,
        capsys,
        argv_for(mismatched, corpus, tmp_path / "out"),
        "7000 tokens",
        "100",
        "Use the teacher's own tokenizer",
    )


def test_more_student_layers_than_teacher_layers(script, capsys, teacher, corpus, tmp_path):
    argv = argv_for(teacher, corpus, tmp_path / "out")
    argv[argv.index("--num_student_layers") + 1] = "8"
    fails(script, capsys, argv, "between 1 and 4 layers", "--num_student_layers")


@pytest.mark.parametrize(
    ("layers", "fragment"),
    [(["0", "0"], "repeats a teacher layer"), (["0", "4"], "out of range"), (["2", "1"], "must be increasing")],
    ids=["duplicate", "out-of-range", "decreasing"],
)
def test_bad_student_layers(script, capsys, teacher, corpus, tmp_path, layers, fragment):
    err = fails(script, capsys, argv_for(teacher, corpus, tmp_path / "out", "--student_layers", *layers), fragment)
    assert "--student_layers" in err and ("0..3" in err or "once" in err or "teacher's layer order" in err)


def test_max_seq_length_above_position_embeddings(script, capsys, teacher, corpus, tmp_path):
    argv = argv_for(teacher, corpus, tmp_path / "out")
    argv[argv.index("--max_seq_length") + 1] = "100"
    fails(script, capsys, argv, "--max_seq_length 100 is longer", "(64)", "Use --max_seq_length 64 or less")


# ------------------------------------------------------------------ run set-up


def test_output_dir_with_finished_model(script, capsys, teacher, corpus, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.json").write_text("{}")
    (out / "model.safetensors").write_bytes(b"precious")
    fails(script, capsys, argv_for(teacher, corpus, out), "already holds a finished model", "--overwrite_output_dir")
    assert (out / "model.safetensors").read_bytes() == b"precious"
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="--fp16 is valid where CUDA is available")
def test_fp16_on_cpu(script, capsys, teacher, corpus, tmp_path):
    fails(script, capsys, argv_for(teacher, corpus, tmp_path / "out", "--fp16"), "--fp16 needs a CUDA", "--bf16")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ training


def test_teacher_with_nan_weights(script, capsys, teacher, corpus, tmp_path):
    from transformers import AutoTokenizer, BertForMaskedLM

    model = BertForMaskedLM.from_pretrained(teacher)
    with torch.no_grad():
        model.bert.encoder.layer[1].output.dense.weight[0, 0] = float("nan")
    broken = tmp_path / "broken"
    model.save_pretrained(broken)
    AutoTokenizer.from_pretrained(teacher).save_pretrained(broken)
    fails(
        script, capsys, argv_for(broken, corpus, tmp_path / "out"),
        "NaN or infinite weights in bert.encoder.layer.1.output.dense.weight", "Re-download it",
    )  # fmt: skip
    assert not looks_finished(tmp_path / "out")


def nan_setup(tmp_path, teacher_dir):
    """A corpus of short sentences plus one long one, and a teacher whose last position embedding is huge
    (finite, 1e38): the embedding LayerNorm overflows to NaN there, as activations do in a diverging run.

    Only a batch with a 32-token sequence reaches position 31, so training is fine until that batch.
    Returns (corpus, seed, index of the first poisoned training sequence)."""
    from transformers import AutoTokenizer, BertForMaskedLM

    from hf_eliquare.data import load_sentence_splits, tokenize_splits

    tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
    lines = [line for line in demo_lines(600) if 14 <= len(tokenizer(line)["input_ids"]) <= 28][:90]
    long = max(demo_lines(600), key=lambda line: len(tokenizer(line)["input_ids"]))
    text = tmp_path / "nan.txt"
    text.write_text("\n".join(lines + [long]) + "\n")

    model = BertForMaskedLM.from_pretrained(teacher_dir)
    with torch.no_grad():
        model.bert.embeddings.position_embeddings.weight[31:] = 1e38
    poisoned = tmp_path / "nan-teacher"
    model.save_pretrained(poisoned)
    tokenizer.save_pretrained(poisoned)

    for seed in range(40):  # a seed whose split puts the long sentence in training, a few batches in
        splits = tokenize_splits(
            load_sentence_splits(train_files=[str(text)], seed=seed), tokenizer, max_seq_length=32
        )
        long_train = [i for i, n in enumerate(splits["train"]["length"]) if n == 32]
        if long_train and 24 <= long_train[0] < 60 and 32 not in splits["validation"]["length"]:
            return poisoned, text, seed, long_train[0]
    pytest.fail("no seed puts the long sentence a few batches into the training split")


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(script, capsys, teacher, tmp_path):
    poisoned, text, seed, index = nan_setup(tmp_path, teacher)
    out = tmp_path / "out"
    argv = distill_argv(
        poisoned, text, out, "--num_train_epochs", "1", "--seed", str(seed), "--max_eval_samples", "8",
        "--train_sampling_strategy", "sequential", "--eval_strategy", "steps", "--eval_steps", "2",
        "--save_strategy", "steps", "--save_steps", "2",
    )  # fmt: skip
    failing_step = index // 8  # batch 8: the optimizer steps completed before the poisoned batch
    err = fails(
        script,
        capsys,
        argv,
        "loss became nan",
        f"at step {failing_step}",
        "--resume_from_checkpoint",
        "teacher's outputs",
    )
    assert not looks_finished(out), "no final model after a diverged run"
    checkpoints = sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*"))
    assert checkpoints and checkpoints[-1] == 2 * (failing_step // 2), checkpoints
    assert str(out) in err
    last = load_file(str(out / f"checkpoint-{checkpoints[-1]}" / "model.safetensors"))
    for name, tensor in last.items():
        assert torch.isfinite(tensor).all(), name
    assert (out / f"checkpoint-{checkpoints[-1]}" / "trainer_state.json").is_file()
