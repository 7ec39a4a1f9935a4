"""The bad-input catalogue, continued (issue 11): mistakes at every entry point — distillation, vocabulary,
fine-tuning, cards, the Python API — stop with exit 2 and one `error:` line naming the problem and the fix,
no traceback, nothing that looks finished, nothing of the user's replaced. Mistakes that can be known at
start-up fail before any model or corpus work (the loaders are replaced by tripwires to prove it)."""

from __future__ import annotations

import json
import logging
import os
import stat

import pytest
import torch
from _reliability import build_teacher, distill_argv, looks_finished, write_corpus
from conftest import DEMO_DIR, tiny_bert, tiny_xlmr

from hf_eliquare.cli import EXIT_USER_ERROR, run_main
from hf_eliquare.cli import distill as distill_cli
from hf_eliquare.cli import finetune as finetune_cli
from hf_eliquare.cli import vocab as vocab_cli
from hf_eliquare.errors import ConfigurationError, DataError


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return build_teacher(tmp_path_factory.mktemp("entry") / "teacher")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("entry-corpus") / "corpus.txt", 60)


@pytest.fixture
def no_model_work(monkeypatch):
    """Tripwires: a start-up mistake must be refused before a model, tokenizer or corpus is loaded."""

    def tripwire(*args, **kwargs):
        raise AssertionError("model or corpus work started before the start-up checks refused the run")

    monkeypatch.setattr(distill_cli, "load_teacher", tripwire)
    monkeypatch.setattr(distill_cli, "load_corpus", tripwire)
    monkeypatch.setattr("hf_eliquare.evaluation.finetune.prepare_data", tripwire)
    monkeypatch.setattr("hf_eliquare.loading.load_model", tripwire)


def fails(capsys, main, argv, *fragments) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_main(lambda: main([str(a) for a in argv]))
    assert exit_info.value.code == EXIT_USER_ERROR
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    err = stderr.rstrip().splitlines()[-1]
    assert err.startswith("error: "), stderr[-2000:]
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


def distill(teacher, corpus, out, *extra):
    return distill_argv(teacher, corpus, out, "--num_train_epochs", "1", *extra)


# ------------------------------------------------------------------ distillation: flags, before any work


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--per_device_train_batch_size", "0"], ["--per_device_train_batch_size must be at least 1"]),
        (["--gradient_accumulation_steps", "0"], ["--gradient_accumulation_steps must be at least 1"]),
        (["--learning_rate=-1e-4"], ["--learning_rate must be ≥ 0"]),
        (["--mask_replace_prob", "1.5"], ["--mask_replace_prob must be a probability in [0, 1]"]),
        (["--mask_replace_prob", "0.8", "--random_replace_prob", "0.5"], ["exceed 1", "0.8 + 0.1"]),
        (["--mlm_probability", "0"], ["mlm_probability must be in (0, 1]"]),
        (["--validation_split", "0.999"], ["--validation_split must be in (0, 0.5]", "0.1"]),
        (["--max_train_samples", "0"], ["--max_train_samples must be at least 1", "Leave it out"]),
        (["--max_eval_samples", "0"], ["--max_eval_samples must be at least 1"]),
        (["--min_seq_length", "40"], ["--min_seq_length 40 is above --max_seq_length 32", "Lower --min_seq_length"]),
        (["--eval_strategy", "no"], ["--load_best_model_at_end", "--eval_strategy", "--load_best_model_at_end false"]),
        (["--save_strategy", "steps"], ["--load_best_model_at_end", "--save_strategy"]),
        (["--learning_rat", "1e-4"], ["Unknown argument(s) --learning_rat", "--help"]),
    ],
    ids=[
        "batch-0",
        "accumulation-0",
        "negative-lr",
        "probability",
        "probabilities-sum",
        "mlm-probability-0",
        "validation-split",
        "max-train-0",
        "max-eval-0",
        "min-above-max-length",
        "best-model-without-eval",
        "best-model-save-steps",
        "misspelled-flag",
    ],
)
def test_distill_flag_mistakes_fail_at_start(capsys, teacher, corpus, tmp_path, no_model_work, extra, fragments):
    fails(capsys, distill_cli.main, distill(teacher, corpus, tmp_path / "out", *extra), *fragments)
    assert not (tmp_path / "out").exists()


