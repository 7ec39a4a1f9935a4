"""VocabReduce: exactness on real mBERT / trained Unigram tokenizers, selection rules, model slicing, errors."""

from __future__ import annotations

import gzip
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForMaskedLM,
    AutoTokenizer,
    BertConfig,
    BertForMaskedLM,
    BertForTokenClassification,
    BertTokenizer,
    RobertaConfig,
    RobertaForMaskedLM,
    TokenizersBackend,
    XLMRobertaConfig,
    XLMRobertaForMaskedLM,
    XLMRobertaTokenizer,
)

from hf_eliquare.cli.vocab import main
from hf_eliquare.errors import ConfigurationError, DataError, OutputDirError
from hf_eliquare.vocab import (
    always_kept_ids,
    count_sentence_occurrences,
    reduce_model_vocab,
    reduce_tokenizer,
    reduce_vocab,
    reduce_vocab_with_counts,
    select_vocabulary,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MBERT = DATA / "tokenizers" / "bert-base-multilingual-cased"
NUM_LINES = 2000  # slice of the raw text used for counting
NUM_MODEL_SENTENCES = 24  # sentences run through the model (logits are (batch, seq, 119547))


def _lines(lang: str, n: int = NUM_LINES) -> list[str]:
    path = DATA / "text" / f"{lang}.txt.gz"
    if not path.is_file():
        pytest.skip(f"shared data {path} is absent")
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [line.strip() for line in itertools.islice(handle, n) if line.strip()]


def _sentences(lang: str, n: int = NUM_LINES) -> list[str]:
    from hf_eliquare.data import split_sentences

    return [s for line in _lines(lang, n) for s in split_sentences(line)]


@pytest.fixture(scope="module")
def mbert_tokenizer():
    if not (MBERT / "tokenizer.json").is_file():
        pytest.skip(f"shared data {MBERT} is absent")
    return AutoTokenizer.from_pretrained(MBERT)


def _tiny_bert(vocab_size: int, **kwargs) -> BertForMaskedLM:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        **kwargs,
    )
    return BertForMaskedLM(config).eval()


def _encode(tokenizer, texts):
    return tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")


def _assert_exact(old_model, old_tok, new_model, new_tok, texts, kept):
    """Same token strings, same hidden states, logits equal at the kept columns."""
    kept_t = torch.tensor(kept)
    for start in range(0, len(texts), 8):
        batch = texts[start : start + 8]
        old_inputs, new_inputs = _encode(old_tok, batch), _encode(new_tok, batch)
        for a, b in zip(old_inputs["input_ids"], new_inputs["input_ids"]):
            assert old_tok.convert_ids_to_tokens(a) == new_tok.convert_ids_to_tokens(b)
        with torch.no_grad():
            old_out = old_model(**old_inputs, output_hidden_states=True)
            new_out = new_model(**new_inputs, output_hidden_states=True)
        for h_old, h_new in zip(old_out.hidden_states, new_out.hidden_states):
            torch.testing.assert_close(h_new, h_old, atol=1e-5, rtol=0)
        assert new_out.logits.shape[-1] == len(kept)
        torch.testing.assert_close(new_out.logits, old_out.logits[..., kept_t], atol=1e-5, rtol=0)


def _fully_kept(tokenizer, texts, kept):
    kept_set = set(kept)
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [t for t, ids in zip(texts, encoded) if set(ids) <= kept_set]


