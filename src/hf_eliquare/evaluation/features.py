"""Features: words into sub-words with aligned labels, long sentences into windows, predictions merged back.

The first sub-token of a word carries its label and the rest get ``-100`` (or the label, with
``label_all_tokens``). A sentence longer than ``max_seq_length`` is cut into windows at word
boundaries; predictions of the windows are merged back so that every word gets exactly one
prediction. Nothing is truncated silently.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

from ..errors import ConfigurationError

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100


def align_labels(
    word_ids: Sequence[int | None],
    word_label_ids: Sequence[int],
    label_all_tokens: bool = False,
    b_to_i: dict[int, int] | None = None,
) -> list[int]:
    """Per-sub-token labels: the first sub-token of a word gets the word's label, special tokens and the
    other sub-tokens ``-100`` (with ``label_all_tokens`` they get the label, ``B-X`` turned ``I-X`` via
    ``b_to_i``). ``word_ids``: the tokenizer's ``word_ids()`` for one sequence."""
    out, prev = [], None
    for w in word_ids:
        if w is None:
            out.append(IGNORE_INDEX)
        elif w != prev:
            out.append(word_label_ids[w])
        elif label_all_tokens:
            lab = word_label_ids[w]
            out.append((b_to_i or {}).get(lab, lab))
        else:
            out.append(IGNORE_INDEX)
        prev = w
    return out


def first_subtoken_word_index(word_ids: Sequence[int | None], offset: int = 0) -> list[int]:
    """``offset + word`` at the first sub-token of each word, ``-1`` elsewhere (where predictions are read)."""
    out, prev = [], None
    for w in word_ids:
        out.append(offset + w if w is not None and w != prev else -1)
        prev = w
    return out


def window_word_spans(subtokens_per_word: Sequence[int], max_tokens: int) -> list[tuple[int, int]]:
    """Cut a sentence at word boundaries into ``[start, end)`` word spans of at most ``max_tokens``
    sub-tokens each (a single longer word gets a span of its own). Every word is in exactly one span."""
    spans, start, count = [], 0, 0
    for i, n in enumerate(subtokens_per_word):
        if count and count + n > max_tokens:
            spans.append((start, i))
            start, count = i, 0
        count += n
    if len(subtokens_per_word):
        spans.append((start, len(subtokens_per_word)))
    return spans


