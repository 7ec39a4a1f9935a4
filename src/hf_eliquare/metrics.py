"""Downstream metrics, computed offline.

``evaluate.load("seqeval")`` fetches a script from the Hub, so it fails without network. Here the
``seqeval`` package is called directly for NER, and accuracy / F1 for tagging and classification are a
few lines of counting. All functions take *word-level* (or example-level) string labels: the
sub-word handling is done before (see :mod:`hf_eliquare.finetune`).

The paper's metrics (and the keys written to ``all_results.json``):

* NER: entity-level micro precision / recall / F1 (seqeval, CoNLL-2000 rules) + token accuracy.
* POS: token accuracy and micro-F1 (and macro-F1 as a diagnostic). With exactly one prediction per
  word, micro-F1 over all tags equals accuracy; both are reported because the paper reports both.
* Classification: accuracy and macro-F1 (unweighted mean over the classes seen in gold or prediction,
  as scikit-learn's ``f1_score(average="macro")``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from .errors import ConfigurationError

#: The metric that picks the best checkpoint and fills the table, per task type: the paper scores every task
#: with F1 (POS: micro-F1, which equals accuracy with one prediction per word; classification: macro-F1).
#: A registered task can choose another (``Task.main_metric``, e.g. accuracy for Dutch DBRD, as the paper).
MAIN_METRIC = {"ner": "f1", "pos": "accuracy", "classification": "macro_f1"}


def _check_lengths(gold: Sequence, pred: Sequence) -> None:
    if len(gold) != len(pred):
        raise ValueError(f"gold and predictions differ in length: {len(gold)} != {len(pred)}")


def _flatten(seqs: Sequence[Sequence[str]]) -> list[str]:
    return [label for seq in seqs for label in seq]


def accuracy(gold: Sequence[str], pred: Sequence[str]) -> float:
    _check_lengths(gold, pred)
    if not gold:
        return 0.0
    return sum(g == p for g, p in zip(gold, pred)) / len(gold)


def f1_scores(gold: Sequence[str], pred: Sequence[str]) -> dict[str, float]:
    """Micro- and macro-F1 over the classes of ``gold`` ∪ ``pred`` (single-label; scikit-learn semantics)."""
    _check_lengths(gold, pred)
    tp, fp, fn = Counter(), Counter(), Counter()
    for g, p in zip(gold, pred):
        if g == p:
            tp[g] += 1
        else:
            fp[p] += 1
            fn[g] += 1
    labels = sorted(set(gold) | set(pred))
    per_class = []
    for label in labels:
        denom = 2 * tp[label] + fp[label] + fn[label]
        per_class.append(2 * tp[label] / denom if denom else 0.0)
    t, f_p, f_n = sum(tp.values()), sum(fp.values()), sum(fn.values())
    micro = 2 * t / (2 * t + f_p + f_n) if (t + f_p + f_n) else 0.0
    macro = sum(per_class) / len(per_class) if per_class else 0.0
    return {"micro_f1": micro, "macro_f1": macro}


def ner_metrics(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, float]:
    """Entity-level micro P/R/F1 with seqeval (default CoNLL mode) plus token accuracy.

    ``gold`` / ``pred``: one list of BIO tags per sentence. An entity counts only with exact type and
    boundaries, so a wrong boundary is one false positive *and* one false negative.
    """
    from seqeval.metrics import f1_score, precision_score, recall_score

    _check_lengths(gold, pred)
    for i, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted tags")
    gold, pred = [list(s) for s in gold], [list(s) for s in pred]
    return {
        "precision": float(precision_score(gold, pred, average="micro", zero_division=0)),
        "recall": float(recall_score(gold, pred, average="micro", zero_division=0)),
        "f1": float(f1_score(gold, pred, average="micro", zero_division=0)),
        "accuracy": accuracy(_flatten(gold), _flatten(pred)),
    }


def pos_metrics(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, float]:
    """Token accuracy, micro-F1 and macro-F1 over all tags; inputs are one tag list per sentence."""
    _check_lengths(gold, pred)
    g, p = _flatten(gold), _flatten(pred)
    return {"accuracy": accuracy(g, p), **f1_scores(g, p)}


def classification_metrics(gold: Sequence[str], pred: Sequence[str]) -> dict[str, float]:
    """Accuracy and macro-F1 (micro-F1 too, which equals accuracy for single-label classification)."""
    return {"accuracy": accuracy(gold, pred), **f1_scores(gold, pred)}


def compute_task_metrics(task_type: str, gold, pred) -> dict[str, float]:
    """Dispatch on ``task_type`` (``ner`` / ``pos`` / ``classification``)."""
    if task_type == "ner":
        return ner_metrics(gold, pred)
    if task_type == "pos":
        return pos_metrics(gold, pred)
    if task_type == "classification":
        return classification_metrics(gold, pred)
    raise ConfigurationError(f"Unknown task type {task_type!r}; use one of {sorted(MAIN_METRIC)}.")
