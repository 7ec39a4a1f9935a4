"""DistilBERT masking statistics over many batches."""

import numpy as np
import torch

from hf_eliquare import DataCollatorForDistillation
from hf_eliquare.masking import mlm_token_probs


class FakeTokenizer:
    pad_token_id = 0
    cls_token_id = 1
    sep_token_id = 2
    mask_token_id = 3
    all_special_ids = [0, 1, 2, 3]


def make_examples(rng, n=16, vocab=200):
    examples = []
    for _ in range(n):
        length = int(rng.integers(5, 40))
        # token 10 is very frequent, tokens 100..199 rare
        body = np.where(rng.random(length) < 0.5, 10, rng.integers(100, vocab, length))
        examples.append({"input_ids": [1, *body.tolist(), 2]})
    return examples


def test_token_probs_smoothing_and_specials():
    counts = np.array([5, 0, 100, 1, 8])
    probs = mlm_token_probs(counts, special_ids=[0], smoothing=0.7)
    assert probs[0] == 0
    assert torch.isclose(probs[1], torch.tensor(1.0))  # count 0 treated as 1
    assert torch.isclose(probs[2], torch.tensor(100.0**-0.7))
    assert probs[3] > probs[4] > probs[2]


def test_masking_statistics():
    rng = np.random.default_rng(0)
    vocab = 200
    counts = np.ones(vocab)
    counts[10] = 10_000  # frequent
    probs = mlm_token_probs(counts, FakeTokenizer.all_special_ids)
    collator = DataCollatorForDistillation(FakeTokenizer(), probs, seed=1)
    chosen = eligible = n_mask = n_kept = n_random = 0
    chosen_frequent = eligible_frequent = chosen_rare = eligible_rare = 0
    for step in range(300):
        collator.set_epoch(step)
        examples = make_examples(rng, vocab=vocab)
        batch = collator(examples)
        original, _ = collator.pad(examples)
        labels, ids, attn = batch["labels"], batch["input_ids"], batch["attention_mask"]
        picked = labels != -100
        special = original <= 3
        assert not (picked & special).any(), "special tokens and padding are never chosen"
        assert torch.equal(labels[picked], original[picked])
        assert torch.equal(ids[~picked], original[~picked]), "unchosen tokens are untouched"
        elig = (~special) & attn.bool()
        chosen += int(picked.sum())
        eligible += int(elig.sum())
        n_mask += int((ids[picked] == 3).sum())
        n_kept += int((ids[picked] == original[picked]).sum())
        n_random += int(((ids[picked] != 3) & (ids[picked] != original[picked])).sum())
        freq = original == 10
        chosen_frequent += int((picked & freq).sum())
        eligible_frequent += int((elig & freq).sum())
        rare = elig & ~freq
        chosen_rare += int((picked & rare).sum())
        eligible_rare += int(rare.sum())
    assert abs(chosen / eligible - 0.15) < 0.005
    assert abs(n_mask / chosen - 0.8) < 0.02
    # "kept" also catches the 1/vocab random draws that hit the original token
    assert abs(n_kept / chosen - 0.1) < 0.015
    assert abs(n_random / chosen - 0.1) < 0.015
    assert chosen_rare / eligible_rare > 3 * chosen_frequent / eligible_frequent


def test_masks_depend_on_epoch_and_contents_only():
    rng = np.random.default_rng(1)
    probs = mlm_token_probs(np.ones(200), FakeTokenizer.all_special_ids)
    examples = make_examples(rng)
    a = DataCollatorForDistillation(FakeTokenizer(), probs, seed=3)
    b = DataCollatorForDistillation(FakeTokenizer(), probs, seed=3)
    torch.manual_seed(123)  # the global RNG plays no part
    first = a(examples)
    torch.manual_seed(999)
    assert torch.equal(first["labels"], b(examples)["labels"])
    a.set_epoch(1)
    assert not torch.equal(first["labels"], a(examples)["labels"])


def test_padding_never_masked_and_pad_to_multiple():
    probs = mlm_token_probs(np.ones(50), FakeTokenizer.all_special_ids)
    collator = DataCollatorForDistillation(FakeTokenizer(), probs, pad_to_multiple_of=8)
    batch = collator([{"input_ids": [1, 5, 6, 2]}, {"input_ids": [1, 7, 8, 9, 10, 11, 12, 13, 14, 2]}])
    assert batch["input_ids"].shape == (2, 16)
    assert (batch["labels"][batch["attention_mask"] == 0] == -100).all()
