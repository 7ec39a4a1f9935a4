"""The reproduction study driver (reproduction/): cell keys, leakage guard, resume, and the whole
``--scale smoke`` study end to end (every stage, then a second run that skips every finished cell, then
a run after losing one result and one cached model)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, shared_path

sys.path.insert(0, str(ROOT))

from reproduction.cells import Cell, Study, config_key, write_json_atomic  # noqa: E402
from reproduction.corpora import build_corpora  # noqa: E402
from reproduction.runner import execution_mode  # noqa: E402


def test_config_key_is_canonical_and_sensitive():
    assert config_key({"a": 1, "b": [1, 2]}) == config_key({"b": [1, 2], "a": 1})
    assert config_key({"a": 1}) != config_key({"a": 2})


def test_result_with_a_stale_key_counts_as_pending(tmp_path):
    study = Study("t", {}, tmp_path / "results", tmp_path / "cache", ROOT)
    cell = study.add(Cell(stage="s", name="c", spec={"x": 1}, run=lambda c, s: {}))
    assert not study.done(cell)
    write_json_atomic(study.result_path(cell), {"key": "something else", "result": {}})
    assert not study.done(cell)
    write_json_atomic(study.result_path(cell), {"key": cell.key, "result": {"v": 3}})
    assert study.result(cell)["result"] == {"v": 3}
    assert not list(study.result_path(cell).parent.glob(".*tmp*"))  # nothing half-written left behind


def test_execution_mode_is_one_mode_or_one_per_kind(tmp_path):
    def study(execution):
        return Study("t", {"execution": execution} if execution else {}, tmp_path / "r", tmp_path / "c", ROOT)

    assert execution_mode(study(None), "finetune") == "subprocess"
    assert execution_mode(study("inprocess"), "mlm") == "inprocess"
    per_kind = study({"finetune": "inprocess"})
    assert [execution_mode(per_kind, k) for k in ("mlm", "distill", "finetune")] == [
        "subprocess",
        "subprocess",
        "inprocess",
    ]
    with pytest.raises(ValueError, match="'subprocess' or 'inprocess'"):
        execution_mode(study({"finetune": "threads"}), "finetune")


def test_corpora_drop_lines_holding_an_evaluation_sentence(tmp_path):
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "xx.txt").write_text(
        "Prvi stavek je tukaj. Vlada dodeli sredstva ministrstvu.\nDrugi odstavek brez težav.\n"
        + "".join(f"Vrstica številka {i} je čisto navadna.\n" for i in range(40)),
        encoding="utf-8",
    )
    (tmp_path / "eval.conllu").write_text(
        "# text = Vlada dodeli sredstva ministrstvu.\n1\tVlada\t_\n2\tdodeli\t_\n3\tsredstva\t_\n"
        "4\tministrstvu\t_\n5\t.\t_\n\n",
        encoding="utf-8",
    )
    record = build_corpora(
        tmp_path, {"xx": ["text/xx.txt"]}, ["eval.conllu"], tmp_path / "out", validation_lines=2, seed=1
    )
    info = record["languages"]["xx"]
    assert info["lines_dropped_for_overlap"] == 1
    assert info["train_lines"] + info["validation_lines"] == 41
    text = (tmp_path / "out" / "xx.train.txt").read_text() + (tmp_path / "out" / "xx.validation.txt").read_text()
    assert "Vlada" not in text and "Drugi odstavek" in text


def _run_smoke(tmp_path, *extra):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "src")]))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "reproduction",
            "--scale",
            "smoke",
            "--results-dir",
            str(tmp_path / "results"),
            "--cache-dir",
            str(tmp_path / "cache"),
            *extra,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _driver_lines(stdout: str, tag: str) -> list[str]:
    return [line for line in stdout.splitlines() if f" [{tag}] " in line]


def test_smoke_study_end_to_end_and_resume(tmp_path):
    shared_path("text", "sl.txt.gz")
    shared_path("tokenizers", "bert-base-multilingual-cased", "tokenizer.json")
    shared_path("ud", "sl", "dev.conllu")

    first = _run_smoke(tmp_path)
    results = tmp_path / "results"
    files = sorted(results.rglob("*.json"))
    names = {p.stem for p in files}
    # every stage produced its cells
    assert {"teacher", "distil-sl-basic", "distil-sl-pre", "distil-sl-post", "scratch-sl", "copy-sl"} <= names
    assert {"distil-sl-pre-w111", "distil-sl-pre-t4"} <= names
    assert {"ft-teacher-sl_pos-s1", "ft-distil-sl-basic-sl_pos-s1", "ft-distil-sl-pre-t4-sl_pos-s1"} <= names
    assert len(_driver_lines(first, "done")) == len(files)

    teacher = json.loads((results / "teacher" / "teacher.json").read_text())
    validation = teacher["result"]["mlm"]["validation"]
    assert set(validation) == {"sl", "sw"} and all(v["masked_tokens"] > 0 for v in validation.values())
    assert teacher["result"]["corpus"]["languages"]["sw"]["lines_dropped_for_overlap"] > 0  # MasakhaNER sentences
    # two phases: 6 steps from random initialisation, then 3 more from those weights (the config's continuation)
    assert teacher["result"]["mlm_base"]["global_steps"] == 6 and teacher["result"]["mlm"]["global_steps"] == 3
    assert set(teacher["result"]["mlm_base"]["validation"]) == {"sl", "sw"}

    # Table 4's models on one ground: the teacher's row repeats its recorded validation (same text, same masks)
    intrinsic = json.loads((results / "finetune" / "mlm-sl.json").read_text())["result"]["scores"]
    assert set(intrinsic) == {"uniform", "distillation"}
    assert set(intrinsic["uniform"]) == {"teacher", "distil-sl-basic", "scratch-sl", "copy-sl"}
    assert intrinsic["uniform"]["teacher"]["mlm_loss"] == validation["sl"]["mlm_loss"]
    assert len({v["masked_tokens"] for v in intrinsic["distillation"].values()}) == 1

    ft = json.loads((results / "finetune" / "ft-distil-sl-basic-sl_pos-s1.json").read_text())
    assert ft["spec"]["learning_rate"] in (1.0e-3, 3.0e-3)  # chosen among the candidates
    assert 0.0 <= ft["result"]["test_metrics"]["accuracy"] <= 1.0
    pre = json.loads((results / "students" / "distil-sl-pre.json").read_text())["result"]
    basic = json.loads((results / "students" / "distil-sl-basic.json").read_text())["result"]
    assert pre["vocab_size"] < basic["vocab_size"] and pre["useful_tokens_per_s"] > 0

    # the narrow stage (issue 14): the best term chosen on validation MLM loss, then used at full width
    narrow = {p.stem: json.loads(p.read_text()) for p in (results / "narrow").glob("*.json")}
    assert {"narrow-speed", "distil-sl-half", "distil-sl-half-rel", "scratch-sl-half"} <= set(narrow)
    losses = {t: narrow[f"distil-sl-half-{t}"]["result"]["metrics"]["eval_loss_mlm"] for t in ("hidden", "rel")}
    best = min(sorted(losses), key=losses.get)
    full_best = narrow["distil-sl-full-best"]
    assert full_best["spec"]["best_term"] == best and full_best["spec"]["extra_terms"]
    assert narrow["distil-sl-half"]["result"]["student_parameters"] < basic["student_parameters"]
    speed = narrow["narrow-speed"]["result"]
    assert speed["narrow"]["hidden_size"] == 16 and speed["full"]["parameters"] > speed["narrow"]["parameters"]
    assert "ft-scratch-sl-half-sl_pos-s1" in narrow and "ft-distil-sl-full-best-sl_pos-s1" in narrow

    report = (results / "RESULTS.md").read_text()
    for heading in ("## Table 4", "## Table 5", "## Table 6", "## Table 7", "## Verdicts", "Wilcoxon", "## Narrow"):
        assert heading in report
    assert f"sl: **{best}**" in report and "**Goal**" in report
    table4_row = next(line for line in report.splitlines() if line.startswith("| sl POS |"))
    assert "pending" not in table4_row
    assert (results / "figure4-smoke.png").stat().st_size > 0 and (results / "figure5-smoke.png").exists()

    # A second run finds every cell finished and runs nothing.
    stamps = {p: p.stat().st_mtime_ns for p in files}
    second = _run_smoke(tmp_path)
    assert "0 selected cells pending" in second and not _driver_lines(second, "run")
    assert all(p.stat().st_mtime_ns == stamps[p] for p in files)

    # Losing one result and a model it needs (a clean checkout has no weights): only that cell runs,
    # after the model is rebuilt into the cache.
    (results / "finetune" / "ft-copy-sl-sl_pos-s1.json").unlink()
    for model_dir in (tmp_path / "cache").glob("copy-sl-*/model"):
        for child in model_dir.iterdir():
            child.unlink()
    third = _run_smoke(tmp_path, "--stage", "finetune")
    assert [line.split("] ")[1].split()[0] for line in _driver_lines(third, "run")] == [
        "finetune/ft-copy-sl-sl_pos-s1"
    ]
    assert len(_driver_lines(third, "rebuild")) == 1
    assert (results / "finetune" / "ft-copy-sl-sl_pos-s1.json").is_file()

    # --model-path: a student's directory for use outside the study, rebuilt when the cache lost it.
    for model_dir in (tmp_path / "cache").glob("distil-sl-basic-*/model"):
        shutil.rmtree(model_dir)
    where = _run_smoke(tmp_path, "--model-path", "distil-sl-basic")
    path = Path(where.strip().splitlines()[-1])
    assert path.name == "model" and (path / "model.safetensors").is_file() and (path / "tokenizer.json").is_file()


@pytest.mark.parametrize("scale", ["cpu", "gpu"])
def test_dry_run_lists_the_cells_of_every_scale(tmp_path, scale):
    from reproduction.driver import build_study, load_config

    study = build_study(scale, load_config(scale, None), tmp_path / "r", tmp_path / "c")
    names = list(study.cells)
    assert names[0] == "teacher"
    # priority order: basic students before Table 4 fine-tuning before pre/post before ablations
    assert names.index("distil-sl-basic") < names.index("ft-teacher-sl_pos-s1") < names.index("distil-sl-pre")
    assert names.index("distil-sw-post") < names.index("distil-sl-pre-w111")
    assert "distil-sw-pre-t0.5" in names and "ft-distil-sw-pre-t4-sw_topic-s2" in names
    # cpu fine-tunes the ablations on `ablations.tasks` only (sl NER, 0 for every model there, is left out)
    assert ("ft-distil-sl-pre-t4-sl_ner-s1" in names) == (scale == "gpu")
    assert "ft-distil-sl-pre-t4-sl_pos-s1" in names


def test_ablation_tasks_outside_the_study_are_one_error_line(tmp_path, capsys):
    from reproduction.driver import main

    config = tmp_path / "bad.yaml"
    text = (ROOT / "reproduction" / "configs" / "smoke.yaml").read_text()
    config.write_text(text.replace("temperatures: [2, 4]}", "temperatures: [2, 4], tasks: {sl: [sl_ner]}}"))
    argv = ["--scale", "smoke", "--config", str(config), "--results-dir", str(tmp_path / "r")]
    assert main([*argv, "--cache-dir", str(tmp_path / "c"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: config") and "ablations.tasks names sl: sl_ner" in err and "Traceback" not in err


def test_every_finetune_setting_of_the_config_reaches_the_command(tmp_path):
    """The protocol in the cell spec is what the fine-tuning command gets: a config key the command
    silently drops (as warmup_max_fraction once was) would run another protocol than RESULTS.md states."""
    from reproduction.driver import build_study, load_config
    from reproduction.finetune import finetune_command

    study = build_study("cpu", load_config("cpu", None), tmp_path / "r", tmp_path / "c")
    cell = study.cells["lr-teacher-sl_pos-s1-lr0.0001"]
    command = finetune_command(study, cell, str(tmp_path / "out"))
    flags = {
        arg: (command[i + 1] if i + 1 < len(command) and not command[i + 1].startswith("--") else True)
        for i, arg in enumerate(command)
        if arg.startswith("--")
    }
    ft = study.config["finetune"]
    assert flags["--warmup_max_fraction"] == str(ft["warmup_max_fraction"]) == "0.1"
    assert flags["--train_sampling_strategy"] == "group_by_length"
    assert flags["--max_train_samples"] == "1000" and flags["--num_train_epochs"] == str(ft["epochs"])
    assert flags["--learning_rate"] == "0.0001" and flags["--task"] == "sl_pos"


def test_unknown_scale_is_one_error_line(capsys):
    from reproduction.driver import main

    assert main(["--scale", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no config") and "Traceback" not in err


def test_model_path_of_an_unknown_cell_is_one_error_line(tmp_path, capsys):
    from reproduction.driver import main

    argv = ["--scale", "smoke", "--results-dir", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c")]
    assert main([*argv, "--model-path", "distil-xx-basic"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no model cell 'distil-xx-basic'") and "distil-sl-basic" in err
    assert main([*argv, "--model-path", "distil-sl-full-best"]) == 2  # waits for the best-term choice
    assert "waits for the choice of the best new term" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()  # nothing built, no lock taken


def test_one_driver_per_cache(tmp_path):
    from reproduction.driver import UsageError, lock_cache

    held = lock_cache(tmp_path)
    with pytest.raises(UsageError, match="another driver is running"):
        lock_cache(tmp_path)
    held.close()  # the kernel releases it however the holder ends (SIGKILL included)
    lock_cache(tmp_path).close()


def test_resolvable_difference_of_two_ablation_rows():
    """Twice the standard error of the difference of two rows' task-averaged means, from seed variances
    pooled over the rows: one task, var 2 in both rows, 2 seeds → 2·sqrt(2·2/2) = 2√2; two tasks halve
    the variance of the mean of an equal-noise pair."""
    from reproduction.report import resolvable_difference

    one = {"a": {"t": [1.0, 3.0]}, "b": {"t": [2.0, 4.0]}}
    assert resolvable_difference(one) == pytest.approx(2 * 2**0.5)
    two = {"a": {"t": [1.0, 3.0], "u": [5.0, 7.0]}, "b": {"t": [2.0, 4.0], "u": [0.0, 2.0]}}
    assert resolvable_difference(two) == pytest.approx(2 * 2**0.5 / 2**0.5)
    assert resolvable_difference({"a": {"t": [1.0]}, "b": {"t": [2.0]}}) is None  # one seed: no noise estimate


def test_ablation_verdicts_name_a_term_only_when_dropping_it_costs_more_than_the_noise(tmp_path):
    from reproduction.driver import build_study, load_config
    from reproduction.report import verdicts

    study = build_study("cpu", load_config("cpu", None), tmp_path / "r", tmp_path / "c")
    tasks = ["sl_pos", "sw_ner", "sw_topic"]

    def row(shift):  # two seeds 0.3 apart around (75, 53, 30) + shift
        return {t: [b + d, b + d + 0.3] for t, b, d in zip(tasks, (75, 53, 30), shift)}

    def table6(mlm_drop):
        return {
            "5/2/1": row([0, 0, 0]),
            "1/1/1": row([0, 0, 0]),
            "0/1/1": row([-0.1, 0.1, 0]),
            "1/0/1": row([mlm_drop] * 3),
            "1/1/0": row([0.1, -0.1, 0]),
        }

    t7 = {f"τ = {t}": row([d, d, 0]) for t, d in [(0.5, -1), (1, 0), (2, 0.5), (3, 0.6), (4, 0)]}
    no_t4 = {"student vs teacher": ([], [], None)}

    clear = "\n".join(verdicts(study, {}, no_t4, {}, table6(-3.0), t7))
    assert "L_mlm -3.00" in clear and "the most important is **L_mlm** (agrees with the paper" in clear
    assert "sl POS: L_ce -0.10, L_mlm -3.00, L_cos +0.10 → largest loss: L_mlm (beyond" in clear
    assert "best here **τ = 3**, 0.07 points above τ = 2" in clear and "within seed noise" in clear

    every_drop_helps = {**table6(+1.0), "0/1/1": row([0.5] * 3), "1/1/0": row([0.2] * 3)}
    helpful = "\n".join(verdicts(study, {}, no_t4, {}, every_drop_helps, t7))
    assert "did not lower the mean score" in helpful and "most important is" not in helpful
