"""DistilBERT's MLM masking as a data collator.

Of all eligible tokens in a batch (not special, not padding), ``mlm_probability`` (15%) are chosen
*without replacement* with probability ∝ ``count(token) ** -mlm_smoothing`` (0.7): rare sub-words
are masked more often (XLM's / DistilBERT's ``token_probs``). Each chosen token becomes [MASK]
(80%), stays as it is (10%) or becomes a random token (10%); its label is the original id.

Masks are drawn from a generator seeded by ``(seed, epoch, batch contents)``, so a batch gets the
same mask whichever process, worker or resumed run collates it, and a new mask every epoch.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch


def mlm_token_probs(
    counts: np.ndarray | torch.Tensor, special_ids: Iterable[int], smoothing: float = 0.7
) -> torch.Tensor:
    """``max(count, 1) ** -smoothing`` per token id, 0 for special tokens: ``(V,)`` float32."""
    counts = torch.as_tensor(np.asarray(counts), dtype=torch.float64)
    probs = counts.clamp(min=1.0) ** -smoothing
    for idx in special_ids:
        if idx is not None and 0 <= idx < probs.numel():
            probs[idx] = 0.0
    return probs.to(torch.float32)


@dataclass
class DataCollatorForDistillation:
    """Pads ``input_ids`` and masks them; returns ``input_ids``, ``attention_mask`` and ``labels``.

    Args:
        tokenizer: gives ``pad_token_id``, ``mask_token_id`` and the special ids.
        token_probs: ``(V,)`` selection weights from :func:`mlm_token_probs` (0 = never chosen).
        mlm_probability: share of eligible tokens that get a label.
        mask_replace_prob / random_replace_prob: of the chosen tokens, the shares replaced by [MASK]
            and by a random token; the rest stay unchanged.
        pad_to_multiple_of: pad the length to a multiple (e.g. 8 for tensor cores).
        seed: base seed of the masking generator.
    """

    tokenizer: object
    token_probs: torch.Tensor
    mlm_probability: float = 0.15
    mask_replace_prob: float = 0.8
    random_replace_prob: float = 0.1
    pad_to_multiple_of: int | None = None
    seed: int = 42
    epoch: int = field(default=0)

    def __post_init__(self):
        if not 0.0 < self.mlm_probability <= 1.0:
            raise ValueError(f"mlm_probability must be in (0, 1], got {self.mlm_probability}")
        if (
            self.mask_replace_prob < 0
            or self.random_replace_prob < 0
            or self.mask_replace_prob + self.random_replace_prob > 1
        ):
            raise ValueError("mask_replace_prob and random_replace_prob must be ≥ 0 and sum to at most 1")
        self.token_probs = torch.as_tensor(self.token_probs, dtype=torch.float32)
        if self.tokenizer.mask_token_id is None or self.tokenizer.pad_token_id is None:
            raise ValueError("The tokenizer needs a mask token and a pad token for MLM distillation.")
        self._vocab_size = self.token_probs.numel()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _generator(self, input_ids: torch.Tensor) -> torch.Generator:
        digest = hashlib.blake2b(input_ids.numpy().tobytes(), digest_size=8).digest()
        seed = (int.from_bytes(digest, "little") ^ (self.seed * 1_000_003 + self.epoch * 7919)) % (2**63)
        return torch.Generator().manual_seed(seed)

    def pad(self, examples: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = [len(e["input_ids"]) for e in examples]
        width = max(lengths)
        if self.pad_to_multiple_of:
            width = math.ceil(width / self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = torch.full((len(examples), width), self.tokenizer.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
        for row, (example, length) in enumerate(zip(examples, lengths)):
            input_ids[row, :length] = torch.as_tensor(example["input_ids"], dtype=torch.long)
            attention_mask[row, :length] = 1
        return input_ids, attention_mask

    def mask_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, L)`` ids and mask → masked ids and labels (``-100`` where nothing is predicted)."""
        generator = self._generator(input_ids)
        weights = self.token_probs[input_ids] * attention_mask
        flat = weights.flatten()
        eligible = int((flat > 0).sum())
        labels = torch.full_like(input_ids, -100)
        if eligible == 0:
            return input_ids.clone(), labels
        n_targets = min(eligible, max(1, math.ceil(self.mlm_probability * eligible)))
        chosen = torch.multinomial(flat / flat.sum(), n_targets, replacement=False, generator=generator)
        pred_mask = torch.zeros(flat.numel(), dtype=torch.bool)
        pred_mask[chosen] = True
        pred_mask = pred_mask.view_as(input_ids)

        labels[pred_mask] = input_ids[pred_mask]
        real = input_ids[pred_mask]
        keep_prob = 1.0 - self.mask_replace_prob - self.random_replace_prob
        action = torch.multinomial(
            torch.tensor([self.mask_replace_prob, keep_prob, self.random_replace_prob]),
            real.numel(),
            replacement=True,
            generator=generator,
        )
        random_ids = torch.randint(self._vocab_size, real.shape, generator=generator)
        new = torch.where(action == 0, torch.full_like(real, self.tokenizer.mask_token_id), real)
        new = torch.where(action == 2, random_ids, new)
        masked = input_ids.clone()
        masked[pred_mask] = new
        return masked, labels

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        input_ids, attention_mask = self.pad(examples)
        masked, labels = self.mask_tokens(input_ids, attention_mask)
        return {"input_ids": masked, "attention_mask": attention_mask, "labels": labels}
