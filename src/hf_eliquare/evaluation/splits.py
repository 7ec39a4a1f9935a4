"""Splits and labels: provided splits first, a seeded 80/10/10 split for missing ones; the label set."""

from __future__ import annotations

import logging
import random
from collections import Counter

from ..errors import DataError
from .tasks import TOKEN_TASKS

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
#: The paper's split for a dataset without one: 80 % train, 10 % validation, 10 % test.
SPLIT_FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}


def fill_missing_splits(splits: dict[str, list[dict]], seed: int = 42) -> tuple[dict[str, list[dict]], dict]:
    """Provided splits first; missing ones come from a seeded 80/10/10 split.

    * no train split: all provided examples are pooled, shuffled with ``seed`` and split 80/10/10
      (UD_Slovenian-SSJ offline has only dev and test);
    * train but no validation and/or test: each missing split takes 10 % of the train examples.

    Returns the splits and a record of what was done (saved in ``all_results.json``).
    """
    given = {k: v for k, v in splits.items() if v}
    if not given:
        raise DataError("No data: give --train_file/--validation_file/--test_file, --dataset_name or --task.")
    info = {"provided": {k: len(v) for k, v in given.items()}, "seed": seed, "strategy": "provided"}
    rng = random.Random(seed)
    if all(s in given for s in SPLITS):
        out = {s: given[s] for s in SPLITS}
    elif "train" not in given:
        pool = [ex for s in SPLITS for ex in given.get(s, [])]
        rng.shuffle(pool)
        n_val = n_test = max(1, round(len(pool) * SPLIT_FRACTIONS["test"]))
        if len(pool) < 3:
            raise DataError(f"Only {len(pool)} examples in {sorted(given)}; not enough for an 80/10/10 split.")
        out = {"test": pool[:n_test], "validation": pool[n_test : n_test + n_val], "train": pool[n_test + n_val :]}
        info["strategy"] = f"pooled {'+'.join(s for s in SPLITS if s in given)} and re-split 80/10/10"
    else:
        train = list(given["train"])
        rng.shuffle(train)
        n_take = max(1, round(len(given["train"]) * SPLIT_FRACTIONS["test"]))
        out, taken = {}, []
        for s in ("validation", "test"):
            if s in given:
                out[s] = given[s]
            else:
                out[s], train = train[:n_take], train[n_take:]
                taken.append(s)
        out["train"] = train
        info["strategy"] = f"{' and '.join(taken)} taken from train (10 % each)"
    info["sizes"] = {s: len(out[s]) for s in SPLITS}
    if info["strategy"] != "provided":
        logger.warning("Splits: %s (seed %d): %s", info["strategy"], seed, info["sizes"])
    return out, info


def _label_sort_key(label: str) -> tuple:
    # "O" first, then by entity type with B- before I- (readable id2label for NER; plain sort otherwise)
    if label == "O":
        return (0, "", "")
    if len(label) > 2 and label[1] == "-" and label[0] in "BIES":
        return (1, label[2:], label[0])
    return (1, label, "")


def build_label_list(splits: dict[str, list[dict]], task_type: str) -> tuple[list[str], dict[str, dict[str, int]]]:
    """The labels of the train split (the model's output classes), and the labels seen only in
    validation/test, reported: ``(labels, unseen)`` with ``unseen[split][label] = count``.

    An unseen label is not made an output class (the model could never learn it, yet could predict it):
    its examples keep their gold label, so every prediction on them counts as an error.
    """

    def counts(examples):
        if task_type in TOKEN_TASKS:
            return Counter(l for ex in examples for l in ex["labels"])
        return Counter(ex["label"] for ex in examples)

    labels = sorted(counts(splits["train"]), key=_label_sort_key)
    known = set(labels)
    unseen: dict[str, dict[str, int]] = {}
    for split in ("validation", "test"):
        extra = {k: v for k, v in counts(splits.get(split, [])).items() if k not in known}
        if extra:
            unseen[split] = dict(sorted(extra.items()))
            logger.warning(
                "Labels in %s but not in train (the model cannot learn them; they count as errors): %s",
                split,
                unseen[split],
            )
    return labels, unseen