# ------------------------------------------------------------------------------------------------
# Exactness on real data
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["sl", "sw"])
def test_mbert_reduction_is_exact_on_real_text(lang, mbert_tokenizer, tmp_path):
    sentences = _sentences(lang)
    model = _tiny_bert(mbert_tokenizer.vocab_size)
    assert model.get_input_embeddings().weight.shape[0] == len(mbert_tokenizer) == 119547
    original = _tiny_bert(mbert_tokenizer.vocab_size)
    original.load_state_dict(model.state_dict())

    counts, num_sentences = count_sentence_occurrences(mbert_tokenizer, sentences, show_progress=False)
    assert num_sentences == len(sentences)
    new_model, new_tok = reduce_vocab_with_counts(model, mbert_tokenizer, counts, num_sentences)
    kept = select_vocabulary(counts, num_sentences, mbert_tokenizer)
    assert len(new_tok) == len(kept) == new_model.config.vocab_size < 119547 // 4
    assert type(new_tok) is BertTokenizer  # transformers 5 class kept (its rebuild was checked identical)

    # Every sentence whose tokens are all kept tokenises to the same strings (the whole slice).
    eligible = _fully_kept(mbert_tokenizer, sentences, kept)
    assert len(eligible) > 0.5 * len(sentences)
    old_tokens = [mbert_tokenizer.tokenize(s) for s in eligible]
    assert [new_tok.tokenize(s) for s in eligible] == old_tokens
    # … and the model agrees on a sample (full-vocabulary logits are large).
    sample = eligible[:: max(1, len(eligible) // NUM_MODEL_SENTENCES)][:NUM_MODEL_SENTENCES]
    _assert_exact(original, mbert_tokenizer, new_model, new_tok, sample, kept)
    assert new_model.cls.predictions.decoder.weight is new_model.bert.embeddings.word_embeddings.weight

    # Round trip through save_pretrained / Auto*.from_pretrained.
    new_model.save_pretrained(tmp_path)
    new_tok.save_pretrained(tmp_path)
    loaded_model = AutoModelForMaskedLM.from_pretrained(tmp_path).eval()
    loaded_tok = AutoTokenizer.from_pretrained(tmp_path)
    assert type(loaded_tok) is BertTokenizer and len(loaded_tok) == len(kept)
    assert [loaded_tok.tokenize(s) for s in eligible] == old_tokens
    assert loaded_model.cls.predictions.decoder.weight is loaded_model.bert.embeddings.word_embeddings.weight
    _assert_exact(original, mbert_tokenizer, loaded_model, loaded_tok, sample, kept)
    info = json.loads((tmp_path / "config.json").read_text())["eliquare"]["vocab_reduction"]
    assert info == {
        "original_vocab_size": 119547,
        "kept_vocab_size": len(kept),
        "min_sentence_fraction": 0.0005,
        "min_count": None,
        "max_vocab_size": None,
        "corpus_sentences": num_sentences,
    }


def test_mbert_special_tokens_first_in_original_order(mbert_tokenizer):
    sentences = _sentences("sw", 300)
    model = _tiny_bert(mbert_tokenizer.vocab_size, pad_token_id=0)
    model, tok = reduce_vocab(model, mbert_tokenizer, sentences, min_sentence_fraction=0.01, show_progress=False)
    specials = sorted(mbert_tokenizer.all_special_ids)  # [0, 100, 101, 102, 103]
    expected = mbert_tokenizer.convert_ids_to_tokens(specials)
    assert tok.convert_ids_to_tokens(list(range(len(specials)))) == expected
    assert sorted(tok.all_special_ids) == list(range(len(specials)))
    for name in ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token"):
        old_id = getattr(mbert_tokenizer, name + "_id")
        assert getattr(tok, name + "_id") == specials.index(old_id)
    assert model.config.pad_token_id == tok.pad_token_id == 0
    # The post-processor template uses the new [CLS]/[SEP] ids.
    ids = tok("Habari")["input_ids"]
    assert ids[0] == tok.cls_token_id == specials.index(101) and ids[-1] == tok.sep_token_id == specials.index(102)


def _train_unigram(lines: list[str], vocab_size: int = 1500) -> XLMRobertaTokenizer:
    """A small SentencePiece-style Unigram wrapped as XLM-R: <s> <pad> </s> <unk> first, <mask> last."""
    backend = Tokenizer(models.Unigram())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")]
    )
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=["<s>", "<pad>", "</s>", "<unk>"], unk_token="<unk>", show_progress=False
    )
    backend.train_from_iterator(lines, trainer=trainer)
    pieces = [tuple(piece) for piece in json.loads(backend.to_str())["model"]["vocab"]]
    assert [p for p, _ in pieces[:4]] == ["<s>", "<pad>", "</s>", "<unk>"]
    return XLMRobertaTokenizer(vocab=pieces + [("<mask>", 0.0)])


