"""The layer-to-layer and attention-relation losses against literal transcriptions of their papers' formulas.

The references loop over sentences, heads and tokens with the unpadded lengths and use nn.MSELoss,
nn.CosineEmbeddingLoss and nn.KLDivLoss, sharing no code with hf_eliquare.losses.
"""

import math

import pytest
import torch
from torch import nn

from hf_eliquare.losses import attention_kl_loss, hidden_state_loss, minilm_relation_loss, relation_kl_loss

LENGTHS = [7, 4, 6]


def padded(width, seed, scale=1.0):
    """``(B, L, width)`` float64 with junk (large values) at the padding positions, and the attention mask."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(LENGTHS), max(LENGTHS), width, generator=g, dtype=torch.float64) * scale
    mask = torch.zeros(len(LENGTHS), max(LENGTHS), dtype=torch.long)
    for i, n in enumerate(LENGTHS):
        mask[i, :n] = 1
        x[i, n:] = 50.0  # must not matter
    return x, mask


def reference_relation_kl(s_a, s_b, t_a, t_b, lengths, heads):
    """Σ over sentences, heads, query tokens of KL(teacher row ‖ student row) / (heads · tokens), literally."""
    kl = nn.KLDivLoss(reduction="sum")
    total = 0.0
    for i, n in enumerate(lengths):
        for h in range(heads):
            ds, dt = s_a.shape[-1] // heads, t_a.shape[-1] // heads
            sa, sb = s_a[i, :n, h * ds : (h + 1) * ds], s_b[i, :n, h * ds : (h + 1) * ds]
            ta, tb = t_a[i, :n, h * dt : (h + 1) * dt], t_b[i, :n, h * dt : (h + 1) * dt]
            student = torch.softmax(sa @ sb.T / math.sqrt(ds), dim=-1)
            teacher = torch.softmax(ta @ tb.T / math.sqrt(dt), dim=-1)
            total = total + kl(torch.log(student), teacher)
    return total / (heads * sum(lengths))


@pytest.mark.parametrize("kind", ["mse", "cosine"])
def test_hidden_state_loss_matches_mse_and_cosine_embedding_loss(kind):
    s, mask = padded(12, 0)
    t, _ = padded(12, 1)
    rows = mask.bool()
    ours = hidden_state_loss(s[rows], t[rows], kind)
    if kind == "mse":
        ref = nn.MSELoss()(s[rows], t[rows])  # TinyBERT's hidden-state loss
    else:
        ref = nn.CosineEmbeddingLoss()(s[rows], t[rows], torch.ones(rows.sum()))
    assert abs(ours.item() - ref.item()) <= 1e-5
    # a larger (global) normaliser divides the same sum
    assert torch.allclose(hidden_state_loss(s[rows], t[rows], kind, num_items=34), ours * rows.sum() / 34)


@pytest.mark.parametrize("heads, ws, wt", [(2, 8, 8), (4, 8, 16), (1, 6, 12)])
def test_relation_kl_matches_literal_reference(heads, ws, wt):
    s_a, mask = padded(ws, 2)
    s_b, _ = padded(ws, 3)
    t_a, _ = padded(wt, 4, scale=2.0)
    t_b, _ = padded(wt, 5, scale=2.0)
    ours = relation_kl_loss(s_a, s_b, t_a, t_b, mask, heads)
    ref = reference_relation_kl(s_a, s_b, t_a, t_b, LENGTHS, heads)
    assert abs(ours.item() - ref.item()) <= 1e-5
    assert torch.isfinite(ours)
    assert torch.allclose(relation_kl_loss(s_a, s_b, t_a, t_b, mask, heads, num_items=40), ours * 17 / 40)


def test_attention_kl_matches_literal_reference_and_is_zero_for_equal_maps():
    q, mask = padded(8, 6)
    k, _ = padded(8, 7)
    tq, _ = padded(8, 8)
    tk, _ = padded(8, 9)
    ours = attention_kl_loss(q, k, tq, tk, mask, num_heads=2)
    assert abs(ours.item() - reference_relation_kl(q, k, tq, tk, LENGTHS, 2).item()) <= 1e-5
    assert attention_kl_loss(q, k, q, k, mask, num_heads=2).abs().item() <= 1e-12


def test_minilm_relations_match_literal_reference_across_widths():
    """Student width 8 with 2 heads, teacher width 16 with 4: MiniLMv2 needs only the relation heads to divide."""
    sq, mask = padded(8, 10)
    sk, sv = padded(8, 11)[0], padded(8, 12)[0]
    tq, tk, tv = (padded(16, seed, scale=1.5)[0] for seed in (13, 14, 15))
    for relation_heads in (1, 2, 4):
        ours = minilm_relation_loss((sq, sk, sv), (tq, tk, tv), mask, relation_heads)
        ref = sum(
            reference_relation_kl(s, s, t, t, LENGTHS, relation_heads) for s, t in ((sq, tq), (sk, tk), (sv, tv))
        )
        assert abs(ours.item() - ref.item()) <= 1e-5


def test_relation_gradients_reach_the_student_only_and_are_finite():
    s, mask = padded(8, 16)
    s.requires_grad_(True)
    t, _ = padded(16, 17)
    t.requires_grad_(True)
    loss = minilm_relation_loss((s, s, s), (t, t, t), mask, 4)
    loss.backward()
    assert torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0
    assert t.grad is None  # the teacher side is computed without gradients
    # padding positions of the student receive no gradient
    assert s.grad[~mask.bool()].abs().max() == 0
