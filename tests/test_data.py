"""Corpus pipeline: sentence splitting, loading, tokenisation, split."""

import gzip

import pytest
from conftest import shared_path
from transformers import AutoTokenizer

from hf_eliquare import DataError, build_mlm_datasets
from hf_eliquare.data import load_text_files, split_sentences, token_counts
from hf_eliquare.languages import get_language


def test_split_sentences():
    text = "Vlada je sprejela zakon. Dr. Novak pa ni bil za! Kaj pa J. Kranjc? npr. tudi to.\nNova vrstica"
    assert split_sentences(text) == [
        "Vlada je sprejela zakon.",
        "Dr. Novak pa ni bil za!",
        "Kaj pa J. Kranjc? npr. tudi to.",
        "Nova vrstica",
    ]
    assert split_sentences("  \n \n") == []
    assert split_sentences("यह एक वाक्य है। यह दूसरा है।") == ["यह एक वाक्य है।", "यह दूसरा है।"]
    assert split_sentences('Rekel je: "Pridi." Potem je odšel.') == ['Rekel je: "Pridi."', "Potem je odšel."]


def test_language_registry():
    assert get_language("sl").wikipedia_config == "20231101.sl"
    for code in ("fr", "nl", "he", "hi", "sl", "sw"):
        assert get_language(code).code == code
    with pytest.raises(Exception, match="Known codes: .*sl.*--wikipedia_config 20231101.xx"):
        get_language("xx")


def test_gz_and_plain_files_give_the_same_corpus(tmp_path):
    lines = ["Prvi stavek je tu.", "", "   ", "Drugi stavek. Tretji stavek!"]
    plain = tmp_path / "a.txt"
    plain.write_text("\n".join(lines), encoding="utf-8")
    packed = tmp_path / "a.txt.gz"
    with gzip.open(packed, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines))
    assert load_text_files([str(plain)])["text"] == load_text_files([str(packed)])["text"]
    assert len(load_text_files([str(plain), str(packed)])) == 4


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "no text"),
        (b"   \n\t\n  ", "no text"),
        (b"ok line\n\xff\xfe bad bytes\n", "not valid UTF-8"),
    ],
)
def test_bad_text_files(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        load_text_files([str(path)])


def test_truncated_gz_and_missing_file(tmp_path):
    good = gzip.compress(("Stavek številka ena je tukaj.\n" * 2000).encode())
    path = tmp_path / "cut.txt.gz"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_text_files([str(path)])
    with pytest.raises(DataError, match="does not exist"):
        load_text_files([str(tmp_path / "nope.txt")])


def test_sequences_chunks_filter_and_split(tiny_teacher_and_corpus, tmp_path):
    teacher_dir, corpus = tiny_teacher_and_corpus
    tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
    long_line = " ".join(["ka po li ne"] * 40) + "."
    text = tmp_path / "c.txt"
    text.write_text(corpus.read_text() + long_line + "\nKratko.\n", encoding="utf-8")
    data = build_mlm_datasets(tokenizer, train_files=[str(text)], max_seq_length=32, min_seq_length=12, seed=3)
    assert set(data) == {"train", "validation"}
    all_rows = list(data["train"]) + list(data["validation"])
    assert all(12 <= len(r["input_ids"]) <= 32 for r in all_rows)
    assert all(
        r["input_ids"][0] == tokenizer.cls_token_id and r["input_ids"][-1] == tokenizer.sep_token_id for r in all_rows
    )
    assert all(r["length"] == len(r["input_ids"]) for r in all_rows)
    # the 161-token sentence became several 32-token sequences instead of being truncated
    assert sum(len(r["input_ids"]) == 32 for r in all_rows) >= 5
    # about 90:10, and the same seed gives the same split
    n = len(all_rows)
    assert 0.05 < len(data["validation"]) / n < 0.15
    again = build_mlm_datasets(tokenizer, train_files=[str(text)], max_seq_length=32, min_seq_length=12, seed=3)
    assert again["validation"]["input_ids"] == data["validation"]["input_ids"]
    counts = token_counts(data["train"], len(tokenizer))
    assert counts.sum() == sum(len(r["input_ids"]) for r in data["train"])
    assert counts[tokenizer.cls_token_id] == len(data["train"])


def test_real_slovene_text_with_real_mbert_tokenizer():
    tok_dir = shared_path("tokenizers", "bert-base-multilingual-cased")
    text = shared_path("text", "sl.txt.gz")
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    with gzip.open(text, "rt", encoding="utf-8") as handle:
        paragraphs = [next(handle) for _ in range(200)]
    sentences = [s for p in paragraphs for s in split_sentences(p)]
    assert len(sentences) > len(paragraphs)
    lengths = [len(tokenizer(s)["input_ids"]) for s in sentences]
    assert sum(lengths) / len(lengths) > 5
