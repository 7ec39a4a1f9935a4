"""The same seed gives bit-identical students on CPU; another seed gives another student."""

import torch
from _reliability import build_teacher, distill_argv, load_script, weights, write_corpus


def test_same_seed_same_student(tmp_path):
    teacher = build_teacher(tmp_path / "teacher", dropout=0.1)  # dropout: the RNG matters
    corpus = write_corpus(tmp_path / "corpus.txt", 80)
    script = load_script()

    def run(name, seed):
        out = tmp_path / name
        script.main([str(a) for a in distill_argv(
            teacher, corpus, out, "--num_train_epochs", "2", "--seed", str(seed), "--learning_rate", "2e-3",
            "--eval_strategy", "epoch", "--save_strategy", "epoch", "--logging_steps", "1",
        )])  # fmt: skip
        return weights(out)

    first, second, other = run("a", 1), run("b", 1), run("c", 2)
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name
    assert any(not torch.equal(first[name], other[name]) for name in first), "the seed must matter"