def test_unigram_xlmr_reduction_is_exact(tmp_path):
    lines = _lines("sw", 1500)
    tokenizer = _train_unigram(lines)
    torch.manual_seed(0)
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=130,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )
    model = XLMRobertaForMaskedLM(config).eval()
    original = XLMRobertaForMaskedLM(config).eval()
    original.load_state_dict(model.state_dict())

    corpus = _sentences("sw", 400)
    counts, n = count_sentence_occurrences(tokenizer, corpus, show_progress=False)
    kept = select_vocabulary(counts, n, tokenizer, min_sentence_fraction=0.005)
    assert kept[:4] == [0, 1, 2, 3] and kept[4] == tokenizer.mask_token_id  # specials first, original order
    model, new_tok = reduce_vocab_with_counts(model, tokenizer, counts, n, min_sentence_fraction=0.005)
    assert len(new_tok) == len(kept) < len(tokenizer)
    assert json.loads(new_tok.backend_tokenizer.to_str())["model"]["unk_id"] == 3
    new_scores = dict(map(tuple, json.loads(new_tok.backend_tokenizer.to_str())["model"]["vocab"]))
    old_scores = dict(map(tuple, json.loads(tokenizer.backend_tokenizer.to_str())["model"]["vocab"]))
    # Scores carried over (tokenizers re-parses floats to within an ulp on every load/deepcopy).
    assert all(new_scores[p] == pytest.approx(old_scores[p], rel=1e-12) for p in new_scores)

    eligible = _fully_kept(tokenizer, corpus, kept)
    assert len(eligible) > 50
    assert [new_tok.tokenize(s) for s in eligible] == [tokenizer.tokenize(s) for s in eligible]
    sample = eligible[:: len(eligible) // 16][:16]
    _assert_exact(original, tokenizer, model, new_tok, sample, kept)

    model.save_pretrained(tmp_path)
    new_tok.save_pretrained(tmp_path)
    loaded_tok = AutoTokenizer.from_pretrained(tmp_path)
    loaded_model = AutoModelForMaskedLM.from_pretrained(tmp_path).eval()
    assert type(loaded_tok) is XLMRobertaTokenizer
    assert [loaded_tok.tokenize(s) for s in eligible] == [tokenizer.tokenize(s) for s in eligible]
    _assert_exact(original, tokenizer, loaded_model, loaded_tok, sample, kept)


# ------------------------------------------------------------------------------------------------
# Small synthetic tokenizers: selection rules, pipeline fallbacks, model slicing
# ------------------------------------------------------------------------------------------------

WORDS = ["the", "cat", "sat", "on", "mat", "dog", "ran", "far", "away", "now"]


def _tiny_wordpiece() -> BertTokenizer:
    vocab = ["[PAD]", "a", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + ["##s", "##ed"]
    return BertTokenizer(vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=False)


def test_select_vocabulary_rules():
    tok = _tiny_wordpiece()
    specials = always_kept_ids(tok)
    assert specials == sorted(tok.convert_tokens_to_ids(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 50, size=len(tok))
    counts[tok.convert_tokens_to_ids("now")] = 0
    regular = [i for i in range(len(tok)) if i not in specials]

    # Fraction: counts >= fraction * sentences, original id order after the specials.
    kept = select_vocabulary(counts, 100, tok, min_sentence_fraction=0.2)
    assert kept == specials + [i for i in regular if counts[i] >= 20]
    # min_count replaces the fraction.
    kept = select_vocabulary(counts, 100, tok, min_count=30)
    assert kept == specials + [i for i in regular if counts[i] >= 30]
    # max_vocab_size: the most frequent regular tokens, whole vocabulary of that size.
    kept = select_vocabulary(counts, 100, tok, max_vocab_size=9)
    by_freq = sorted((i for i in regular if counts[i] > 0), key=lambda i: (-counts[i], i))[:4]
    assert kept == specials + sorted(by_freq) and len(kept) == 9
    # keep_tokens come right after the specials, even when never seen.
    now = tok.convert_tokens_to_ids("now")
    kept = select_vocabulary(counts, 100, tok, min_count=30, keep_tokens=["now", "##s"])
    assert kept[: len(specials) + 2] == specials + [now, tok.convert_tokens_to_ids("##s")]
    assert len(set(kept)) == len(kept)
    # Never-seen tokens are not kept by max_vocab_size.
    assert now not in select_vocabulary(counts, 100, tok, max_vocab_size=len(tok))


def test_select_vocabulary_errors():
    tok = _tiny_wordpiece()
    counts = np.arange(len(tok))
    for bad in (0, 0.0, -0.1, 1.5):
        with pytest.raises(ConfigurationError, match=r"\(0, 1\]"):
            select_vocabulary(counts, 100, tok, min_sentence_fraction=bad)
    with pytest.raises(ConfigurationError, match="keeps no regular token.*lower threshold"):
        select_vocabulary(counts, 1000, tok, min_sentence_fraction=1.0)
    with pytest.raises(ConfigurationError, match="max_vocab_size"):
        select_vocabulary(counts, 100, tok, max_vocab_size=3)
    with pytest.raises(ConfigurationError, match="not in the tokenizer's vocabulary"):
        select_vocabulary(counts, 100, tok, keep_tokens=["zebra"])
    with pytest.raises(ConfigurationError, match="same tokenizer"):
        select_vocabulary(counts[:5], 100, tok)


def test_count_sentence_occurrences_counts_sentences_not_tokens():
    tok = _tiny_wordpiece()
    texts = ["the cat sat on the mat", "the dog", "cats sat", "   ", "dog dog dog"]
    counts, n = count_sentence_occurrences(tok, texts, batch_size=2, show_progress=False)
    assert n == 4  # the whitespace-only item is not a sentence
    ids = tok.convert_tokens_to_ids
    assert counts[ids("the")] == 2 and counts[ids("dog")] == 2 and counts[ids("sat")] == 2
    assert counts[ids("##s")] == 1 and counts[ids("[CLS]")] == 0  # no special tokens added
    expected = np.zeros(len(tok), dtype=np.int64)
    for text in texts:
        for i in set(tok(text, add_special_tokens=False)["input_ids"]):
            expected[i] += 1
    np.testing.assert_array_equal(counts, expected)


def test_count_sentence_occurrences_with_processes_and_datasets():
    from datasets import Dataset

    tok = _tiny_wordpiece()
    texts = [" ".join(WORDS[i % 7 : i % 7 + 1 + i % 3]) for i in range(60)]
    serial, n = count_sentence_occurrences(tok, texts, show_progress=False)
    parallel, n2 = count_sentence_occurrences(tok, texts, batch_size=7, num_proc=2, show_progress=False)
    from_dataset, n3 = count_sentence_occurrences(
        tok, Dataset.from_dict({"body": texts}), text_column="body", show_progress=False
    )
    np.testing.assert_array_equal(serial, parallel)
    np.testing.assert_array_equal(serial, from_dataset)
    assert n == n2 == n3 == 60
    with pytest.raises(DataError, match="no column 'text'"):
        count_sentence_occurrences(tok, Dataset.from_dict({"body": texts}), show_progress=False)


def test_count_from_files_and_file_errors(tmp_path):
    tok = _tiny_wordpiece()
    plain = tmp_path / "a.txt"
    plain.write_text("the cat sat. The dog ran far away.\n\n   \nnow\n", encoding="utf-8")
    packed = tmp_path / "b.txt.gz"
    with gzip.open(packed, "wt", encoding="utf-8") as handle:
        handle.write("the mat\n" * 3)
    counts, n = count_sentence_occurrences(tok, [plain, packed], show_progress=False)
    assert n == 3 + 3  # "the cat sat." / "The dog ran far away." / "now" + three lines
    assert counts[tok.convert_tokens_to_ids("mat")] == 3

    empty = tmp_path / "empty.txt"
    empty.write_text(" \n\n", encoding="utf-8")
    with pytest.raises(DataError, match="empty.txt.*no text"):
        count_sentence_occurrences(tok, [empty], show_progress=False)
    with pytest.raises(DataError, match="no text"):
        count_sentence_occurrences(tok, [], show_progress=False)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("the cat\nčaj\n".encode("cp1250"))
    with pytest.raises(DataError, match="latin.txt.*UTF-8.*iconv"):
        count_sentence_occurrences(tok, latin, show_progress=False)
    truncated = tmp_path / "cut.txt.gz"
    words = np.random.default_rng(0).choice(WORDS, size=20000)
    truncated.write_bytes(gzip.compress(" ".join(words).encode())[:2000])
    with pytest.raises(DataError, match="cut.txt.gz.*truncated"):
        count_sentence_occurrences(tok, truncated, show_progress=False)
    with pytest.raises(DataError, match="does not exist"):
        count_sentence_occurrences(tok, tmp_path / "missing.txt", show_progress=False)


def test_untied_decoder_keeps_separate_sliced_weights(tmp_path):
    model = _tiny_bert(40, tie_word_embeddings=False)
    decoder = model.cls.predictions.decoder
    assert decoder.weight is not model.bert.embeddings.word_embeddings.weight
    with torch.no_grad():
        decoder.bias.normal_()
    old_emb = model.bert.embeddings.word_embeddings.weight.detach().clone()
    old_dec, old_bias = decoder.weight.detach().clone(), decoder.bias.detach().clone()
    kept = [0, 7, 3, 12, 39, 20]
    reduce_model_vocab(model, kept)
    new_dec = model.cls.predictions.decoder
    assert new_dec.weight is not model.bert.embeddings.word_embeddings.weight
    torch.testing.assert_close(model.bert.embeddings.word_embeddings.weight, old_emb[kept], rtol=0, atol=0)
    torch.testing.assert_close(new_dec.weight, old_dec[kept], rtol=0, atol=0)
    torch.testing.assert_close(new_dec.bias, old_bias[kept], rtol=0, atol=0)
    assert model.cls.predictions.bias is not new_dec.bias  # untied BERT keeps two bias parameters
    assert model.cls.predictions.bias.shape == (6,)
    assert model.config.vocab_size == 6 and model.config.tie_word_embeddings is False

    model.save_pretrained(tmp_path)
    loaded = BertForMaskedLM.from_pretrained(tmp_path)
    assert loaded.cls.predictions.decoder.weight is not loaded.bert.embeddings.word_embeddings.weight
    torch.testing.assert_close(loaded.cls.predictions.decoder.weight, old_dec[kept], rtol=0, atol=0)
    torch.testing.assert_close(loaded.cls.predictions.decoder.bias, old_bias[kept], rtol=0, atol=0)


def test_plain_encoder_and_token_classifier_only_slice_embeddings():
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=3,
        pad_token_id=2,
    )
    model = BertForTokenClassification(config).eval()
    classifier = model.classifier.weight.detach().clone()
    emb = model.get_input_embeddings().weight.detach().clone()
    kept = [2, 5, 6, 29]
    ids = torch.tensor([[5, 6, 29, 2]])
    with torch.no_grad():
        before = model(input_ids=ids).logits
        reduce_model_vocab(model, kept)
        after = model(input_ids=torch.tensor([[1, 2, 3, 0]])).logits
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)
    torch.testing.assert_close(model.get_input_embeddings().weight, emb[kept], rtol=0, atol=0)
    torch.testing.assert_close(model.classifier.weight, classifier, rtol=0, atol=0)
    assert model.config.pad_token_id == 0 and model.get_input_embeddings().padding_idx == 0


def _wordlevel_roberta_tokenizer() -> TokenizersBackend:
    """Regular words BEFORE the specials (pad at 6), so the pad id moves when specials go first."""
    vocab = {w: i for i, w in enumerate(WORDS[:5] + ["<s>", "<pad>", "</s>", "<unk>", "<mask>"] + WORDS[5:])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", vocab["<s>"]), ("</s>", vocab["</s>"])]
    )
    backend.decoder = decoders.WordPiece()
    return TokenizersBackend(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
        cls_token="<s>",
        sep_token="</s>",
    )


def test_roberta_pad_id_move_keeps_positions_and_generic_class(tmp_path):
    tok = _wordlevel_roberta_tokenizer()
    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=40,
        pad_token_id=6,
        bos_token_id=5,
        eos_token_id=7,
    )
    model = RobertaForMaskedLM(config).eval()
    original = RobertaForMaskedLM(config).eval()
    original.load_state_dict(model.state_dict())
    texts = ["the cat sat", "dog ran far away now", "on mat"]
    counts, n = count_sentence_occurrences(tok, texts, show_progress=False)
    model, new_tok = reduce_vocab_with_counts(model, tok, counts, n, min_count=1)
    kept = select_vocabulary(counts, n, tok, min_count=1)
    assert model.config.pad_token_id == 1 and model.config.bos_token_id == 0 and model.config.eos_token_id == 2
    assert model.roberta.embeddings.padding_idx == 1
    assert isinstance(new_tok, TokenizersBackend) and new_tok.pad_token_id == 1
    _assert_exact(original, tok, model, new_tok, texts, kept)  # padding included: batch of unequal lengths
    model.save_pretrained(tmp_path)
    new_tok.save_pretrained(tmp_path)
    _assert_exact(
        original,
        tok,
        AutoModelForMaskedLM.from_pretrained(tmp_path).eval(),
        AutoTokenizer.from_pretrained(tmp_path),
        texts,
        kept,
    )


