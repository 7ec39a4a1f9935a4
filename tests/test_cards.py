"""Model cards: rendering with and without evaluation results, offline validation, regeneration command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from huggingface_hub import ModelCard, ModelCardData
from huggingface_hub.repocard_data import model_index_to_eval_results
from transformers import BertConfig, BertForMaskedLM, BertForTokenClassification, BertTokenizerFast

from hf_eliquare.cli.card import main as card_main
from hf_eliquare.errors import DataError
from hf_eliquare.hub import cards
from hf_eliquare.hub.cards import (
    NOT_RECORDED,
    CardValidationError,
    StudentCardInfo,
    load_eval_results,
    render_student_card,
    validate_card_locally,
    write_model_card,
    write_student_card,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
WORDS = ["je", "in", "v", "na", "da", "se", "Ljubljana", "mesto", "##a", "##i"]


def _tokenizer(tmp_path: Path) -> BertTokenizerFast:
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n", encoding="utf-8")
    return BertTokenizerFast(vocab=str(vocab))


def make_student_dir(tmp_path: Path, run: dict | None = None, teacher: str = "bert-base-multilingual-cased") -> Path:
    """A demo-like student: tiny BertForMaskedLM with ``config.eliquare``, tokenizer and run summary."""
    tokenizer = _tokenizer(tmp_path)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
    )
    config.eliquare = {
        "teacher": teacher,
        "teacher_num_layers": 4,
        "teacher_layers": [0, 2],
        "vocab_reduction": {
            "original_vocab_size": 119547,
            "kept_vocab_size": len(tokenizer),
            "min_sentence_fraction": 1e-4,
            "min_count": 2,
            "max_vocab_size": None,
            "corpus_sentences": 29703,
        },
    }
    student = tmp_path / "student"
    BertForMaskedLM(config).save_pretrained(student)
    tokenizer.save_pretrained(student)
    summary = {
        "lang": "sl",
        "language_name": "Slovene",
        "teacher": teacher,
        "alpha_ce": 5.0,
        "alpha_mlm": 2.0,
        "alpha_cos": 1.0,
        "temperature": 2.0,
        "restrict_ce_to_mask": False,
        "dataset": "wikimedia/wikipedia:20231101.sl",
        "train_sequences": 1200,
        "global_steps": 40,
        "num_train_epochs": 2,
        "per_device_train_batch_size": 8,
        "gradient_accumulation_steps": 2,
        "num_processes": 1,
        "train_runtime_s": 95.0,
        "teacher_parameters": 177853440,
    }
    summary.update(run or {})
    (student / "eliquare_run.json").write_text(json.dumps(summary), encoding="utf-8")
    return student


def write_results(path: Path, **results) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results), encoding="utf-8")
    return path


def test_student_card_without_eval_results(tmp_path):
    student = make_student_dir(tmp_path)
    card_path = write_student_card(student)
    assert card_path == student / "README.md"
    card = ModelCard.load(card_path)
    meta = card.data.to_dict()
    assert meta["language"] == ["sl"]
    assert meta["license"] == "apache-2.0"  # inherited from mBERT
    assert meta["base_model"] == "google-bert/bert-base-multilingual-cased"
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "fill-mask"
    assert {"distillation", "eliquare", "language-specific", "vocabulary-reduction"} <= set(meta["tags"])
    assert meta["datasets"] == ["wikimedia/wikipedia"]
    assert "model-index" not in meta
    text = card.text
    assert "Slovene (sl)" in text
    assert "| Student layers initialised from teacher layers | 0, 2 (0-based) |" in text
    assert "| α_ce / α_mlm / α_cos | 5 / 2 / 1 |" in text
    assert "| Vocabulary before | 119,547 tokens |" in text
    assert f"| Vocabulary after | {len(WORDS) + 5} tokens" in text
    assert "| Hardware | not recorded |" in text  # absent from the run summary: said, not invented
    assert "| Wall time | 2 min |" in text
    assert "global batch 16 sequences per optimizer step (8 per device × 2 accumulation × 1 process)" in text
    assert "No evaluation results were given" in text
    assert "arXiv:1910.01108" in text and "{{" not in text and "{%" not in text


def test_student_card_with_eval_results_merges_seeds(tmp_path):
    student = make_student_dir(tmp_path)
    runs = tmp_path / "finetune"
    files = [
        write_results(
            runs / "ner_s1" / "all_results.json",
            task="ner",
            dataset="ssj-ner",
            seed=1,
            test_f1=0.80,
            test_loss=0.3,
            test_runtime=1.2,
            model_name_or_path=str(student),
        ),
        write_results(runs / "ner_s2" / "all_results.json", task="ner", dataset="ssj-ner", seed=2, test_f1=0.84),
        write_results(runs / "sib200" / "all_results.json", test_accuracy=0.75, seed=1),  # task from the folder
    ]
    card = ModelCard.load(write_student_card(student, eval_results=files))
    name, results = model_index_to_eval_results(card.data.to_dict()["model-index"])
    assert name == "student"
    by_metric = {(r.task_name, r.metric_type): r for r in results}
    assert set(by_metric) == {("ner", "f1"), ("sib200", "accuracy")}  # test_loss / test_runtime are not metrics
    assert by_metric["ner", "f1"].metric_value == pytest.approx(0.82)
    assert by_metric["ner", "f1"].task_type == "token-classification"
    assert by_metric["sib200", "accuracy"].task_type == "text-classification"
    assert "| ner | ssj-ner | test | f1 | 0.8200 ± 0.0283 | 2 (seeds 1, 2) |" in card.text
    assert "| sib200 | sib200 | test | accuracy | 0.7500 | 1 (seed 1) |" in card.text


def test_round_trip_keeps_metadata(tmp_path):
    student = make_student_dir(tmp_path)
    results = write_results(tmp_path / "ner" / "all_results.json", task="ner", test_f1=0.9)
    info = StudentCardInfo.from_model_dir(student, hub_model_id="someone/eliquare-sl", license="cc-by-4.0")
    info.eval_results = load_eval_results(results)
    card = render_student_card(info)
    path = tmp_path / "README.md"
    card.save(path)
    reloaded = ModelCard.load(path)
    assert reloaded.data.to_dict() == card.data.to_dict()
    assert reloaded.data.license == "cc-by-4.0"  # override beats the teacher's license
    assert reloaded.data.to_dict()["model-index"][0]["name"] == "someone/eliquare-sl"
    assert 'AutoModelForMaskedLM.from_pretrained("someone/eliquare-sl")' in reloaded.text
    validate_card_locally(reloaded)


def test_local_teacher_and_missing_summary_render_honestly(tmp_path):
    student = make_student_dir(tmp_path, teacher=str(tmp_path / "my-teacher"))
    (student / "eliquare_run.json").unlink()
    card = ModelCard.load(write_student_card(student, lang="sw"))
    meta = card.data.to_dict()
    assert "base_model" not in meta  # a local teacher has no Hub page
    assert meta["license"] == "unknown" and meta["language"] == ["sw"]
    assert card.text.count(NOT_RECORDED) >= 15
    # the parameter count is read from the weights when the run did not record it
    n_params = BertForMaskedLM.from_pretrained(student).num_parameters()
    assert f"| This model | {n_params:,} |" in card.text


def test_validation_rejects_bad_cards(tmp_path):
    student = make_student_dir(tmp_path, run={"lang": None})
    (student / "eliquare_run.json").write_text(json.dumps({"alpha_ce": 5.0}), encoding="utf-8")
    with pytest.raises(CardValidationError, match="'language' is missing.*--lang"):
        write_student_card(student)
    assert not (student / "README.md").exists()  # nothing half-valid is written

    bad_code = ModelCard.from_template(
        ModelCardData(
            language=["slovene"], license="mit", library_name="transformers", pipeline_tag="fill-mask", tags=["x"]
        ),
        template_str="---\n{{ card_data }}\n---\nhi",
    )
    with pytest.raises(CardValidationError, match="ISO 639"):
        validate_card_locally(bad_code)

    template = tmp_path / "broken.md"
    template.write_text(
        "---\n{{ card_data }}\n---\n# {{ title }}\n{% raw %}{{ forgotten }}{% endraw %}\n", encoding="utf-8"
    )
    with pytest.raises(CardValidationError, match="unrendered template"):
        write_student_card(student, lang="sl", template_path=template)


def test_eval_results_without_metrics_is_a_data_error(tmp_path):
    path = write_results(tmp_path / "ner" / "all_results.json", task="ner", eval_f1=0.9, test_loss=0.1)
    with pytest.raises(DataError, match="no test metric"):
        load_eval_results(path)


def test_finetuned_card(tmp_path):
    tokenizer = _tokenizer(tmp_path)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=3,
        id2label={0: "O", 1: "B-per", 2: "I-per"},
        label2id={"O": 0, "B-per": 1, "I-per": 2},
    )
    config.eliquare = {"teacher": "bert-base-multilingual-cased", "teacher_num_layers": 4, "teacher_layers": [0, 2]}
    model_dir = tmp_path / "ner-model"
    BertForTokenClassification(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    write_results(
        model_dir / "all_results.json",
        task="ner",
        lang="sl",
        dataset="ssj-ner",
        seed=3,
        test_f1=0.7,
        model_name_or_path="someone/eliquare-sl",
        learning_rate=5e-5,
        warmup_steps=500,
        main_metric="f1",
        data_provenance={"code": "S+R", "description": "local substitute: SSJ NER tags, not WikiANN"},
        protocol_deviations=["warm-up capped from 500 to 4 steps"],
    )
    card = ModelCard.load(write_model_card(model_dir))
    meta = card.data.to_dict()
    assert meta["pipeline_tag"] == "token-classification" and meta["base_model"] == "someone/eliquare-sl"
    assert meta["model-index"][0]["results"][0]["metrics"][0] == {"type": "f1", "value": 0.7, "name": "f1"}
    assert "| Labels | O, B-per, I-per |" in card.text and "| Learning rate | 5e-05 |" in card.text
    # the fine-tuning protocol, read typed from all_results.json (runs.FinetuneResult)
    assert "| Warm-up steps | 500 |" in card.text and "| Checkpoint chosen on | validation f1 |" in card.text
    assert "| Data provenance | local substitute: SSJ NER tags, not WikiANN |" in card.text
    assert "| Deviations from the paper's protocol | warm-up capped from 500 to 4 steps |" in card.text


def test_regenerate_command_merges_results(tmp_path, capsys):
    student = make_student_dir(tmp_path)
    write_student_card(student)
    before = ModelCard.load(student / "README.md").data.to_dict()
    results = write_results(tmp_path / "pos" / "all_results.json", task="pos", test_accuracy=0.93, seed=7)
    out = tmp_path / "card.md"
    card_main(["--model_dir", str(student), "--eval_results", str(results), "--output", str(out)])
    assert capsys.readouterr().out.strip() == str(out)
    after = ModelCard.load(out).data.to_dict()
    assert "model-index" not in before
    assert after["model-index"][0]["results"][0]["metrics"][0]["value"] == 0.93
    assert {k: v for k, v in after.items() if k != "model-index"} == before


def test_regenerate_command_error_is_one_line(tmp_path, capsys):
    from hf_eliquare.cli import run_main

    with pytest.raises(SystemExit) as exit_info:
        run_main(lambda: card_main(["--model_dir", str(tmp_path / "nope")]))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "config.json" in err and err.count("\n") == 1


def test_packaged_templates_are_the_checkout_copy():
    """Templates live in model_cards/ only; the package reaches them through a link (package data in wheels)."""
    for name in (cards.STUDENT_TEMPLATE, cards.FINETUNED_TEMPLATE, cards.ONNX_SECTION_TEMPLATE):
        checkout = (REPO_ROOT / "model_cards" / name).read_text(encoding="utf-8")
        packaged = REPO_ROOT / "src" / "hf_eliquare" / "hub" / "model_cards" / name
        assert packaged.resolve() == (REPO_ROOT / "model_cards" / name).resolve(), "one copy, not two"
        assert packaged.read_text(encoding="utf-8") == checkout
        assert cards.load_template(name) == checkout


def test_run_finetune_results_format(tmp_path):
    """The nested layout examples/run_finetune.py writes: metrics under "test_metrics", task_type, data_source."""
    path = write_results(
        tmp_path / "out" / "all_results.json",
        task="sl_ner",
        language="sl",
        task_type="ner",
        seed=42,
        test_metrics={"f1": 0.8, "accuracy": 0.95, "precision": 0.79},
        validation_metrics={"f1": 0.99},
        data_source={"dataset_name": "some/ner", "dataset_config_name": "sl"},
        epochs=3.0,
        train_loss=0.1,
    )
    entries = load_eval_results(path)
    assert {(e.task, e.metric, e.value) for e in entries} == {
        ("sl_ner", "f1", 0.8),
        ("sl_ner", "accuracy", 0.95),
        ("sl_ner", "precision", 0.79),
    }
    assert {e.task_type for e in entries} == {"token-classification"}
    assert {e.dataset for e in entries} == {"some/ner:sl"} and {e.seed for e in entries} == {42}
    cls = write_results(
        tmp_path / "cls" / "all_results.json",
        task="sw_news",
        task_type="classification",
        test_metrics={"accuracy": 0.6},
        data_source={"files": {"test": "x.tsv"}},
    )
    (entry,) = load_eval_results(cls)
    assert entry.task_type == "text-classification" and entry.dataset == "sw_news"