def test_output_dir_is_a_file(capsys, teacher, corpus, tmp_path, no_model_work):
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    for extra in ([], ["--overwrite_output_dir"]):
        fails(capsys, distill_cli.main, distill(teacher, corpus, target, *extra), "is a file, not a directory")
    assert target.read_text() == "mine"


def test_output_dir_is_the_teacher(capsys, teacher, corpus, no_model_work):
    before = sorted(p.name for p in teacher.iterdir())
    weights = (teacher / "model.safetensors").read_bytes()
    fails(
        capsys, distill_cli.main, distill(teacher, corpus, teacher, "--overwrite_output_dir"),
        "is the input model directory", "would replace the input",
    )  # fmt: skip
    assert sorted(p.name for p in teacher.iterdir()) == before
    assert (teacher / "model.safetensors").read_bytes() == weights


def test_missing_resume_checkpoint(capsys, teacher, corpus, tmp_path, no_model_work):
    fails(
        capsys, distill_cli.main,
        distill(teacher, corpus, tmp_path / "out", "--resume_from_checkpoint", tmp_path / "checkpoint-7"),
        "--resume_from_checkpoint", "does not exist",
    )  # fmt: skip


def test_missing_train_file(capsys, teacher, tmp_path, no_model_work):
    fails(
        capsys,
        distill_cli.main,
        distill(teacher, tmp_path / "nope.txt", tmp_path / "out"),
        "--train_file",
        "does not exist",
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_dir(capsys, teacher, corpus, tmp_path, no_model_work):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        fails(capsys, distill_cli.main, distill(teacher, corpus, locked / "out"), "cannot be written")
    finally:
        locked.chmod(stat.S_IRWXU)


def test_unwritable_output_dir_even_as_root(capsys, teacher, corpus, tmp_path, no_model_work, monkeypatch):
    """The same check where the tests run as root (who may write anywhere): the permission test is faked."""
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(locked) else real_access(p, mode))
    fails(capsys, distill_cli.main, distill(teacher, corpus, locked / "out"), "cannot be written", str(locked))
    assert list(locked.iterdir()) == []


# ------------------------------------------------------------------ distillation: models and tokenizers


def test_teacher_without_tokenizer_files(capsys, teacher, corpus, tmp_path):
    bare = tmp_path / "bare"
    tiny_bert(vocab_size=7000, layers=4, max_positions=64).save_pretrained(bare)
    fails(
        capsys,
        distill_cli.main,
        distill(bare, corpus, tmp_path / "out"),
        "holds no tokenizer files",
        "--tokenizer_name",
    )
    assert not looks_finished(tmp_path / "out")


def test_truncated_teacher_weights(capsys, teacher, corpus, tmp_path):
    import shutil

    broken = tmp_path / "truncated"
    shutil.copytree(teacher, broken)
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 2])
    fails(
        capsys, distill_cli.main, distill(broken, corpus, tmp_path / "out"), "cannot be loaded", "truncated or corrupt"
    )


def test_broken_teacher_config(capsys, teacher, corpus, tmp_path):
    import shutil

    broken = tmp_path / "badconfig"
    shutil.copytree(teacher, broken)
    (broken / "config.json").write_text('{"model_type": "bert", "hidden_size": ')
    fails(capsys, distill_cli.main, distill(broken, corpus, tmp_path / "out"), "config.json", "cannot be read")


def _bpe_teacher(directory):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(["the cat sat on the mat"] * 20, trainers.BpeTrainer(
        vocab_size=60, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    ))  # fmt: skip
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
        mask_token="<mask>",
    )  # fmt: skip
    model = tiny_xlmr(vocab_size=64)
    model.save_pretrained(directory)
    fast.save_pretrained(directory)
    return directory


