"""Offline metrics agree with seqeval (NER) and with hand counts / scikit-learn (POS, classification)."""

import pytest
from seqeval.metrics import classification_report, f1_score

from hf_eliquare.evaluation.metrics import (
    classification_metrics,
    compute_task_metrics,
    f1_scores,
    ner_metrics,
    pos_metrics,
)


def test_ner_wrong_boundary_is_one_fp_and_one_fn():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG", "I-ORG", "I-ORG"]]
    # sentence 1: PER boundary too short (wrong), LOC right; sentence 2: ORG right
    pred = [["B-PER", "O", "O", "B-LOC"], ["O", "B-ORG", "I-ORG", "I-ORG"]]
    m = ner_metrics(gold, pred)
    # 3 gold entities, 3 predicted, 2 exact matches -> P = R = F1 = 2/3
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(f1_score(gold, pred))
    assert m["accuracy"] == pytest.approx(7 / 8)


def test_ner_matches_seqeval_report_on_mixed_cases():
    gold = [["B-per", "I-per", "O", "B-loc", "I-loc", "O"], ["B-org", "O", "B-misc"], ["O", "O"]]
    pred = [["B-per", "I-per", "O", "B-loc", "O", "O"], ["B-org", "O", "O"], ["B-loc", "O"]]
    m = ner_metrics(gold, pred)
    report = classification_report(gold, pred, output_dict=True, zero_division=0)
    assert m["precision"] == pytest.approx(report["micro avg"]["precision"])
    assert m["recall"] == pytest.approx(report["micro avg"]["recall"])
    assert m["f1"] == pytest.approx(report["micro avg"]["f1-score"])
    # by hand: gold per, loc, org, misc (4); pred per, loc(short), org, loc (4); correct per, org -> 2/4
    assert m["f1"] == pytest.approx(0.5)


def test_ner_type_error_counts_as_wrong_and_perfect_is_one():
    gold = [["B-PER", "I-PER"]]
    assert ner_metrics(gold, [["B-ORG", "I-ORG"]])["f1"] == 0.0
    assert ner_metrics(gold, gold)["f1"] == 1.0


def test_ner_length_mismatch_raises():
    with pytest.raises(ValueError):
        ner_metrics([["O", "O"]], [["O"]])


def test_pos_metrics_by_hand():
    gold = [["NOUN", "VERB", "PUNCT"], ["DET", "NOUN"]]
    pred = [["NOUN", "NOUN", "PUNCT"], ["DET", "NOUN"]]
    m = pos_metrics(gold, pred)
    assert m["accuracy"] == pytest.approx(4 / 5)
    assert m["micro_f1"] == pytest.approx(m["accuracy"])  # single label, one prediction per word
    # per class F1: NOUN 2*2/(2*2+1+0)=0.8, VERB 0, PUNCT 1, DET 1 -> macro 0.7
    assert m["macro_f1"] == pytest.approx(0.7)


def test_classification_macro_f1_matches_sklearn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    gold = ["sports", "health", "travel", "sports", "politics", "health", "travel"]
    pred = ["sports", "sports", "travel", "sports", "health", "health", "politics"]
    m = classification_metrics(gold, pred)
    assert m["accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(gold, pred))
    assert m["macro_f1"] == pytest.approx(sklearn_metrics.f1_score(gold, pred, average="macro"))
    assert f1_scores(gold, pred)["micro_f1"] == pytest.approx(sklearn_metrics.f1_score(gold, pred, average="micro"))


def test_unknown_task_type():
    from hf_eliquare.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="Unknown task type"):
        compute_task_metrics("parsing", [], [])