def test_bpe_is_refused():
    vocab = {"a": 0, "b": 1, "ab": 2, "<unk>": 3}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[("a", "b")], unk_token="<unk>"))
    tok = TokenizersBackend(tokenizer_object=backend, unk_token="<unk>")
    with pytest.raises(ConfigurationError, match="BPE.*not supported"):
        reduce_tokenizer(tok, [3, 0, 1])


def test_reduce_vocab_keeps_existing_eliquare_keys():
    tok = _tiny_wordpiece()
    model = _tiny_bert(len(tok))
    model.config.eliquare = {"teacher": "bert-base-multilingual-cased", "teacher_layers": [0, 2]}
    model, new_tok = reduce_vocab(model, tok, ["the cat sat", "the dog"], min_count=1, show_progress=False)
    info = model.config.eliquare
    assert info["teacher"] == "bert-base-multilingual-cased" and info["teacher_layers"] == [0, 2]
    assert info["vocab_reduction"]["original_vocab_size"] == len(tok)
    assert info["vocab_reduction"]["kept_vocab_size"] == len(new_tok) == 5 + 4  # specials + the cat sat dog
    with pytest.raises(DataError, match="no text"):
        reduce_vocab(model, tok, ["", "  "], show_progress=False)


def test_cli_writes_reduced_model_and_refuses_to_overwrite(tmp_path, capsys):
    tok = _tiny_wordpiece()
    model = _tiny_bert(len(tok))
    src = tmp_path / "model"
    model.save_pretrained(src)
    tok.save_pretrained(src)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat.\nthe dog ran.\n", encoding="utf-8")
    out = tmp_path / "reduced"
    main(["--model", str(src), "--corpus", str(corpus), "--output_dir", str(out), "--min_count", "1"])
    printed = capsys.readouterr().out
    assert "vocabulary: 18 -> " in printed and "parameters:" in printed
    loaded = AutoModelForMaskedLM.from_pretrained(out)
    loaded_tok = AutoTokenizer.from_pretrained(out)
    assert loaded.config.vocab_size == len(loaded_tok) == loaded.config.eliquare["vocab_reduction"]["kept_vocab_size"]
    assert loaded_tok.tokenize("the dog sat") == ["the", "dog", "sat"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary directory left
    with pytest.raises(OutputDirError, match="overwrite_output_dir"):
        main(["--model", str(src), "--corpus", str(corpus), "--output_dir", str(out)])
