"""ONNX export: a tiny masked-LM student and a tiny token classifier, checked against PyTorch; onnx/ in the card and
the Hub dry run; a failed check writes nothing; a clear refusal without the onnx extra."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from conftest import tiny_bert

from hf_eliquare import export as onnx_export
from hf_eliquare.cli import export as export_command
from hf_eliquare.cli import run_main
from hf_eliquare.errors import ConfigurationError, DataError
from hf_eliquare.hub.cards import write_model_card
from hf_eliquare.hub.publish import stage_upload, upload_files
from hf_eliquare.runs import OnnxExportReport


def _require_extra():
    for name in onnx_export.ONNX_MODULES:
        pytest.importorskip(name)


def _save_student(directory: Path, tokenizer, seed: int = 0) -> Path:
    model = tiny_bert(len(tokenizer), layers=2, seed=seed)
    model.config.eliquare = {
        "teacher": "bert-base-multilingual-cased",
        "teacher_num_layers": 4,
        "teacher_layers": [0, 2],
    }
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    (directory / "eliquare_run.json").write_text(json.dumps({"lang": "sl", "language_name": "Slovene"}))
    return directory


@pytest.fixture(scope="module")
def exported_student(tmp_path_factory, demo_tokenizer):
    """A tiny random-weight MLM student, exported once (int8 agreement is reported, not required: random logits)."""
    _require_extra()
    directory = _save_student(tmp_path_factory.mktemp("student") / "student", demo_tokenizer)
    report = onnx_export.export_onnx(directory, int8_min_agreement=0.0)
    return directory, report


def test_masked_lm_export_layout_and_check(exported_student):
    import numpy as np
    import onnx

    directory, report = exported_student
    folder = directory / "onnx"
    assert sorted(p.name for p in folder.iterdir()) == ["eliquare_onnx.json", "model.onnx", "model_quantized.onnx"]
    assert not [p for p in directory.iterdir() if p.name.startswith(".")], "no temporary folder left behind"
    graph = onnx.load(folder / "model.onnx").graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask", "token_type_ids"]
    assert [o.name for o in graph.output] == ["logits"]
    for value in [*graph.input, *graph.output]:
        dims = value.type.tensor_type.shape.dim
        assert [dims[0].dim_param, dims[1].dim_param] == ["batch_size", "sequence_length"]

    assert report.task == "fill-mask" and report.check["compared"] == "masked positions"
    fp32, int8 = report.check["results"]["fp32"], report.check["results"]["int8"]
    assert fp32["max_abs_diff"] <= 1e-4 and fp32["argmax_agreement"] == 1.0 and fp32["positions"] > 100
    assert 0.0 <= int8["argmax_agreement"] <= 1.0 and int8["positions"] == fp32["positions"]
    assert report.to_dict() == json.loads((folder / "eliquare_onnx.json").read_text())
    assert OnnxExportReport.of_model_dir(directory) == report  # the one reader (the card's) reads it back
    # Dynamic axes: a shape the exporter never saw, with padding, still matches PyTorch.
    model = onnx_export.load_for_export(directory)[0]
    ids = torch.randint(5, model.config.vocab_size, (3, 21))
    mask = torch.ones_like(ids)
    mask[2, 9:] = 0
    inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    (logits,) = onnx_export.ort_session(folder / "model.onnx").run(
        ["logits"], {k: v.numpy() for k, v in inputs.items()}
    )
    with torch.no_grad():
        expected = model(**inputs).logits.numpy()
    assert logits.shape == (3, 21, model.config.vocab_size)
    assert np.abs(logits - expected)[mask.bool().numpy()].max() <= 1e-4


def test_token_classifier_export(tmp_path, demo_tokenizer):
    _require_extra()
    from transformers import BertForTokenClassification

    config = tiny_bert(len(demo_tokenizer), layers=2).config
    config.id2label = {i: label for i, label in enumerate(["NOUN", "VERB", "ADJ", "ADP", "PUNCT"])}
    config.label2id = {label: i for i, label in config.id2label.items()}
    torch.manual_seed(3)
    directory = tmp_path / "pos"
    BertForTokenClassification(config).save_pretrained(directory)
    demo_tokenizer.save_pretrained(directory)
    (directory / "all_results.json").write_text(json.dumps({"task": "sl_pos", "lang": "sl", "test_accuracy": 0.5}))

    report = onnx_export.export_onnx(directory, int8_min_agreement=0.0)
    assert report.task == "token-classification" and report.check["compared"] == "word pieces"
    assert report.check["results"]["fp32"]["max_abs_diff"] <= 1e-4
    assert report.check["source"].startswith("hf_eliquare.export.CHECK_SENTENCES (sl,")  # the model's language first
    session = onnx_export.ort_session(directory / "onnx" / "model_quantized.onnx")
    assert session.get_outputs()[0].name == "logits" and session.get_outputs()[0].shape[-1] == 5
    card = write_model_card(directory).read_text()
    assert "## ONNX" in card and 'pipeline("token-classification"' in card and "- onnx" in card


def test_dry_run_and_card_include_onnx(exported_student, tmp_path):
    directory, report = exported_student
    card = write_model_card(directory, lang="sl").read_text()  # validated offline before it is written
    assert "## ONNX" in card and "`onnx/model_quantized.onnx`" in card and 'dtype: "q8"' in card
    int8 = report.check["results"]["int8"]
    assert f"{100 * int8['argmax_agreement']:.2f}%" in card  # the measured number, from the report
    staged = stage_upload(directory, tmp_path / "staging")
    assert {"onnx/model.onnx", "onnx/model_quantized.onnx", "onnx/eliquare_onnx.json"} <= set(staged)
    for name in staged:
        assert (tmp_path / "staging" / name).is_file()


def test_check_sentences_from_a_file_or_built_in(tmp_path):
    text = tmp_path / "sl.txt"
    text.write_text("Prva poved.\n\nDruga poved je tu.\nTretja.\n", encoding="utf-8")
    assert onnx_export.check_sentences(tmp_path, text, max_sentences=2) == (
        ["Prva poved.", "Druga poved je tu."],
        str(text),
    )
    (tmp_path / "eliquare_run.json").write_text(json.dumps({"lang": "fr"}))
    sentences, source = onnx_export.check_sentences(tmp_path)
    assert sentences[0] == onnx_export.CHECK_SENTENCES["fr"][0] and "(fr, sl," in source
    with pytest.raises(DataError, match="--check_file"):
        onnx_export.check_sentences(tmp_path, tmp_path / "missing.txt")


def test_partial_onnx_folder_is_not_published(tmp_path, demo_tokenizer):
    directory = _save_student(tmp_path / "student", demo_tokenizer)
    write_model_card(directory, lang="sl")
    (directory / "onnx").mkdir()
    (directory / "onnx" / "model.onnx").write_bytes(b"not a finished export")
    with pytest.raises(ConfigurationError, match="export again"):
        upload_files(directory)


def test_failed_check_writes_nothing(exported_student, tmp_path, demo_tokenizer, monkeypatch):
    """Other weights than the exported graph's: the real check fails, the old onnx/ stays as it was."""
    directory, _ = exported_student
    other = _save_student(tmp_path / "other", demo_tokenizer, seed=1)
    shutil.copytree(directory / "onnx", other / "onnx")
    before = (other / "onnx" / "eliquare_onnx.json").read_bytes()

    def stale_graph(model, tokenizer, path, opset=18):  # skips the slow export: the first student's graph
        shutil.copy(directory / "onnx" / "model.onnx", path)
        return ["input_ids", "attention_mask", "token_type_ids"]

    monkeypatch.setattr(onnx_export, "export_fp32", stale_graph)
    with pytest.raises(onnx_export.ExportCheckError, match="fp32 ONNX model differs from PyTorch"):
        onnx_export.export_onnx(other, quantize=False)
    assert (other / "onnx" / "eliquare_onnx.json").read_bytes() == before
    assert not [p for p in other.iterdir() if p.name.startswith(".")]

    # The same graph for the same weights passes fp32, and a too strict int8 requirement is refused.
    agreement = json.loads(before)["check"]["results"]["int8"]["argmax_agreement"]
    if agreement == 1.0:
        pytest.skip("the random student happens to agree everywhere in int8")
    with pytest.raises(onnx_export.ExportCheckError, match="int8 ONNX model agrees with PyTorch"):
        onnx_export.export_onnx(directory, int8_min_agreement=1.0, output_dir=tmp_path / "strict")
    assert not (tmp_path / "strict" / "onnx").exists()


