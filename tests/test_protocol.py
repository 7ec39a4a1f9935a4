"""The paper's protocol (issue 12): main metric per task, global batch arithmetic, warm-up as written, data
provenance in tables, the Wilcoxon test, length-grouped batches and the teacher's pooler in the student."""

import json
import logging

import pytest
import torch

from hf_eliquare import ConfigurationError, DistillationTrainingArguments
from hf_eliquare.config import resolve_global_batch
from hf_eliquare.evaluation.finetune import FinetuneTrainingArguments, capped_warmup_steps
from hf_eliquare.evaluation.table import aggregate_results, format_table4, wilcoxon_vs_teacher
from hf_eliquare.evaluation.tasks import TASKS, data_provenance, shared_data_dir
from hf_eliquare.sampling import LengthGroupedBatchSampler

# ------------------------------------------------------------------------------------------------ 1. metric


def test_main_metric_per_task_is_the_papers():
    """F1 everywhere (classification: macro-F1; POS: accuracy = micro-F1), accuracy for Dutch DBRD."""
    assert TASKS["nl_sentiment"].main_metric == "accuracy"
    for name in ("fr_sentiment", "he_sentiment", "hi_news", "sw_news", "sl_topic", "sw_sentiment"):
        assert TASKS[name].main_metric == "macro_f1", name
    assert TASKS["sl_ner"].main_metric == TASKS["sw_ner"].main_metric == "f1"
    assert TASKS["sl_pos"].main_metric == "accuracy"


# ------------------------------------------------------------------------------------------ 2. global batch


@pytest.mark.parametrize(
    "given_global, given_accumulation, per_device, world, expected",
    [
        (None, None, 8, 4, (50, 1600)),  # the paper: 8 per device × 4 GPUs × 50
        (None, None, 8, 1, (200, 1600)),  # the same global batch on one device
        (1600, None, 8, 2, (100, 1600)),  # two processes
        (1600, 100, 8, 2, (100, 1600)),  # both given and consistent
        (None, 2, 4, 2, (2, 16)),  # accumulation alone wins; the global batch follows
        (16, None, 16, 1, (1, 16)),  # the demo
    ],
)
def test_global_batch_arithmetic(given_global, given_accumulation, per_device, world, expected):
    assert resolve_global_batch(given_global, given_accumulation, per_device, world) == expected


def test_global_batch_errors():
    with pytest.raises(ConfigurationError, match="not a multiple of .* 8 × 3 = 24"):
        resolve_global_batch(1600, None, 8, 3)
    with pytest.raises(ConfigurationError, match="contradicts --global_batch_size 1600"):
        resolve_global_batch(1600, 50, 8, 1)


def test_global_batch_with_two_processes_in_the_arguments(monkeypatch, caplog):
    """The arguments read the world size: two processes halve the accumulation, and the arithmetic is logged."""
    from transformers import TrainingArguments

    monkeypatch.setattr(TrainingArguments, "world_size", property(lambda self: 2))
    with caplog.at_level(logging.INFO, logger="hf_eliquare.config"):
        args = DistillationTrainingArguments(output_dir="x", report_to="none")
    assert (args.gradient_accumulation_steps, args.global_batch_size) == (100, 1600)
    assert "1600 sequences (the paper's default) = 8 per device × 2 process(es) × 100 accumulation" in caplog.text
    with pytest.raises(ConfigurationError, match="8 × 2 = 16"):
        DistillationTrainingArguments(output_dir="x", report_to="none", global_batch_size=1000)


