"""The one argument rule: every command parses flags (or a .json/.yaml file plus overriding flags) the same
way, and every parser problem is one `error:` line with exit status 2, no traceback, nothing written."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from _reliability import subprocess_env
from conftest import ROOT

from hf_eliquare.cli import (
    EXIT_USER_ERROR,
    card,
    distill,
    eval_table,
    export,
    finetune,
    main,
    publish,
    run_command,
    vocab,
)
from hf_eliquare.runs import DistillationRun, FinetuneResult

COMMANDS = {
    "distill": (distill.main, ["--lang", "sl", "--output_dir", "{out}"]),
    "vocab": (vocab.main, ["--model", "{out}", "--corpus", "{out}", "--output_dir", "{out}"]),
    "finetune": (finetune.main, ["--model_name_or_path", "{out}", "--task", "sl_pos", "--output_dir", "{out}"]),
    "eval-table": (eval_table.main, ["--models", "{out}", "--tasks", "sl_pos", "--output_dir", "{out}"]),
    "card": (card.main, ["--model_dir", "{out}"]),
    "publish": (publish.main, ["--model_dir", "{out}"]),
    "export": (export.main, ["--model_dir", "{out}"]),
}


def one_error_line(capsys, command, argv) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_command(command, argv)
    assert exit_info.value.code == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_misspelled_flag_is_one_error_line(name, capsys, tmp_path):
    command, argv = COMMANDS[name]
    out = tmp_path / "out"
    argv = [a.format(out=out) for a in argv] + ["--learning_rat", "1e-4"]
    line = one_error_line(capsys, command, argv)
    assert "--learning_rat" in line and "--help" in line
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--vocab_reduction", "sometimes"], "invalid choice: 'sometimes'"),
        (["--num_train_epochs", "many"], "invalid float value: 'many'"),
        (["--output_dir"], "expected one argument"),
    ],
    ids=["bad-choice", "bad-type", "missing-value"],
)
def test_argparse_errors_are_one_error_line(argv, fragment, capsys, tmp_path):
    line = one_error_line(capsys, distill.main, ["--lang", "sl", "--output_dir", str(tmp_path / "o"), *argv])
    assert fragment in line


def test_config_file_plus_overrides(tmp_path):
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"lang": "sl", "output_dir": str(tmp_path / "o"), "learning_rate": 1e-3}))
    model_args, data_args, training_args = distill.parse_args([str(config), "--learning_rate", "2e-4"])
    assert data_args.lang == "sl" and training_args.learning_rate == 2e-4
    yaml = tmp_path / "card.yaml"
    yaml.write_text(f"model_dir: {tmp_path}\nlang: sl\n")
    (args,) = card.parse_args(card.CardArguments, [str(yaml), "--lang", "sw"])
    assert args.model_dir == str(tmp_path) and args.lang == "sw"


def test_unknown_key_in_config_file(capsys, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(f"lang: sl\noutput_dir: {tmp_path / 'o'}\nlearnin_rate: 0.1\n")
    assert "--learnin_rate" in one_error_line(capsys, distill.main, [str(config)])


def test_console_dispatcher(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["distil"])
    assert exit_info.value.code == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.startswith("error: Unknown command 'distil'") and "distill" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "command",
    [
        [str(ROOT / "examples" / "run_finetune.py"), "--model_name_or_path", "m", "--output_dir", "o"],
        ["-m", "hf_eliquare", "card", "--model_dir", "m"],
        ["-m", "hf_eliquare.export", "--model_dir", "m"],  # the module entry of the ONNX export (a shim)
    ],
    ids=["script", "python-m-command", "python-m-export"],
)
def test_real_command_line_misspelled_flag(command, tmp_path):
    result = subprocess.run(
        [sys.executable, *command, "--overwrite_output_dirr", "true"],
        cwd=ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == EXIT_USER_ERROR, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: Unknown argument(s) --overwrite_output_dirr")


# ------------------------------------------------------------------ run summaries


def test_distillation_run_round_trip(tmp_path):
    run = DistillationRun(lang="sl", alpha_ce=5.0, train_sequences=12, metrics={"eval_loss": 1.5})
    path = run.save(tmp_path)
    assert path.name == "eliquare_run.json"
    assert DistillationRun.load(tmp_path) == run


def test_finetune_result_reads_old_layouts(tmp_path):
    old = {"task": "sl_ner", "language": "sl", "epochs": 3.0, "test_metrics": {"f1": 0.8}, "unknown_key": 1}
    result = FinetuneResult.from_dict(old)
    assert (result.lang, result.num_train_epochs, result.test_metrics) == ("sl", 3.0, {"f1": 0.8})
    assert result.extra == {"unknown_key": 1}
    folder = tmp_path / "sib200"
    folder.mkdir()
    (folder / "all_results.json").write_text(json.dumps({"test_accuracy": 0.75, "test_loss": 0.3, "seed": 1}))
    flat = FinetuneResult.load(folder)
    assert flat.task == "sib200" and flat.test_metrics == {"accuracy": 0.75}
    assert flat.finite_test_metrics() == {"accuracy": 0.75}
    flat.save(tmp_path / "again")
    assert FinetuneResult.load(tmp_path / "again").test_metrics == {"accuracy": 0.75}


def test_disk_full_is_one_error_line(capsys):
    import errno

    def full(argv=None):
        raise OSError(errno.ENOSPC, "No space left on device", "/data/out/model.safetensors")

    with pytest.raises(SystemExit) as exit_info:
        run_command(full, [])
    assert exit_info.value.code == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert (
        err.startswith("error: The disk is full while writing '/data/out/model.safetensors'") and err.count("\n") == 1
    )


def test_public_api_names_resolve():
    import hf_eliquare

    assert sorted(hf_eliquare.__all__) == sorted(hf_eliquare._PUBLIC) and len(hf_eliquare.__all__) == 19
    for name in hf_eliquare.__all__:
        assert getattr(hf_eliquare, name).__name__ == name
    with pytest.raises(AttributeError):
        hf_eliquare.kl_div_loss  # noqa: B018 (importable from hf_eliquare.losses, not public)
