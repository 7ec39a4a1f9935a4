"""Publishing: the dry run stages exactly what a push sends; a push that cannot succeed fails before any work."""

from __future__ import annotations

import json
from pathlib import Path

import huggingface_hub
import pytest
from huggingface_hub import HfApi
from huggingface_hub.utils import filter_repo_objects
from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

from hf_eliquare import hub
from hf_eliquare.errors import ConfigurationError, OfflineError, OutputDirError
from hf_eliquare.hub import publish
from hf_eliquare.hub.cards import write_student_card

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MBERT_TOKENIZER = SHARED_DATA / "tokenizers" / "bert-base-multilingual-cased"
TRAINING_LEFTOVERS = [
    "checkpoint-10/model.safetensors",
    "checkpoint-10/optimizer.pt",
    "checkpoint-10/config.json",
    "runs/events.out.tfevents.1",
    "training_args.bin",
    "optimizer.pt",
    "scheduler.pt",
    "rng_state.pth",
    "trainer_state.json",
    "all_results.json",
    "train_results.json",
    ".gitattributes",
]


def _tokenizer(tmp_path: Path) -> BertTokenizerFast:
    if MBERT_TOKENIZER.is_dir():  # the real mBERT tokenizer files when the shared data is there
        return BertTokenizerFast.from_pretrained(MBERT_TOKENIZER)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "je", "in", "mesto"]) + "\n", encoding="utf-8"
    )
    return BertTokenizerFast(vocab=str(vocab))


@pytest.fixture
def student_dir(tmp_path) -> Path:
    """A finished demo-like student directory, with what training leaves behind next to it."""
    tokenizer = _tokenizer(tmp_path)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
    )
    config.eliquare = {"teacher": "bert-base-multilingual-cased", "teacher_num_layers": 4, "teacher_layers": [0, 2]}
    student = tmp_path / "student"
    BertForMaskedLM(config).save_pretrained(student)
    tokenizer.save_pretrained(student)
    (student / "eliquare_run.json").write_text(json.dumps({"lang": "sl", "alpha_ce": 5.0}), encoding="utf-8")
    write_student_card(student)
    for name in TRAINING_LEFTOVERS:
        (student / name).parent.mkdir(parents=True, exist_ok=True)
        (student / name).write_bytes(b"x")
    return student


@pytest.fixture
def no_upload(monkeypatch):
    """Fail the test if anything would be created or uploaded on the Hub."""

    def forbidden(*args, **kwargs):
        raise AssertionError("the Hub was contacted")

    for name in ("create_repo", "upload_folder", "whoami"):
        monkeypatch.setattr(HfApi, name, forbidden)


def _online(monkeypatch, reachable: bool) -> None:
    """Pretend HF_HUB_OFFLINE is unset (a conftest may set it) and the reachability probe answers ``reachable``."""
    monkeypatch.setattr(hub, "hub_offline_mode", lambda: False)
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: reachable)


def test_dry_run_stages_exactly_the_pushed_files(student_dir, tmp_path):
    staged = publish.stage_upload(student_dir, tmp_path / "dry_run")
    tokenizer_files = {"tokenizer.json", "tokenizer_config.json"}
    assert set(staged) == {"config.json", "model.safetensors", "README.md", "eliquare_run.json"} | tokenizer_files
    assert sorted(p.name for p in (tmp_path / "dry_run").iterdir()) == staged
    assert (tmp_path / "dry_run" / "model.safetensors").read_bytes() == (
        student_dir / "model.safetensors"
    ).read_bytes()
    # What upload_folder itself would select from the directory with the patterns push_student passes:
    everything = sorted(p.relative_to(student_dir).as_posix() for p in student_dir.rglob("*") if p.is_file())
    assert sorted(filter_repo_objects(everything, allow_patterns=publish.allow_patterns(staged))) == staged


def test_push_sends_the_staged_files(student_dir, tmp_path, monkeypatch):
    calls = {}
    _online(monkeypatch, reachable=True)
    monkeypatch.setattr(HfApi, "whoami", lambda self, token=None: {"name": "someone"})

    def create_repo(self, repo_id, **kwargs):
        calls["create_repo"] = dict(repo_id=repo_id, **kwargs)
        return huggingface_hub.RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, **kwargs):
        calls["upload_folder"] = kwargs
        return "commit"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    assert publish.push_student(student_dir, "someone/eliquare-sl", token="hf_test") == "commit"
    assert calls["create_repo"]["repo_id"] == "someone/eliquare-sl" and calls["create_repo"]["private"] is True
    staged = publish.stage_upload(student_dir, tmp_path / "dry_run")
    assert calls["upload_folder"]["allow_patterns"] == publish.allow_patterns(staged)
    assert calls["upload_folder"]["folder_path"] == str(student_dir)


def test_push_offline_fails_before_any_upload(student_dir, monkeypatch, no_upload):
    _online(monkeypatch, reachable=False)
    with pytest.raises(OfflineError, match="cannot be reached.*--hub_dry_run"):
        publish.preflight_push("someone/eliquare-sl", token="hf_test")
    with pytest.raises(OfflineError):
        publish.push_student(student_dir, "someone/eliquare-sl", token="hf_test")


def test_preflight_with_offline_mode(monkeypatch, no_upload):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: pytest.fail("no probe needed in offline mode"))
    with pytest.raises(OfflineError, match="HF_HUB_OFFLINE=1"):
        publish.preflight_push("someone/eliquare-sl", token="hf_test")


def test_preflight_without_token(monkeypatch, no_upload):
    _online(monkeypatch, reachable=True)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(ConfigurationError, match="hf auth login"):
        publish.preflight_push("someone/eliquare-sl")


def test_preflight_rejects_bad_repo_id(no_upload):
    with pytest.raises(ConfigurationError, match="--hub_model_id"):
        publish.preflight_push(None)
    with pytest.raises(ConfigurationError, match="not a valid Hub repository id"):
        publish.preflight_push("a/b/c")


def test_push_needs_card_weights_and_tokenizer(student_dir, tmp_path):
    (student_dir / "README.md").unlink()
    with pytest.raises(ConfigurationError, match="README.md.*hf-eliquare card"):
        publish.upload_files(student_dir)
    (student_dir / "tokenizer_config.json").unlink()
    write_student_card(student_dir)
    with pytest.raises(ConfigurationError, match="tokenizer"):
        publish.upload_files(student_dir)
    (student_dir / "model.safetensors").unlink()
    with pytest.raises(ConfigurationError, match="safetensors"):
        publish.upload_files(student_dir)


def test_dry_run_folder_must_be_new_and_outside(student_dir, tmp_path):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "old.txt").write_text("x")
    with pytest.raises(OutputDirError, match="not empty"):
        publish.preflight_dry_run(tmp_path / "used")
    with pytest.raises(ConfigurationError, match="outside"):
        publish.stage_upload(student_dir, student_dir / "dry_run")
    publish.preflight_dry_run(tmp_path / "new", student_dir)  # fine: nothing raised, nothing created
    assert not (tmp_path / "new").exists()
