"""Downstream fine-tuning: readers, sub-word labels, windows, splits, errors, end-to-end runs, Table 4."""

import importlib.util
import json
from pathlib import Path

import pytest

from hf_eliquare.errors import ConfigurationError, DataError, OfflineError, OutputDirError
from hf_eliquare.evaluation.features import (
    align_labels,
    merge_window_predictions,
    tokenize_token_examples,
    window_word_spans,
)
from hf_eliquare.evaluation.finetune import FinetuneDataArguments, resolve_data
from hf_eliquare.evaluation.readers import read_classification, read_conll, read_conllu, read_split_file
from hf_eliquare.evaluation.splits import build_label_list, fill_missing_splits
from hf_eliquare.evaluation.table import aggregate_results, format_table4
from hf_eliquare.evaluation.tasks import PAPER_TASKS, TASKS, get_task

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MBERT_TOK = SHARED / "tokenizers" / "bert-base-multilingual-cased"

needs_shared = pytest.mark.skipif(not MBERT_TOK.is_dir(), reason="../shared/data (mBERT tokenizer) not available")

# A French sentence with a multi-word token ("du" = "de" + "le", range line 3-4) and an empty node (5.1).
CONLLU = """# sent_id = t1
# text = Il parle du zoologiste anticonstitutionnellement.
1\tIl\til\tPRON\t_\t_\t2\tnsubj\t_\tNER=O
2\tparle\tparler\tVERB\t_\t_\t0\troot\t_\tNER=O
3-4\tdu\t_\t_\t_\t_\t_\t_\t_\t_
3\tde\tde\tADP\t_\t_\t5\tcase\t_\tNER=O
4\tle\tle\tDET\t_\t_\t5\tdet\t_\tNER=O
5\tzoologiste\tzoologiste\tNOUN\t_\t_\t2\tobl\t_\tNER=B-per
5.1\tparle\tparler\tVERB\t_\t_\t_\t_\t5:conj\tNER=O
6\tanticonstitutionnellement\tanticonstitutionnellement\tADV\t_\t_\t2\tadvmod\t_\tNER=I-per
7\t.\t.\tPUNCT\t_\t_\t2\tpunct\t_\tNER=O

"""


def _load_script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def tokenizer():
    if not MBERT_TOK.is_dir():
        pytest.skip("../shared/data (mBERT tokenizer) not available")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(MBERT_TOK))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, tokenizer):
    """A tiny random BertForMaskedLM over the real mBERT vocabulary, saved like a user's checkpoint."""
    from transformers import BertConfig, BertForMaskedLM

    path = tmp_path_factory.mktemp("tiny-mbert")
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertForMaskedLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


# ---------------------------------------------------------------------------------------------- readers


def test_read_conllu_skips_ranges_and_empty_nodes(tmp_path):
    f = tmp_path / "x.conllu"
    f.write_text(CONLLU, encoding="utf-8")
    (sent,) = read_conllu(f, "upos")
    assert sent["tokens"] == ["Il", "parle", "de", "le", "zoologiste", "anticonstitutionnellement", "."]
    assert sent["labels"] == ["PRON", "VERB", "ADP", "DET", "NOUN", "ADV", "PUNCT"]
    (ner,) = read_conllu(f, "ner")
    assert ner["labels"] == ["O", "O", "O", "O", "B-per", "I-per", "O"]


def test_read_conllu_malformed_line_names_file_and_line(tmp_path):
    f = tmp_path / "bad.conllu"
    lines = CONLLU.splitlines()
    lines[4] = "3-4 du _ _"  # spaces instead of tabs, line 5 of the file
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.conllu:5: malformed CoNLL-U line"):
        read_conllu(f)


def test_read_conllu_missing_ner_in_misc(tmp_path):
    f = tmp_path / "nomisc.conllu"
    f.write_text(CONLLU.replace("\tNER=O\n", "\t_\n", 1), encoding="utf-8")
    with pytest.raises(DataError, match=r"nomisc\.conllu:3: no NER= entry"):
        read_conllu(f, "ner")


