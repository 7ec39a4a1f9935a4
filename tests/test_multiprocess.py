"""Two processes (DDP over gloo, CPU) give the losses and weights of one process with twice the accumulation.

`accelerate launch --multi_gpu --num_processes 2` runs run_distill.py on two CPU processes (`--cpu
--num_processes 2` would silently run one). The run's training set is a multiple of the global batch
(see docs/reliability.md for the last, padded batch of an epoch otherwise). The teacher (hence the
student) has no dropout, so both runs draw the same randomness.
"""

import glob
import json
import socket
import sys

import pytest
import torch
from _reliability import build_teacher, distill_argv, max_weight_difference, run_script, subprocess_env, write_corpus


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def history(out_dir):
    last = max(glob.glob(f"{out_dir}/checkpoint-*"), key=lambda p: int(p.rsplit("-", 1)[1]))
    return json.loads(open(f"{last}/trainer_state.json").read())["log_history"]


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="torch.distributed with the gloo backend is not available in this torch build")  # fmt: skip
def test_two_processes_equal_one_with_twice_the_accumulation(tmp_path):
    teacher = build_teacher(tmp_path / "teacher", dropout=0.0)
    corpus = write_corpus(tmp_path / "corpus.txt", 120)

    def argv(out, accumulation):
        return distill_argv(
            teacher, corpus, out,
            "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "4",
            "--gradient_accumulation_steps", str(accumulation), "--max_train_samples", "96",
            "--num_train_epochs", "2", "--seed", "5", "--learning_rate", "2e-3", "--logging_steps", "1",
            "--eval_strategy", "epoch", "--save_strategy", "epoch",
        )  # fmt: skip

    port = free_port()
    launcher = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port),
    ]  # fmt: skip
    env = subprocess_env(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    two = run_script(argv(tmp_path / "two", 2), env=env, launcher=launcher)
    if two.returncode != 0 and "gloo" in two.stderr.lower() and "connect" in two.stderr.lower():
        pytest.skip(f"accelerate could not start two gloo processes here: {two.stderr[-500:]}")
    assert two.returncode == 0, two.stderr[-4000:]
    one = run_script(argv(tmp_path / "one", 4))
    assert one.returncode == 0, one.stderr[-4000:]

    run_two = json.loads((tmp_path / "two" / "eliquare_run.json").read_text())
    run_one = json.loads((tmp_path / "one" / "eliquare_run.json").read_text())
    assert run_two["num_processes"] == 2 and run_one["num_processes"] == 1, "two processes really ran"
    assert run_two["global_steps"] == run_one["global_steps"] == 12
    # the global batch: 4 per device × 2 processes × 2 accumulation = 4 × 1 × 4 (length-grouped order, the default)
    assert run_two["global_batch_size"] == run_one["global_batch_size"] == 16
    assert run_two["train_sampling_strategy"] == run_one["train_sampling_strategy"] == "group_by_length"

    h_two, h_one = history(tmp_path / "two"), history(tmp_path / "one")
    assert len(h_two) == len(h_one)
    compared = 0
    for a, b in zip(h_two, h_one):
        assert a["step"] == b["step"]
        for key in ("loss", "grad_norm", "loss_ce", "loss_mlm", "loss_cos", "eval_loss"):
            if key in b:
                # the logged loss is the global mean, not multiplied by the number of processes
                assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), (key, a["step"])
                compared += 1
    assert compared >= 12 * 5 + 2
    assert max_weight_difference(tmp_path / "two", tmp_path / "one") <= 1e-5
