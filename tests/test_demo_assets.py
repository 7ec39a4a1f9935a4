"""The embedded demo's committed assets: sample text, tokenizer of real mBERT pieces, config."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import pytest
from transformers import AutoTokenizer

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "demo"
SAMPLE = DEMO / "data" / "sl_sample.txt"
CONFIG = ROOT / "examples" / "configs" / "demo_sl.yaml"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MBERT = SHARED / "tokenizers" / "bert-base-multilingual-cased"


def _sample_lines() -> list[str]:
    return SAMPLE.read_text(encoding="utf-8").splitlines()


def _shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


def test_sample_is_small_non_empty_and_attributed():
    assert SAMPLE.stat().st_size <= 2 * 1024 * 1024
    lines = _sample_lines()
    assert len(lines) > 1000
    assert all(line.strip() == line and line for line in lines)
    assert len(set(lines)) == len(lines)
    attribution = (DEMO / "data" / "ATTRIBUTION.md").read_text(encoding="utf-8")
    for needle in (
        "CC BY-SA 4.0",
        "17011b12eae4e522da4d1eeeffd439085466623c",
        "593cea88519930f776c1a4a1980b6a35b39dca57",
    ):
        assert needle in attribution


def test_sample_holds_no_ud_test_sentence():
    test = _shared(SHARED / "ud" / "sl" / "test.conllu")
    with open(test, encoding="utf-8") as handle:
        test_sentences = {" ".join(line[len("# text =") :].split()) for line in handle if line.startswith("# text =")}
    assert len(test_sentences) > 1000
    assert not test_sentences & set(_sample_lines())


def test_tokenizer_loads_offline_and_is_a_bert_wordpiece():
    tokenizer = AutoTokenizer.from_pretrained(DEMO / "tokenizer", local_files_only=True)
    assert tokenizer.convert_ids_to_tokens(list(range(5))) == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    encoded = tokenizer("Vlada Republike Slovenije")
    assert encoded["input_ids"][0] == tokenizer.cls_token_id and encoded["input_ids"][-1] == tokenizer.sep_token_id
    # every sample line is covered by the vocabulary except for mBERT's own unknown characters
    tokens = [t for line in _sample_lines()[:300] for t in tokenizer.tokenize(line)]
    assert tokens.count(tokenizer.unk_token) < 0.01 * len(tokens)
    # an unseen word falls back to single-character pieces, not [UNK]
    assert tokenizer.unk_token not in tokenizer.tokenize("Qžyxwčk")


def test_tokenizer_pieces_are_real_mbert_pieces_in_mbert_order():
    full = AutoTokenizer.from_pretrained(_shared(MBERT))
    small = AutoTokenizer.from_pretrained(DEMO / "tokenizer")
    full_vocab = full.get_vocab()
    pieces = small.convert_ids_to_tokens(list(range(len(small))))
    assert all(piece in full_vocab for piece in pieces)
    old_ids = [full_vocab[p] for p in pieces[len(small.all_special_ids) :]]
    assert old_ids == sorted(old_ids)  # original relative order after the specials
    for line in itertools.islice(_sample_lines(), 0, None, 7):
        assert small.tokenize(line) == full.tokenize(line), line
    # normalizer and pre-tokenizer are mBERT's (text outside the sample may use dropped pieces, so
    # only the pipeline before WordPiece is compared there): accents and case kept, punctuation split
    text = "Šumijo ČRNI gozdovi,kajne?  Ja!"
    small_backend, full_backend = small.backend_tokenizer, full.backend_tokenizer
    assert small_backend.normalizer.normalize_str(text) == full_backend.normalizer.normalize_str(text)
    assert small_backend.pre_tokenizer.pre_tokenize_str(text) == full_backend.pre_tokenizer.pre_tokenize_str(text)


def test_demo_config_parses_with_run_distill():
    spec = importlib.util.spec_from_file_location("run_distill", ROOT / "examples" / "run_distill.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model_args, data_args, training_args = module.parse_args([str(CONFIG)])
    assert model_args.teacher_model_name_or_path == "examples/demo/teacher"
    assert model_args.num_student_layers == 2
    assert data_args.lang == "sl"
    assert data_args.train_file == ["examples/demo/data/sl_sample.txt"]
    assert (ROOT / data_args.train_file[0]).is_file()
    assert data_args.max_seq_length <= 128
    # the paper's loss is kept; only the schedule is demo-sized
    assert (training_args.alpha_ce, training_args.alpha_mlm, training_args.alpha_cos) == (5.0, 2.0, 1.0)
    assert training_args.temperature == 2.0
    assert training_args.load_best_model_at_end and training_args.metric_for_best_model == "loss"
    assert training_args.num_train_epochs >= 2  # so there is a best epoch to choose
