"""The loss functions against a literal transcription of DistilBERT's distiller."""

import pytest
import torch
from reference_distiller import reference_distillation_loss

from hf_eliquare.losses import distillation_loss, fused_head_distillation_loss, kl_div_loss, mlm_loss


def random_batch(seed=0, batch=3, length=7, vocab=50, dim=16):
    g = torch.Generator().manual_seed(seed)
    s_logits = torch.randn(batch, length, vocab, generator=g, dtype=torch.float64)
    t_logits = torch.randn(batch, length, vocab, generator=g, dtype=torch.float64) * 2
    s_hidden = torch.randn(batch, length, dim, generator=g, dtype=torch.float64)
    t_hidden = torch.randn(batch, length, dim, generator=g, dtype=torch.float64)
    attention_mask = torch.ones(batch, length, dtype=torch.long)
    attention_mask[1, 5:] = 0
    attention_mask[2, 3:] = 0
    labels = torch.full((batch, length), -100)
    labels[0, 1] = 4
    labels[0, 4] = 9
    labels[1, 2] = 17
    labels[2, 1] = 33
    return s_logits, t_logits, s_hidden, t_hidden, attention_mask, labels


@pytest.mark.parametrize("restrict", [False, True])
@pytest.mark.parametrize("alphas", [(5.0, 2.0, 1.0), (0.5, 0.0, 3.0), (1.0, 1.0, 0.0)])
def test_distillation_loss_matches_reference(restrict, alphas):
    batch = random_batch(seed=1)
    a_ce, a_mlm, a_cos = alphas
    ours = distillation_loss(
        *batch, alpha_ce=a_ce, alpha_mlm=a_mlm, alpha_cos=a_cos, temperature=2.0, restrict_ce_to_mask=restrict
    )
    ref_loss, ref_ce, ref_mlm, ref_cos = reference_distillation_loss(
        *batch, alpha_ce=a_ce, alpha_mlm=a_mlm, alpha_cos=a_cos, temperature=2.0, restrict_ce_to_mask=restrict
    )
    assert torch.allclose(ours.loss.double(), ref_loss, atol=1e-5, rtol=0)
    assert torch.allclose(ours.loss_ce.double(), ref_ce, atol=1e-5, rtol=0)
    if a_mlm > 0:
        assert torch.allclose(ours.loss_mlm.double(), ref_mlm, atol=1e-5, rtol=0)
    if a_cos > 0:
        assert torch.allclose(ours.loss_cos.double(), ref_cos.double(), atol=1e-5, rtol=0)


def test_temperature_scaling_and_normaliser():
    s_logits, t_logits, *_ = random_batch(seed=2)
    s, t = s_logits[0], t_logits[0]
    for tau in (1.0, 2.0, 4.0):
        expected = (
            torch.nn.KLDivLoss(reduction="batchmean")(torch.log_softmax(s / tau, -1), torch.softmax(t / tau, -1))
            * tau**2
        )
        assert torch.allclose(kl_div_loss(s, t, tau).double(), expected, atol=1e-6)
    # A larger normaliser (the accumulated batch) divides the same sum.
    assert torch.allclose(kl_div_loss(s, t, 2.0, num_items=14), kl_div_loss(s, t, 2.0) * 7 / 14)
    labels = torch.tensor([1, -100, 3, -100, -100, 2, 0])
    assert torch.allclose(mlm_loss(s, labels, num_items=8), mlm_loss(s, labels) * 4 / 8)


@pytest.mark.parametrize("restrict", [False, True])
@pytest.mark.parametrize("chunk_size", [1, 3, 1024])
def test_fused_head_matches_literal_loss_and_gradients(restrict, chunk_size):
    torch.manual_seed(0)
    n, dim, vocab = 11, 8, 40
    hidden = torch.randn(n, dim, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(vocab, dim, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(vocab, dtype=torch.float64, requires_grad=True)
    t_hidden = torch.randn(n, dim, dtype=torch.float64)
    t_weight = torch.randn(vocab, dim, dtype=torch.float64)
    t_bias = torch.randn(vocab, dtype=torch.float64)
    labels = torch.full((n,), -100)
    labels[[0, 3, 4, 9]] = torch.tensor([5, 0, 39, 12])
    ce_rows = labels != -100 if restrict else torch.ones(n, dtype=torch.bool)
    ce_rows = ce_rows.clone()

    loss, loss_ce, loss_mlm = fused_head_distillation_loss(
        hidden, weight, bias, t_hidden, t_weight, t_bias, labels, ce_rows,
        alpha_ce=5.0, alpha_mlm=2.0, temperature=2.0, num_ce=13, num_masked=6, chunk_size=chunk_size,
    )  # fmt: skip
    loss.backward()
    grads = [hidden.grad.clone(), weight.grad.clone(), bias.grad.clone()]
    for p in (hidden, weight, bias):
        p.grad = None

    logits = hidden @ weight.T + bias
    t_logits = t_hidden @ t_weight.T + t_bias
    ref_ce = kl_div_loss(logits[ce_rows], t_logits[ce_rows], 2.0, num_items=13)
    ref_mlm = mlm_loss(logits, labels, num_items=6)
    ref = 5.0 * ref_ce + 2.0 * ref_mlm
    ref.backward()
    assert torch.allclose(loss.double(), ref.double(), atol=1e-10)
    assert torch.allclose(loss_ce.double(), ref_ce.double(), atol=1e-10)
    assert torch.allclose(loss_mlm.double(), ref_mlm.double(), atol=1e-10)
    for ours, theirs in zip(grads, (hidden.grad, weight.grad, bias.grad)):
        assert torch.allclose(ours, theirs, atol=1e-10)


def test_fused_head_without_grad_gives_values_only():
    n, dim, vocab = 5, 4, 9
    hidden, weight, bias = torch.randn(n, dim), torch.randn(vocab, dim), torch.randn(vocab)
    labels = torch.tensor([1, -100, 2, -100, 3])
    with torch.no_grad():
        loss, loss_ce, loss_mlm = fused_head_distillation_loss(
            hidden, weight, bias, hidden, weight, bias, labels, torch.ones(n, dtype=torch.bool),
            alpha_ce=1.0, alpha_mlm=1.0, temperature=1.0,
        )  # fmt: skip
    assert loss_ce.abs() < 1e-6  # identical teacher and student
    assert torch.allclose(loss, loss_mlm, atol=1e-6)
    assert loss_mlm > 0