def test_global_batch_is_checked_at_start_up(tmp_path, capsys):
    """The start-up check (cli/checks.py) refuses arguments whose batch no longer gives the recorded global
    batch, and a global batch that no accumulation gives is one `error:` line from the command."""
    from test_cli import one_error_line

    from hf_eliquare.cli import distill
    from hf_eliquare.cli.checks import check_global_batch

    args = DistillationTrainingArguments(output_dir="x", report_to="none", global_batch_size=16)
    check_global_batch(args)  # 8 × 1 × 2
    object.__setattr__(args, "per_device_train_batch_size", 4)  # edited after the arithmetic
    with pytest.raises(ConfigurationError, match="does not match .* 4 × 1 × 2 = 8"):
        check_global_batch(args)
    rebuilt = DistillationTrainingArguments(
        output_dir="x", report_to="none", global_batch_size=16, per_device_train_batch_size=4
    )
    check_global_batch(rebuilt)  # built with the new batch: the accumulation follows (4 × 1 × 4)
    assert rebuilt.gradient_accumulation_steps == 4
    line = one_error_line(
        capsys,
        distill.main,
        ["--lang", "sl", "--output_dir", str(tmp_path / "o"), "--global_batch_size", "20", "--report_to", "none"],
    )
    assert "--global_batch_size 20 is not a multiple of" in line and "8 × 1 = 8" in line
    line = one_error_line(
        capsys, distill.main, ["--lang", "sl", "--output_dir", str(tmp_path / "o"), "--max_vocab_size", "0"]
    )
    assert "max_vocab_size must be a positive integer" in line


# --------------------------------------------------------------------------------------------- 3. warm-up


def test_finetune_warmup_is_the_papers_as_written():
    args = FinetuneTrainingArguments(output_dir="x")
    assert args.warmup_steps == 500 and args.warmup_max_fraction is None
    assert capped_warmup_steps(500, 40, None) == 500  # longer than the run: still as written
    assert capped_warmup_steps(500, 40, 0.1) == 4  # the opt-in cap
    assert capped_warmup_steps(0.06, 40, 0.1) == 0.06  # a ratio is kept


# ------------------------------------------------------------------------------------------ 4. provenance


def _result(model, task, score, provenance):
    t = TASKS[task]
    return {
        "model": model,
        "task": task,
        "seed": 1,
        "main_metric": t.main_metric,
        "test_metrics": {t.main_metric: score},
        "validation_metrics": {t.main_metric: score},
        "data_provenance": provenance,
    }


def test_provenance_marks_in_the_rendered_table():
    hub = data_provenance(TASKS["sw_ner"], {"dataset_name": "masakhane/masakhaner"}, "provided")
    local = data_provenance(TASKS["sw_ner"], {"files": {"train": "a"}, "explicit_splits": []}, "provided")
    resplit = data_provenance(
        TASKS["sl_pos"], {"files": {"test": "t"}}, "pooled validation+test and re-split 80/10/10"
    )
    other = data_provenance(TASKS["sl_ner"], {"files": {"test": "t"}}, "pooled validation+test and re-split 80/10/10")
    substitute = data_provenance(TASKS["sl_topic"], {"files": {"test": "t"}}, "provided")
    user = data_provenance(TASKS["sw_ner"], {"files": {"train": "x"}, "explicit_splits": ["train"]}, "provided")
    assert (hub["code"], hub["differs_from_paper"]) == ("H", False)
    assert (local["code"], local["differs_from_paper"]) == ("L", False)
    assert (resplit["code"], resplit["differs_from_paper"]) == ("L+R", True)
    assert (other["code"], other["origin"]) == ("S+R", "substitute") and "not WikiANN" in other["description"]
    assert (substitute["code"], substitute["differs_from_paper"]) == ("S", True)
    assert (user["code"], user["differs_from_paper"]) == ("F", True)

    agg = aggregate_results(
        [
            _result("mbert", "sw_ner", 0.80, hub),
            _result("student", "sw_ner", 0.78, local),
            _result("mbert", "sl_pos", 0.95, resplit),
            _result("student", "sl_pos", 0.94, resplit),
            _result("mbert", "sl_ner", 0.90, other),
            _result("student", "sl_topic", 0.70, substitute),
        ]
    )
    lines = format_table4(agg).splitlines()
    assert lines[0] == "| model | sl NER | sl POS | sl topic | sw NER |"
    assert lines[2] == "| mbert | 90.00 S+R† | 95.00 L+R† | – | 80.00 H |"
    assert lines[3] == "| student | – | 94.00 L+R† | 70.00 S† | 78.00 L |"
    legend = next(line for line in lines if line.startswith("Data: "))
    for code in ("H = the paper's Hub dataset", "L = a local copy", "S = a substitute", "+R = pooled"):
        assert code in legend
    assert "† = data or split differs from the paper's" in legend
    assert "sl NER: local substitute: SSJ NER tags, not WikiANN" in next(l for l in lines if l.startswith("Sources:"))