def test_read_conll_space_and_tab(tmp_path):
    f = tmp_path / "ner.txt"
    f.write_text("-DOCSTART- O\n\nWizara B-ORG\nya\tI-ORG\n\nJohn B-PER\n", encoding="utf-8")
    assert read_conll(f) == [
        {"tokens": ["Wizara", "ya"], "labels": ["B-ORG", "I-ORG"]},
        {"tokens": ["John"], "labels": ["B-PER"]},
    ]
    f.write_text("Wizara B-ORG\nlonely\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"ner\.txt:2: malformed line"):
        read_conll(f)


def test_read_classification_formats_and_errors(tmp_path):
    tsv = tmp_path / "a.tsv"
    tsv.write_text('id\tcategory\ttext\n1\tsports\tHe said "hi\n2\thealth\tOk\n', encoding="utf-8")
    rows = read_classification(tsv, "tsv", "text", "category")
    assert rows == [{"text": 'He said "hi', "label": "sports"}, {"text": "Ok", "label": "health"}]
    jl = tmp_path / "a.jsonl"
    jl.write_text('{"sentence": "x", "label": 1}\n{"sentence": "y", "label": 0}\n', encoding="utf-8")
    assert read_classification(jl, "jsonl")[0] == {"text": "x", "label": "1"}  # text column guessed
    with pytest.raises(DataError, match="no column 'topic'.*category"):
        read_classification(tsv, "tsv", "text", "topic")
    with pytest.raises(DataError, match="does not exist"):
        read_split_file(str(tmp_path / "missing.tsv"), "classification")
    with pytest.raises(DataError, match="--data_format"):
        read_split_file(str(tmp_path / "a.xyz"), "classification")


# ----------------------------------------------------------------------------------- labels and windows


@needs_shared
def test_label_alignment_on_multi_subtoken_words_and_multiword_token(tmp_path, tokenizer):
    f = tmp_path / "x.conllu"
    f.write_text(CONLLU, encoding="utf-8")
    examples = read_conllu(f, "upos")
    labels, _ = build_label_list({"train": examples}, "pos")
    label2id = {l: i for i, l in enumerate(labels)}
    words = examples[0]["tokens"]
    n_sub = [len(tokenizer.tokenize(w)) for w in words]
    assert max(n_sub) > 1, "the sentence must have multi-sub-token words"

    feats = tokenize_token_examples(examples, tokenizer, label2id, max_seq_length=64)
    assert len(feats) == 1
    row = feats[0]
    ids, labs, widx = row["input_ids"], row["labels"], row["word_index"]
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert labs[0] == labs[-1] == -100
    # walk the words: first sub-token carries the label, the others -100
    pos = 1
    for w, (n, gold) in enumerate(zip(n_sub, examples[0]["labels"])):
        assert labs[pos] == label2id[gold] and widx[pos] == w
        assert labs[pos + 1 : pos + n] == [-100] * (n - 1) and widx[pos + 1 : pos + n] == [-1] * (n - 1)
        pos += n
    assert pos == len(ids) - 1
    # "de" and "le" (the MWT "du") are two words with their own labels
    assert sum(l != -100 for l in labs) == len(words) == 7

    # label_all_tokens: every sub-token labelled, continuation of B-x becomes I-x
    ner = read_conllu(f, "ner")
    nlabels, _ = build_label_list({"train": ner}, "ner")
    nl2id = {l: i for i, l in enumerate(nlabels)}
    row = tokenize_token_examples(ner, tokenizer, nl2id, 64, label_all_tokens=True)[0]
    zoo = words.index("zoologiste")
    start = 1 + sum(n_sub[:zoo])
    assert row["labels"][start] == nl2id["B-per"]
    assert row["labels"][start + 1 : start + n_sub[zoo]] == [nl2id["I-per"]] * (n_sub[zoo] - 1)


def test_align_labels_pure():
    assert align_labels([None, 0, 0, 1, None], [5, 7]) == [-100, 5, -100, 7, -100]
    assert align_labels([None, 0, 0, 1, None], [5, 7], True, {5: 6}) == [-100, 5, 6, 7, -100]


def test_window_spans_partition_words():
    spans = window_word_spans([3, 1, 2, 5, 1, 9, 1], max_tokens=6)
    assert spans == [(0, 3), (3, 5), (5, 6), (6, 7)]  # a 9-sub-token word gets its own window
    covered = [w for s, e in spans for w in range(s, e)]
    assert covered == list(range(7))


@needs_shared
def test_long_sentences_are_windowed_and_merged_back(tokenizer):
    words = "Predsednik vlade je včeraj obiskal zoološki vrt in \u200b govoril o podnebnih spremembah .".split(" ") * 4
    tags = [
        "NOUN",
        "NOUN",
        "AUX",
        "ADV",
        "VERB",
        "ADJ",
        "NOUN",
        "CCONJ",
        "X",
        "VERB",
        "ADP",
        "ADJ",
        "NOUN",
        "PUNCT",
    ] * 4
    examples = [{"tokens": words, "labels": tags}, {"tokens": ["Kratko", "."], "labels": ["ADV", "PUNCT"]}]
    labels, _ = build_label_list({"train": examples}, "pos")
    label2id = {l: i for i, l in enumerate(labels)}
    feats = tokenize_token_examples(examples, tokenizer, label2id, max_seq_length=16)
    assert len(feats) > 3  # the long sentence needs several windows
    assert all(len(ids) <= 16 for ids in feats["input_ids"])
    # predictions = the gold labels where labelled -> merging must give back the gold sequence per word
    width = max(len(l) for l in feats["labels"])
    preds = [l + [-100] * (width - len(l)) for l in feats["labels"]]
    merged = merge_window_predictions(
        preds, feats["example_id"], feats["word_index"], [len(words), 2], dict(enumerate(labels))
    )
    assert merged == [tags, ["ADV", "PUNCT"]]  # every word (the zero-width space too) exactly once


# ----------------------------------------------------------------------------------- splits and labels


def test_missing_train_split_is_seeded_80_10_10():
    dev = [{"text": f"d{i}", "label": "a"} for i in range(50)]
    test = [{"text": f"t{i}", "label": "b"} for i in range(50)]
    out, info = fill_missing_splits({"validation": dev, "test": test}, seed=1)
    assert {k: len(v) for k, v in out.items()} == {"train": 80, "validation": 10, "test": 10}
    assert info["strategy"].startswith("pooled validation+test") and info["seed"] == 1
    again, _ = fill_missing_splits({"validation": dev, "test": test}, seed=1)
    other, _ = fill_missing_splits({"validation": dev, "test": test}, seed=2)
    assert again == out and other != out
    texts = [ex["text"] for s in out.values() for ex in s]
    assert sorted(texts) == sorted(ex["text"] for ex in dev + test)  # a partition

    out, info = fill_missing_splits({"train": dev + test, "test": test[:5]}, seed=0)
    assert len(out["validation"]) == 10 and len(out["train"]) == 90 and out["test"] == test[:5]
    assert "validation taken from train" in info["strategy"]


def test_label_only_in_test_is_reported_and_not_an_output_class(caplog):
    """docs/finetune.md: a label the model never saw counts as an error; it must not be a class it can predict."""
    splits = {
        "train": [{"tokens": ["a", "b"], "labels": ["O", "B-PER"]}],
        "validation": [{"tokens": ["a"], "labels": ["O"]}],
        "test": [{"tokens": ["a", "b", "c"], "labels": ["B-EVENT", "I-EVENT", "O"]}],
    }
    with caplog.at_level("WARNING"):
        labels, unseen = build_label_list(splits, "ner")
    assert labels == ["O", "B-PER"]
    assert unseen == {"test": {"B-EVENT": 1, "I-EVENT": 1}}
    assert "B-EVENT" in caplog.text


# ----------------------------------------------------------------------------------------- registry


def test_registry_covers_the_paper_table3():
    assert len(PAPER_TASKS) == 6
    for lang, (t1, t2) in PAPER_TASKS.items():
        for t in (t1, t2):
            task = get_task(t)
            assert task.language == lang and task.in_paper and task.hub_dataset
    assert get_task("sl_pos").task_type == "pos" and get_task("sw_ner").main_metric == "f1"
    with pytest.raises(ConfigurationError, match="Known tasks"):
        get_task("xx_pos")


@needs_shared
def test_registry_local_defaults_exist():
    assert set(TASKS["sl_pos"].local_paths()) == {"validation", "test"}
    assert set(TASKS["sw_ner"].local_paths()) == {"train", "validation", "test"}
    assert set(TASKS["sl_topic"].local_paths()) == {"train", "validation", "test"}


def test_task_without_local_data_fails_fast_offline(monkeypatch):
    import hf_eliquare.hub as hub

    monkeypatch.setattr(hub, "hub_offline_mode", lambda: False)
    monkeypatch.setattr(hub, "hub_reachable", lambda: False)
    with pytest.raises(OfflineError, match="--train_file"):
        resolve_data(FinetuneDataArguments(task="he_pos"))


# ---------------------------------------------------------------------------------------- end to end


def _common(tmp_path, model, out, *extra):
    return [
        "--model_name_or_path",
        str(model),
        "--output_dir",
        str(tmp_path / out),
        "--num_train_epochs",
        "1",
        "--max_seq_length",
        "64",
        "--per_device_train_batch_size",
        "16",
        "--max_train_samples",
        "64",
        "--max_eval_samples",
        "24",
        "--max_test_samples",
        "24",
        "--disable_tqdm",
        "true",
        "--results_md",
        str(tmp_path / "results.md"),
        *extra,
    ]


def _check_run(out_dir: Path, task_type: str):
    assert not list(out_dir.parent.glob(f".{out_dir.name}.tmp-*")), "temporary directory left behind"
    res = json.loads((out_dir / "all_results.json").read_text())
    for split in ("validation_metrics", "test_metrics"):
        for v in res[split].values():
            assert 0.0 <= v <= 1.0
    assert res["main_metric"] in res["test_metrics"]
    assert (out_dir / "config.json").is_file() and (out_dir / "model.safetensors").is_file()
    assert not list(out_dir.glob("checkpoint-*"))
    row = (out_dir / "results.md").read_text().splitlines()[-1]
    assert row.startswith(f"| {res['model']} | {res['task']} | 42 |")
    assert res["task_type"] == task_type
    return res


@needs_shared
def test_end_to_end_sl_pos_dev_test_only(tmp_path, tiny_model):
    main = _load_script("run_finetune").main
    # length-grouped training batches (the study's setting): evaluation must still score the right words
    res = main(
        _common(tmp_path, tiny_model, "sl_pos", "--task", "sl_pos", "--train_sampling_strategy", "group_by_length")
    )
    res = _check_run(tmp_path / "sl_pos", "pos")
    assert res["splits"]["strategy"].startswith("pooled validation+test")
    assert res["splits"]["sizes"] == {"train": 2026, "validation": 253, "test": 253}
    assert res["splits"]["used"] == {"train": 64, "validation": 24, "test": 24}
    # the paper's 500 warm-up steps as written (longer than this 4-step run), no deviation recorded
    assert res["warmup_steps"] == res["warmup_steps_requested"] == 500 and res["protocol_deviations"] == []
    assert res["data_provenance"]["code"] == "L+R" and res["data_provenance"]["differs_from_paper"]
    assert {"accuracy", "micro_f1", "macro_f1"} <= set(res["test_metrics"])
    preds = [json.loads(l) for l in (tmp_path / "sl_pos" / "test_predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 24 and all(len(p["pred"]) == len(p["tokens"]) == len(p["gold"]) for p in preds)
    # a finished output directory is never overwritten by accident
    with pytest.raises(OutputDirError, match="--overwrite_output_dir"):
        main(_common(tmp_path, tiny_model, "sl_pos", "--task", "sl_pos"))


def test_evaluation_keeps_dataset_order_with_length_grouped_training(tmp_path):
    """transformers 5 length-groups evaluation batches too under ``group_by_length``; the fine-tuning
    metrics match predictions to examples by position, so evaluation must stay in dataset order."""
    import torch
    from datasets import Dataset
    from transformers import BertConfig, BertForTokenClassification, TrainingArguments

    from hf_eliquare.evaluation.trainer import InOrderEvalTrainer

    lengths = [3, 17, 5, 30, 2, 11, 8, 25, 4, 19, 6, 13] * 3
    dataset = Dataset.from_list([{"input_ids": [1000 + i] * n} for i, n in enumerate(lengths)])

    def pad(features):  # row i is made of token 1000 + i
        width = max(len(f["input_ids"]) for f in features)
        return {"input_ids": torch.tensor([f["input_ids"] + [0] * (width - len(f["input_ids"])) for f in features])}

    model = BertForTokenClassification(
        BertConfig(vocab_size=2000, hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8)
    )
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_eval_batch_size=4,
        train_sampling_strategy="group_by_length",
        report_to="none",
        use_cpu=True,
    )
    trainer = InOrderEvalTrainer(model=model, args=args, eval_dataset=dataset, data_collator=pad)
    for loader in (trainer.get_eval_dataloader(), trainer.get_test_dataloader(dataset)):
        order = [int(row[0]) - 1000 for batch in loader for row in batch["input_ids"]]
        assert order == list(range(len(lengths)))


@needs_shared
def test_end_to_end_sw_ner_with_overriding_files_and_unseen_label(tmp_path, tiny_model):
    src = read_conll(SHARED / "ner" / "sw" / "train.txt")

    def write(name, sents):
        path = tmp_path / name
        path.write_text(
            "\n\n".join("\n".join(f"{t} {l}" for t, l in zip(s["tokens"], s["labels"])) for s in sents) + "\n",
            encoding="utf-8",
        )
        return str(path)

    test = [dict(s) for s in src[100:124]]
    test[0] = {"tokens": test[0]["tokens"], "labels": ["B-EVENT"] + test[0]["labels"][1:]}
    args = _common(
        tmp_path,
        tiny_model,
        "sw_ner",
        "--task",
        "sw_ner",
        "--train_file",
        write("tr.txt", src[:64]),
        "--validation_file",
        write("dev.txt", src[64:88]),
        "--test_file",
        write("te.txt", test),
    )
    _load_script("run_finetune").main(args)
    res = _check_run(tmp_path / "sw_ner", "ner")
    assert res["splits"]["strategy"] == "provided"
    assert res["data_source"]["files"]["train"].endswith("tr.txt")
    assert res["unseen_labels"] == {"test": {"B-EVENT": 1}} and "B-EVENT" not in res["labels"]
    assert {"precision", "recall", "f1", "accuracy"} <= set(res["test_metrics"])


@needs_shared
def test_end_to_end_sib200_sl_classification_and_table(tmp_path, tiny_model):
    driver = _load_script("run_eval_table").main
    root = tmp_path / "table"
    common = _common(tmp_path, tiny_model, "unused")
    opts = common[common.index("--num_train_epochs") :]
    agg = driver(
        ["--models", f"tiny={tiny_model}", "--tasks", "sl_topic", "--seeds", "42", "--output_dir", str(root), *opts]
    )
    res = _check_run(root / "tiny" / "sl_topic" / "seed42", "classification")
    assert {"accuracy", "macro_f1"} <= set(res["test_metrics"])
    assert res["splits"]["used"] == {"train": 64, "validation": 24, "test": 24}
    assert agg["models"] == ["tiny"] and agg["tasks"] == ["sl_topic"]
    # classification is scored (and its checkpoint chosen) on macro-F1, as the paper
    assert res["main_metric"] == "macro_f1" and res["best_checkpoint_metric"] == "eval_macro_f1"
    assert agg["cells"]["tiny"]["sl_topic"]["mean"] == pytest.approx(100 * res["test_metrics"]["macro_f1"])
    assert agg["cells"]["tiny"]["sl_topic"]["provenance"] == "S"
    assert (root / "eval_table.md").read_text().splitlines()[0] == "| model | sl topic |"
    # a second call reuses the finished cell instead of training again
    mtime = (root / "tiny" / "sl_topic" / "seed42" / "all_results.json").stat().st_mtime
    driver(["--models", f"tiny={tiny_model}", "--tasks", "sl_topic", "--output_dir", str(root), *opts])
    assert (root / "tiny" / "sl_topic" / "seed42" / "all_results.json").stat().st_mtime == mtime


# ------------------------------------------------------------------------------------------- Table 4


def _fake_result(model, task, seed, score):
    t = TASKS[task]
    return {
        "model": model,
        "task": task,
        "seed": seed,
        "main_metric": t.main_metric,
        "test_metrics": {t.main_metric: score},
        "validation_metrics": {t.main_metric: score},
    }


def test_table4_layout_from_results(tmp_path):
    scores = {
        ("mbert", "sl_ner"): (0.80, 0.84),
        ("mbert", "sl_pos"): (0.95, 0.97),
        ("student", "sl_ner"): (0.70, 0.72),
        ("student", "sl_pos"): (0.90, 0.90),
        ("mbert", "fr_pos"): (0.98, 0.98),
    }
    for (model, task), pair in scores.items():
        for seed, s in zip((1, 2), pair):
            d = tmp_path / "runs" / model / task / f"seed{seed}"
            d.mkdir(parents=True)
            (d / "all_results.json").write_text(json.dumps(_fake_result(model, task, seed, s)))
    agg = _load_script("run_eval_table").main(
        ["--from_results", str(tmp_path / "runs"), "--output_dir", str(tmp_path / "table")]
    )
    assert agg["tasks"] == ["fr_pos", "sl_ner", "sl_pos"]  # the paper's language order, task 1 then task 2
    assert set(agg["models"]) == {"mbert", "student"}
    cell = agg["cells"]["mbert"]["sl_ner"]
    assert cell["mean"] == pytest.approx(82.0) and cell["std"] == pytest.approx(2.8284271, rel=1e-6)
    assert cell["n"] == 2 and cell["metric"] == "f1"
    md = (tmp_path / "table" / "eval_table.md").read_text()
    lines = md.splitlines()
    assert lines[0] == "| model | fr POS | sl NER | sl POS |"
    student = next(l for l in lines if l.startswith("| student "))
    # results without a recorded provenance are marked unknown and as differing from the paper
    assert student == "| student | – | 71.00 ± 1.41 ?† | 90.00 ± 0.00 ?† |"
    assert json.loads((tmp_path / "table" / "eval_table.json").read_text())["cells"]["student"]["sl_pos"]["n"] == 2
    assert format_table4(aggregate_results([_fake_result("m", "sw_ner", 1, 0.5)])).startswith("| model | sw NER |")


def test_uncached_hub_dataset_in_offline_mode(monkeypatch):
    import hf_eliquare.hub as hub

    monkeypatch.setattr(hub, "hub_offline_mode", lambda: True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match="not in the local cache"):
        resolve_data(FinetuneDataArguments(task="he_sentiment"))