def test_bpe_tokenizer_with_post_reduction_fails_before_the_corpus(capsys, corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(distill_cli, "load_corpus", lambda *a, **k: pytest.fail("the corpus was read"))
    bpe = _bpe_teacher(tmp_path / "bpe")
    argv = distill(bpe, corpus, tmp_path / "out", "--vocab_reduction", "post")
    argv[argv.index("--num_student_layers") + 1] = "1"
    fails(capsys, distill_cli.main, argv, "BPE", "not supported", "--vocab_reduction none")


# ------------------------------------------------------------------ resuming


def _checkpoint(path, *, truncate_optimizer=False):
    from safetensors.torch import save_file

    path.mkdir(parents=True)
    save_file({"w": torch.zeros(4)}, str(path / "model.safetensors"))
    torch.save({"state": {}}, path / "optimizer.pt")
    if truncate_optimizer:
        data = (path / "optimizer.pt").read_bytes()
        (path / "optimizer.pt").write_bytes(data[: len(data) // 2])
    (path / "trainer_state.json").write_text(json.dumps({"global_step": 1}))


def test_auto_resume_falls_back_from_a_corrupt_checkpoint(tmp_path, caplog):
    from hf_eliquare.cli.checkpoints import last_complete_checkpoint

    _checkpoint(tmp_path / "checkpoint-2")
    _checkpoint(tmp_path / "checkpoint-4", truncate_optimizer=True)
    _checkpoint(tmp_path / "checkpoint-6")
    (tmp_path / "checkpoint-6" / "trainer_state.json").write_text('{"global_step": ')  # truncated
    with caplog.at_level(logging.WARNING):
        assert last_complete_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-2")
    assert "checkpoint-6" in caplog.text and "trainer_state.json is unreadable" in caplog.text
    assert "checkpoint-4" in caplog.text and "optimizer.pt is truncated or corrupt" in caplog.text


def test_overwrite_output_dir_keeps_auto_resume(tmp_path, teacher):
    """The demo config sets --overwrite_output_dir: re-running a killed run must resume, not start over."""
    out = tmp_path / "out"
    _checkpoint(out / "checkpoint-3")
    model_args, data_args, training_args = distill_cli.parse_args(
        distill(teacher, "corpus.txt", out, "--overwrite_output_dir")
    )
    assert distill_cli.check_output_dir_for_run(model_args, training_args) == str(out / "checkpoint-3")


def test_truncated_explicit_checkpoint(capsys, teacher, corpus, tmp_path, no_model_work):
    _checkpoint(tmp_path / "checkpoint-5")
    data = (tmp_path / "checkpoint-5" / "model.safetensors").read_bytes()
    (tmp_path / "checkpoint-5" / "model.safetensors").write_bytes(data[:-8])
    fails(
        capsys, distill_cli.main,
        distill(teacher, corpus, tmp_path / "out", "--resume_from_checkpoint", tmp_path / "checkpoint-5"),
        "cannot be resumed from", "model.safetensors is truncated",
    )  # fmt: skip


# ------------------------------------------------------------------ corpora


def test_jsonl_corpus_is_read_through_text_column(tmp_path):
    from hf_eliquare.data import load_sentence_splits

    rows = [{"id": i, "body": f"To je stavek številka {i}. In še en stavek."} for i in range(20)]
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    splits = load_sentence_splits(train_files=[str(path)], text_column="body", validation_split=0.1)
    texts = list(splits["train"]["text"]) + list(splits["validation"]["text"])
    assert len(texts) == 40 and not any("{" in t or '"body"' in t for t in texts)
    with pytest.raises(DataError, match=r"corpus.jsonl: non-empty line 1 has no 'text' field.*--text_column"):
        load_sentence_splits(train_files=[str(path)], validation_split=0.1)


# ------------------------------------------------------------------ the vocab command


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    from transformers import AutoTokenizer

    directory = tmp_path_factory.mktemp("small") / "model"
    tokenizer = AutoTokenizer.from_pretrained(DEMO_DIR / "tokenizer")
    tiny_bert(vocab_size=len(tokenizer), layers=2, max_positions=64).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def test_vocab_cli_never_replaces_a_file(capsys, small_model, corpus, tmp_path):
    target = tmp_path / "reduced"
    target.write_text("precious")
    for extra in ([], ["--overwrite_output_dir", "true"]):
        argv = ["--model", small_model, "--corpus", corpus, "--output_dir", target, *extra]
        fails(capsys, vocab_cli.main, argv, "is a file, not a directory")
    assert target.read_text() == "precious"


def test_vocab_cli_model_without_tokenizer(capsys, corpus, tmp_path):
    bare = tmp_path / "bare"
    tiny_bert(vocab_size=100, layers=1).save_pretrained(bare)
    argv = ["--model", bare, "--corpus", corpus, "--output_dir", tmp_path / "out"]
    fails(capsys, vocab_cli.main, argv, "holds no tokenizer files")
    assert not (tmp_path / "out").exists()


def test_reduce_vocab_accepts_str_and_path_file_names(small_model, corpus):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from hf_eliquare import reduce_vocab

    results = []
    for files in ([str(corpus)], [corpus], str(corpus)):
        model = AutoModelForMaskedLM.from_pretrained(small_model)
        tokenizer = AutoTokenizer.from_pretrained(small_model)
        model, tokenizer = reduce_vocab(model, tokenizer, files, min_count=1, show_progress=False)
        results.append((len(tokenizer), model.config.eliquare["vocab_reduction"]["corpus_sentences"]))
    assert results[0] == results[1] == results[2]
    assert results[0][1] > 60, "the file's sentences, not the file name, were counted"


# ------------------------------------------------------------------ fine-tuning


def finetune(model, out, *extra):
    return [
        "--model_name_or_path", model, "--task_type", "classification", "--train_file", "{train}",
        "--output_dir", out, "--num_train_epochs", "1", "--per_device_train_batch_size", "4", "--use_cpu",
        "--report_to", "none", "--disable_tqdm", "true", *extra,
    ]  # fmt: skip


@pytest.fixture
def tsv(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("text\tlabel\n" + "".join(f"stavek {i}\t{'ab'[i % 2]}\n" for i in range(40)), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--max_eval_samples", "0"], ["--max_eval_samples must be at least 1"]),
        (["--max_test_samples", "0"], ["--max_test_samples must be at least 1"]),
        (["--max_seq_length", "100"], ["--max_seq_length 100 is longer", "(64)"]),
        (["--per_device_train_batch_size", "0"], ["--per_device_train_batch_size must be at least 1"]),
        (["--eval_strategy", "no"], ["--load_best_model_at_end"]),
        (["--test_file", "missing.tsv"], ["--test_file", "does not exist"]),
    ],
    ids=["max-eval-0", "max-test-0", "positions", "batch-0", "best-model-without-eval", "missing-file"],
)
def test_finetune_mistakes_fail_at_start(capsys, small_model, tsv, tmp_path, no_model_work, extra, fragments):
    argv = [a.format(train=tsv) if isinstance(a, str) else a for a in finetune(small_model, tmp_path / "out", *extra)]
    fails(capsys, finetune_cli.main, argv, *fragments)
    assert not (tmp_path / "out").exists()


def test_finetune_model_without_tokenizer_files(capsys, tsv, tmp_path, no_model_work):
    bare = tmp_path / "bare"
    tiny_bert(vocab_size=100, layers=1).save_pretrained(bare)
    argv = [a.format(train=tsv) if isinstance(a, str) else a for a in finetune(bare, tmp_path / "out")]
    fails(capsys, finetune_cli.main, argv, "holds no tokenizer files", "--tokenizer_name")


def test_finetune_into_the_model_directory(capsys, small_model, tsv, no_model_work):
    argv = [a.format(train=tsv) if isinstance(a, str) else a for a in finetune(small_model, small_model)]
    fails(capsys, finetune_cli.main, [*argv, "--overwrite_output_dir", "true"], "is the input model directory")
    assert looks_finished(small_model)


def test_tsv_row_with_a_tab_in_the_text(tmp_path):
    from hf_eliquare.evaluation.readers import read_classification

    path = tmp_path / "shifted.tsv"
    path.write_text("text\tlabel\nfine\tpos\ntab\there\tneg\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"shifted.tsv:3: 3 fields, but the header has 2.*contain(s|ing) a tab"):
        read_classification(path, "tsv")


def test_non_utf8_finetuning_file_names_file_and_line(tmp_path):
    from hf_eliquare.evaluation.readers import read_conll

    path = tmp_path / "latin.txt"
    path.write_bytes("Prvi O\n\nŠola O\n".encode("iso-8859-2"))
    with pytest.raises(DataError, match=r"latin.txt:3: not valid UTF-8.*iconv -f LATIN2"):
        read_conll(path)
    utf16 = tmp_path / "utf16.txt"
    utf16.write_bytes("Šola O\n".encode("utf-16"))
    with pytest.raises(DataError, match="iconv -f UTF-16"):
        read_conll(utf16)


def test_sample_limits_draw_at_random_with_the_seed():
    from hf_eliquare.evaluation.finetune import _cap

    label_sorted = [{"text": str(i), "label": "neg" if i < 50 else "pos"} for i in range(100)]
    first = _cap(label_sorted, 20, seed=42)
    assert {ex["label"] for ex in first} == {"neg", "pos"}, "the first 20 rows of a sorted file are one class"
    assert first == _cap(label_sorted, 20, seed=42) != _cap(label_sorted, 20, seed=1)
    assert [int(ex["text"]) for ex in first] == sorted(int(ex["text"]) for ex in first)  # file order kept


# ------------------------------------------------------------------ cards


def test_card_refuses_averaging_different_scales(tmp_path):
    from hf_eliquare.hub.cards import load_eval_results, summarize_eval

    files = []
    for name, value in (("a", 0.9), ("b", 85.3)):
        path = tmp_path / name / "all_results.json"
        path.parent.mkdir()
        path.write_text(json.dumps({"task": "sl_ner", "task_type": "ner", "test_metrics": {"f1": value}}))
        files.append(path)
    entries = [e for f in files for e in load_eval_results(f)]
    with pytest.raises(DataError, match=r"different scales.*0.9.*85.3"):
        summarize_eval(entries)


# ------------------------------------------------------------------ the Python API


def _student_and_teacher():
    from hf_eliquare import create_student

    teacher = tiny_bert(vocab_size=50, layers=2)
    return create_student(teacher, num_layers=1), teacher


def test_trainer_without_args_creates_nothing(tmp_path, monkeypatch):
    from hf_eliquare import DistillationTrainer

    monkeypatch.chdir(tmp_path)
    student, teacher = _student_and_teacher()
    with pytest.raises(ConfigurationError, match="args=DistillationTrainingArguments"):
        DistillationTrainer(model=student, teacher_model=teacher)
    assert list(tmp_path.iterdir()) == []


def test_trainer_best_model_without_eval_dataset(tmp_path):
    from hf_eliquare import DistillationTrainer, DistillationTrainingArguments

    student, teacher = _student_and_teacher()
    args = DistillationTrainingArguments(output_dir=str(tmp_path / "o"), report_to="none", use_cpu=True)
    with pytest.raises(ConfigurationError, match="no eval_dataset.*eval_strategy='no'"):
        DistillationTrainer(model=student, teacher_model=teacher, args=args)


def test_trainer_without_collator_and_pin_memory_on_cpu(tmp_path):
    from hf_eliquare import DistillationTrainer, DistillationTrainingArguments

    student, teacher = _student_and_teacher()
    args = DistillationTrainingArguments(
        output_dir=str(tmp_path / "o"), report_to="none", use_cpu=True, eval_strategy="no", save_strategy="no",
        load_best_model_at_end=False,
    )  # fmt: skip
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args)
    if not torch.cuda.is_available():
        assert trainer.args.dataloader_pin_memory is False
    batch = {"input_ids": torch.ones(2, 5, dtype=torch.long), "attention_mask": torch.ones(2, 5, dtype=torch.long)}
    with pytest.raises(ConfigurationError, match="no 'labels'.*DataCollatorForDistillation"):
        trainer.compute_loss(student, batch)


# ------------------------------------------------------------------ outputs


def test_outputs_follow_the_umask_and_stale_temp_dirs_go(tmp_path):
    import time

    from hf_eliquare.io import STALE_TEMP_SECONDS, atomic_output_dir, write_text_atomically

    stale = tmp_path / ".out.tmp-abc123"
    stale.mkdir()
    old = time.time() - 2 * STALE_TEMP_SECONDS
    os.utime(stale, (old, old))
    previous = os.umask(0o022)
    try:
        with atomic_output_dir(tmp_path / "out") as tmp:
            write_text_atomically(tmp / "card.md", "hello")
    finally:
        os.umask(previous)
    assert not stale.exists()
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "out" / "card.md").stat().st_mode) == 0o644


def test_vocab_jsonl_corpus_is_streamed_through_text_column(tmp_path):
    from hf_eliquare.vocab import iter_corpus

    path = tmp_path / "c.jsonl"
    path.write_text('{"body": "Prvi stavek. Drugi stavek."}\n{"body": "Tretji."}\n', encoding="utf-8")
    assert list(iter_corpus(path, text_column="body")) == ["Prvi stavek.", "Drugi stavek.", "Tretji."]
    with pytest.raises(DataError, match="c.jsonl: non-empty line 1 has no 'text' field"):
        list(iter_corpus(path))


def test_card_output_that_is_a_directory(tmp_path):
    from hf_eliquare.hub.cards import write_model_card

    model = tmp_path / "student"
    tiny_bert(vocab_size=50, layers=1).save_pretrained(model)
    with pytest.raises(ConfigurationError, match="is a directory; pass the card's file name"):
        write_model_card(model, output=tmp_path, lang="sl")