def test_task_data_dir_does_not_depend_on_the_source_tree(tmp_path, monkeypatch):
    monkeypatch.delenv("ELIQUARE_SHARED_DATA", raising=False)
    work = tmp_path / "project"
    work.mkdir()
    monkeypatch.chdir(work)
    assert shared_data_dir() == (tmp_path / "shared" / "data").resolve()  # ../shared/data beside the CWD
    monkeypatch.setenv("ELIQUARE_SHARED_DATA", str(tmp_path))
    assert shared_data_dir() == tmp_path.resolve()
    assert shared_data_dir(work) == work.resolve()  # --data_dir wins
    with pytest.raises(ConfigurationError, match=r"\(--data_dir\) does not exist"):
        shared_data_dir(tmp_path / "missing")
    monkeypatch.setenv("ELIQUARE_SHARED_DATA", str(tmp_path / "missing"))
    with pytest.raises(ConfigurationError, match=r"\$ELIQUARE_SHARED_DATA"):
        TASKS["sl_pos"].local_paths()


def test_missing_data_dir_is_one_error_line(tmp_path, capsys):
    from test_cli import one_error_line

    from hf_eliquare.cli import finetune

    model = tmp_path / "model"
    model.mkdir()
    argv = ["--model_name_or_path", str(model), "--task", "sl_pos", "--output_dir", str(tmp_path / "out")]
    line = one_error_line(capsys, finetune.main, [*argv, "--data_dir", str(tmp_path / "missing")])
    assert "(--data_dir) does not exist" in line


# -------------------------------------------------------------------------------------------- 5. Wilcoxon


def _agg(teacher, student):
    tasks = ["sl_ner", "sl_pos", "sw_ner", "sw_news", "fr_pos"][: len(teacher)]
    prov = {"code": "H", "differs_from_paper": False, "description": "x"}
    return aggregate_results(
        [_result("teacher", t, s, prov) for t, s in zip(tasks, teacher)]
        + [_result("student", t, s, prov) for t, s in zip(tasks, student)]
    )


def test_wilcoxon_left_tailed_on_a_hand_computed_case():
    # differences student − teacher (in points): −1, −2, −3, +4 → ranks 1, 2, 3, 4; W+ = 4.
    # Exact null distribution of W+ for n = 4 (16 equally likely sign patterns): W+ ≤ 4 for the subsets
    # {}, {1}, {2}, {3}, {4}, {1,2}, {1,3} → p = 7/16.
    test = wilcoxon_vs_teacher(_agg([0.50, 0.60, 0.70, 0.80], [0.49, 0.58, 0.67, 0.84]), "teacher")["student"]
    assert test["n"] == 4 and test["statistic"] == 4
    assert test["p_value"] == pytest.approx(7 / 16)
    # all five cells lower: W+ = 0, p = 1/32
    test = wilcoxon_vs_teacher(_agg([0.5] * 5, [0.49, 0.48, 0.47, 0.46, 0.45]), "teacher")["student"]
    assert test["statistic"] == 0 and test["p_value"] == pytest.approx(1 / 32)
    table = format_table4(_agg([0.5] * 5, [0.49, 0.48, 0.47, 0.46, 0.45]), {"student": test}, "teacher")
    assert "Wilcoxon signed-rank test, left-tailed (H1: lower than teacher)" in table
    assert "student: W+ = 0, p = 0.0312 over 5 cells" in table
    with pytest.raises(ConfigurationError, match="not a row"):
        wilcoxon_vs_teacher(_agg([0.5], [0.4]), "mbert")