def tokenize_token_examples(
    examples: list[dict],
    tokenizer,
    label2id: dict[str, int],
    max_seq_length: int,
    label_all_tokens: bool = False,
):
    """Token-classification features, one row per window.

    Columns: ``input_ids``, ``attention_mask`` (+ ``token_type_ids``), ``labels`` (sub-token labels,
    ``-100`` where ignored), ``example_id`` and ``word_index`` (sentence word index at each word's
    first sub-token, ``-1`` elsewhere) — the last two let :func:`merge_window_predictions` rebuild
    one prediction per word. Words the tokenizer drops (e.g. a lone zero-width space) become the
    unknown token so they still get a prediction.
    """
    from datasets import Dataset

    budget = max_seq_length - tokenizer.num_special_tokens_to_add(pair=False)
    if budget < 1:
        raise ConfigurationError(f"--max_seq_length {max_seq_length} leaves no room for words.")
    b_to_i = {label2id[l]: label2id["I" + l[1:]] for l in label2id if l.startswith("B-") and "I" + l[1:] in label2id}
    words_per_example = [list(ex["tokens"]) for ex in examples]
    enc = tokenizer(words_per_example, is_split_into_words=True, add_special_tokens=False)
    windows, n_replaced, n_long_words = [], 0, 0
    for i, words in enumerate(words_per_example):
        per_word = Counter(w for w in enc.word_ids(i) if w is not None)
        empty = [j for j in range(len(words)) if per_word[j] == 0]
        if empty:
            for j in empty:
                words[j] = tokenizer.unk_token
            n_replaced += len(empty)
            per_word.update({j: 1 for j in empty})
        counts = [per_word[j] for j in range(len(words))]
        n_long_words += sum(c > budget for c in counts)
        windows.extend((i, s, e) for s, e in window_word_spans(counts, budget))
    n_split = len(windows) - len(examples)
    if n_split:
        logger.info(
            "%d sentence windows for %d sentences (longer than %d sub-tokens are split at word "
            "boundaries; predictions are merged back per word).",
            len(windows),
            len(examples),
            max_seq_length,
        )
    if n_replaced:
        logger.warning(
            "%d words produce no sub-token with this tokenizer; they are fed as %s.", n_replaced, tokenizer.unk_token
        )
    if n_long_words:
        logger.warning(
            "%d single words exceed %d sub-tokens; their extra sub-tokens are cut (the first, which "
            "carries the prediction, is kept).",
            n_long_words,
            max_seq_length,
        )
    wenc = tokenizer(
        [words_per_example[i][s:e] for i, s, e in windows],
        is_split_into_words=True,
        truncation=True,
        max_length=max_seq_length,
    )
    rows = {k: [] for k in ("input_ids", "attention_mask", "labels", "example_id", "word_index")}
    has_tt = "token_type_ids" in wenc
    if has_tt:
        rows["token_type_ids"] = []
    for j, (i, s, e) in enumerate(windows):
        wids = wenc.word_ids(j)
        # a label the training split does not have is no output class: ignored by the loss, an error in the metrics
        word_labels = [label2id.get(l, IGNORE_INDEX) for l in examples[i]["labels"][s:e]]
        rows["input_ids"].append(wenc["input_ids"][j])
        rows["attention_mask"].append(wenc["attention_mask"][j])
        if has_tt:
            rows["token_type_ids"].append(wenc["token_type_ids"][j])
        rows["labels"].append(align_labels(wids, word_labels, label_all_tokens, b_to_i))
        rows["example_id"].append(i)
        rows["word_index"].append(first_subtoken_word_index(wids, offset=s))
    return Dataset.from_dict(rows)


def merge_window_predictions(
    pred_ids,
    example_ids: Sequence[int],
    word_index: Sequence[Sequence[int]],
    sentence_lengths: Sequence[int],
    id2label: dict[int, str],
) -> list[list[str]]:
    """Per-word predicted labels for each sentence from per-window sub-token predictions.

    ``pred_ids``: ``(n_windows, seq_len)`` label ids (padding may be ``-100``). Raises if a word gets no
    prediction or two — the windows must partition every sentence.
    """
    out: list[list[str | None]] = [[None] * n for n in sentence_lengths]
    for row, (ex, widx) in enumerate(zip(example_ids, word_index)):
        preds = pred_ids[row]
        for pos, w in enumerate(widx):
            if w < 0:
                continue
            if out[ex][w] is not None:
                raise RuntimeError(f"sentence {ex}, word {w} predicted twice")
            out[ex][w] = id2label[int(preds[pos])]
    for ex, sent in enumerate(out):
        if any(p is None for p in sent):
            raise RuntimeError(f"sentence {ex}: {sum(p is None for p in sent)} words without a prediction")
    return out  # type: ignore[return-value]


def tokenize_classification_examples(examples: list[dict], tokenizer, label2id: dict[str, int], max_seq_length: int):
    """Sequence-classification features; texts over ``max_seq_length`` are truncated and counted in the log."""
    from datasets import Dataset

    texts = [ex["text"] for ex in examples]
    lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    n_long = sum(n > max_seq_length for n in lengths)
    if n_long:
        logger.warning(
            "%d of %d texts exceed %d sub-tokens and are truncated (raise --max_seq_length to keep more).",
            n_long,
            len(texts),
            max_seq_length,
        )
    enc = tokenizer(texts, truncation=True, max_length=max_seq_length)
    rows = {k: enc[k] for k in enc.keys()}
    rows["labels"] = [label2id.get(ex["label"], IGNORE_INDEX) for ex in examples]  # unseen: ignored by the loss
    return Dataset.from_dict(rows), n_long
