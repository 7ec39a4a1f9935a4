"""A run killed with SIGKILL mid-epoch and restarted ends with exactly the weights of an uninterrupted run.

The student has dropout (0.1) so the restored RNG state matters, the masking collator's masks and the
data order must match too, and the resumed run crosses an epoch boundary after the restart.
"""

import json
import shutil
import signal
import subprocess
import sys
import time

import pytest
from _reliability import (
    SCRIPT,
    build_teacher,
    distill_argv,
    looks_finished,
    max_weight_difference,
    run_script,
    subprocess_env,
    write_corpus,
)
from conftest import ROOT

KILL_AT = 12  # checkpoint step after which the run is killed (epoch 1 has ~30 steps)


def train_argv(teacher, corpus, out, *extra):
    return distill_argv(
        teacher, corpus, out,
        "--num_train_epochs", "2", "--seed", "11", "--learning_rate", "2e-3",
        "--eval_strategy", "steps", "--eval_steps", "6", "--save_strategy", "steps", "--save_steps", "6",
        "--load_best_model_at_end", "false", "--logging_steps", "1",
        *extra,
    )  # fmt: skip


def losses_by_step(out_dir):
    """Training losses from the newest checkpoint's trainer_state.json (the log history of the whole run)."""
    last = max(out_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    history = json.loads((last / "trainer_state.json").read_text())["log_history"]
    return {h["step"]: h["loss"] for h in history if "loss" in h}, {
        h["step"]: h["eval_loss"] for h in history if "eval_loss" in h
    }


def _complete_json(path) -> bool:
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def kill_after_checkpoint(argv, out_dir, step):
    """Start run_distill.py and SIGKILL it as soon as checkpoint-<step> is completely written."""
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), *map(str, argv)],
        cwd=ROOT,
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    marker = out_dir / f"checkpoint-{step}" / "trainer_state.json"
    deadline = time.time() + 240
    while not _complete_json(marker):  # exists is not enough: the file is created before it is written
        if process.poll() is not None:
            pytest.fail(
                f"the run ended (rc={process.returncode}) before checkpoint-{step}: {process.stderr.read()[-2000:]}"
            )
        if time.time() > deadline:
            process.kill()
            pytest.fail("no checkpoint within 240 s")
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stderr.close()
    assert process.returncode == -signal.SIGKILL


def test_sigkill_and_restart_gives_the_uninterrupted_weights(tmp_path):
    teacher = build_teacher(tmp_path / "teacher", dropout=0.1)
    corpus = write_corpus(tmp_path / "corpus.txt", 160)

    reference = tmp_path / "uninterrupted"
    done = run_script(train_argv(teacher, corpus, reference))
    assert done.returncode == 0, done.stderr[-3000:]
    ref_losses, ref_evals = losses_by_step(reference)
    total_steps = max(ref_losses)
    assert total_steps > 3 * KILL_AT, "the kill must land mid-run"

    killed = tmp_path / "killed"
    kill_after_checkpoint(train_argv(teacher, corpus, killed), killed, KILL_AT)
    assert not looks_finished(killed), "a killed run must not leave something that looks like a finished model"
    assert not (killed / f"checkpoint-{total_steps}").exists(), "the run was killed before its end"
    explicit_checkpoint = tmp_path / "saved-checkpoint"
    shutil.copytree(killed / f"checkpoint-{KILL_AT}", explicit_checkpoint)
    # A checkpoint half-written when the process died (no trainer_state.json yet) must be skipped.
    half = killed / f"checkpoint-{total_steps - 1}"
    half.mkdir(exist_ok=True)
    (half / "model.safetensors").write_bytes(b"\0" * 10)

    # 1. Restart with the same command: resumes automatically from the last complete checkpoint.
    resumed = run_script(train_argv(teacher, corpus, killed))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = resumed.stdout + resumed.stderr
    assert "Resuming from the last checkpoint in the output directory" in log
    assert f"Skipping {half}" in log
    assert looks_finished(killed)
    assert max_weight_difference(reference, killed) <= 1e-6

    # 2. --resume_from_checkpoint into a fresh output directory.
    explicit = tmp_path / "explicit"
    rerun = run_script(train_argv(teacher, corpus, explicit, "--resume_from_checkpoint", explicit_checkpoint))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert max_weight_difference(reference, explicit) <= 1e-6

    # The same losses step by step, before and after the restart (masks, data order, dropout).
    for out in (killed, explicit):
        losses, evals = losses_by_step(out)
        assert losses.keys() == ref_losses.keys() and evals.keys() == ref_evals.keys()
        for step, value in ref_losses.items():
            assert losses[step] == pytest.approx(value, rel=1e-6, abs=1e-6), step
        for step, value in ref_evals.items():
            assert evals[step] == pytest.approx(value, rel=1e-6, abs=1e-6), step