# ----------------------------------------------------------------------------------- 8. grouped batches


def test_length_grouped_order_is_seeded_grouped_and_independent_of_the_layout():
    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(5, 60, (203,), generator=generator).tolist()
    sampler = LengthGroupedBatchSampler(lengths, batch_size=8, seed=3)
    batches = sampler.batches()
    assert sorted(i for b in batches for i in b) == list(range(203))
    assert all(len(b) == 8 for b in batches[:-1]) and len(batches[-1]) == 203 % 8  # the short one last
    padded = sum(8 * max(lengths[i] for i in b) for b in batches[:-1])
    random_padded = sum(8 * max(lengths[i] for i in range(k, k + 8)) for k in range(0, 200, 8))
    assert padded < 0.7 * random_padded, "groups of similar lengths"
    means = [sum(lengths[i] for i in b) / len(b) for b in batches[:-1]]
    assert means != sorted(means) and means != sorted(means, reverse=True), "random order between groups"
    assert list(sampler) == list(LengthGroupedBatchSampler(lengths, batch_size=8, seed=3)), "reproducible"
    sampler.set_epoch(1)
    assert list(sampler) != [i for b in batches for i in b], "a new order every epoch"
    again = LengthGroupedBatchSampler(lengths, batch_size=8, seed=3)
    again.set_epoch(1)
    assert list(again) == list(sampler), "a resumed run gets the same order for its epoch"


# ------------------------------------------------------------------------------------------------ 7. pooler


def test_teachers_pooler_is_carried_into_the_saved_student(tmp_path):
    """A BERT checkpoint with a trained pooler (as mBERT's): the saved student holds it, so a classifier
    fine-tuned from the student starts with the teacher's pooler instead of a random one. The same run
    reduces the vocabulary to the paper's size by count (``--max_vocab_size``) after distillation."""
    from _reliability import write_corpus
    from conftest import DEMO_DIR
    from test_run_distill import base_argv, load_script
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig, BertForPreTraining

    tokenizer = AutoTokenizer.from_pretrained(DEMO_DIR / "tokenizer")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    teacher = BertForPreTraining(config)  # MLM head + pooler + NSP head, like bert-base-multilingual-cased
    with torch.no_grad():
        teacher.bert.pooler.dense.weight.normal_()
    teacher_dir = tmp_path / "teacher"
    teacher.save_pretrained(teacher_dir)
    tokenizer.save_pretrained(teacher_dir)
    corpus = write_corpus(tmp_path / "corpus.txt", 60)
    out = tmp_path / "student"
    load_script().main(base_argv(teacher_dir, corpus, out, "--num_train_epochs", "1", "--save_strategy", "no",
                                 "--eval_strategy", "no", "--load_best_model_at_end", "false",
                                 "--vocab_reduction", "post", "--max_vocab_size", "300"))  # fmt: skip

    classifier = AutoModelForSequenceClassification.from_pretrained(out, num_labels=3)
    assert torch.equal(classifier.bert.pooler.dense.weight, teacher.bert.pooler.dense.weight)
    assert torch.equal(classifier.bert.pooler.dense.bias, teacher.bert.pooler.dense.bias)
    assert json.loads((out / "eliquare_run.json").read_text())["pooler_from_teacher"] is True
    info = json.loads((out / "config.json").read_text())["eliquare"]
    assert info["pooler"] == "copied from the teacher"
    assert info["vocab_reduction"]["kept_vocab_size"] == 300 == classifier.config.vocab_size
    assert info["vocab_reduction"]["max_vocab_size"] == 300