def test_refusal_without_the_extra(tmp_path, demo_tokenizer, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ImportError
    with pytest.raises(ConfigurationError, match=r"onnxruntime.*pip install 'hf_eliquare\[onnx\]'"):
        onnx_export.require_onnx_extra()
    directory = _save_student(tmp_path / "student", demo_tokenizer)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_main(lambda: export_command.main(["--model_dir", str(directory)]))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "hf_eliquare[onnx]" in err and "Traceback" not in err
    assert not (directory / "onnx").exists()

    # run_distill.py --export_onnx refuses before any training.
    from hf_eliquare import DistillationTrainingArguments
    from hf_eliquare.cli.distill import DataArguments, _preflight_publishing

    data_args = DataArguments(lang="sl", export_onnx=True)
    training_args = DistillationTrainingArguments(output_dir=str(tmp_path / "out"), report_to="none", use_cpu=True)
    with pytest.raises(ConfigurationError, match="hf_eliquare\\[onnx\\]"):
        _preflight_publishing(data_args, training_args)

    # hf-eliquare publish --export_onnx refuses before staging or pushing anything.
    from hf_eliquare.cli import publish as publish_command

    with pytest.raises(ConfigurationError, match="hf_eliquare\\[onnx\\]"):
        publish_command.main(["--model_dir", str(directory), "--export_onnx", "--hub_dry_run", str(tmp_path / "dry")])
    assert not (tmp_path / "dry").exists() and not (directory / "onnx").exists()


def test_publish_exports_first_then_stages_onnx(exported_student, tmp_path, monkeypatch):
    """`hf-eliquare publish --export_onnx --hub_dry_run DIR`: the export runs first (here it copies the fixture's
    checked export instead of exporting again, to save time), the card is regenerated, and onnx/ is staged."""
    from hf_eliquare.cli import publish as publish_command

    exported, _ = exported_student
    directory = tmp_path / "student"
    shutil.copytree(exported, directory, ignore=shutil.ignore_patterns("onnx", "README.md"))
    write_model_card(directory, lang="sl")
    assert "## ONNX" not in (directory / "README.md").read_text()
    calls = []

    def copied_export(model_dir, **kwargs):
        calls.append(kwargs)
        shutil.copytree(exported / "onnx", Path(model_dir) / "onnx")
        return OnnxExportReport.of_model_dir(model_dir)

    monkeypatch.setattr(export_command, "export_onnx", copied_export)
    staged = publish_command.main(
        ["--model_dir", str(directory), "--export_onnx", "--hub_dry_run", str(tmp_path / "dry")]
    )
    assert len(calls) == 1 and calls[0]["quantize"] is True and calls[0]["int8_min_agreement"] == 0.99  # the defaults
    assert {"onnx/model.onnx", "onnx/model_quantized.onnx", "onnx/eliquare_onnx.json", "README.md"} <= set(staged)
    card = (tmp_path / "dry" / "README.md").read_text()
    assert "## ONNX" in card and "- onnx" in card


def test_run_distill_export_onnx_and_dry_run(tiny_teacher_and_corpus, tmp_path):
    """run_distill.py --export_onnx: onnx/ next to the student, on its card and in the Hub dry run."""
    _require_extra()
    from test_run_distill import base_argv, load_script

    teacher, corpus = tiny_teacher_and_corpus
    out, dry = tmp_path / "student", tmp_path / "dry"
    argv = base_argv(
        teacher, corpus, out, "--num_train_epochs", "1", "--hub_dry_run", str(dry), "--export_onnx", "true"
    )
    load_script().main([*argv, "--onnx_int8_min_agreement", "0"])  # a barely trained student: report only
    report = json.loads((out / "onnx" / "eliquare_onnx.json").read_text())
    assert report["check"]["source"] == str(corpus)  # checked on the run's own text
    assert report["check"]["results"]["fp32"]["max_abs_diff"] <= 1e-4
    assert "## ONNX" in (out / "README.md").read_text()
    staged = {str(p.relative_to(dry)) for p in dry.rglob("*") if p.is_file()}
    assert {"onnx/model.onnx", "onnx/model_quantized.onnx", "onnx/eliquare_onnx.json", "README.md"} <= staged
