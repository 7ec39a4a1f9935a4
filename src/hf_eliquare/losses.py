"""The distillation objective of DistilBERT / Eliquare as pure functions.

    L = α_ce · L_ce + α_mlm · L_mlm + α_cos · L_cos

* ``L_ce``  — ``KLDivLoss(reduction="batchmean")(log_softmax(s/τ), softmax(t/τ)) · τ²`` over the selected
  positions (all non-padding positions, or only the masked ones with ``restrict_ce_to_mask``);
* ``L_mlm`` — cross-entropy of the student logits against the MLM labels (``-100`` ignored), mean over
  the masked positions;
* ``L_cos`` — ``CosineEmbeddingLoss(target=1)`` = ``1 - cos(h_s, h_t)`` between the last hidden states,
  mean over the non-padding positions.

Every function returns a *sum* over positions divided by a normaliser. By default the normaliser is
the number of positions in the tensors given, which is exactly DistilBERT's per-batch mean. The
trainer passes the number of positions in the whole accumulated (and, across processes, global)
batch instead, so gradient accumulation 2 × 4 gives the same update as a batch of 8.

Two ways to get the vocabulary-sized terms (``L_ce`` and ``L_mlm``):

* :func:`kl_div_loss` / :func:`mlm_loss` take ready-made ``(N, V)`` logits — the literal formulas;
* :func:`fused_head_distillation_loss` takes the ``(N, D)`` hidden states *after* the head's
  transform and the two decoder matrices, and walks over the positions in chunks. It never holds a
  full ``N × V`` logits, softmax or gradient tensor: the gradient of each chunk is computed in the
  forward pass (the same trick as fused linear cross-entropy kernels), so the peak working memory is
  ``O(chunk × V)`` instead of several ``N × V`` copies.

The optional layer-to-layer and attention terms (off by default; :mod:`hf_eliquare.objectives` wires them
into the trainer) are at the end: :func:`hidden_state_loss` (TinyBERT / PKD), :func:`attention_kl_loss`
(MiniLM's KL) and :func:`minilm_relation_loss` (MiniLMv2), all built on :func:`relation_kl_loss`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


@dataclass
class DistillationLossOutput:
    """The weighted total and its (detached, un-weighted) parts, each normalised like the total.

    ``extra``: the optional layer-to-layer / attention terms that are switched on (``loss_hidden``,
    ``loss_attn``, ``loss_rel``), detached and un-weighted; empty for the triple loss.
    """

    loss: torch.Tensor
    loss_ce: torch.Tensor
    loss_mlm: torch.Tensor
    loss_cos: torch.Tensor
    extra: dict[str, torch.Tensor] = field(default_factory=dict)


def _up(x: torch.Tensor) -> torch.Tensor:
    """At least fp32 (bf16/fp16 activations are promoted; fp64 stays fp64)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _normaliser(num_items: torch.Tensor | float | None, fallback: int, like: torch.Tensor) -> torch.Tensor:
    if num_items is None:
        num_items = fallback
    return torch.as_tensor(
        num_items, dtype=like.dtype if like.dtype == torch.float64 else torch.float32, device=like.device
    ).clamp(min=1.0)


def kl_div_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float,
    num_items: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """``KL(softmax(t/τ) ‖ softmax(s/τ)) · τ²`` summed over rows, divided by ``num_items`` (default: rows).

    ``student_logits`` and ``teacher_logits``: ``(N, V)``, the selected positions only.
    """
    log_q = F.log_softmax(_up(student_logits) / temperature, dim=-1)
    log_p = F.log_softmax(_up(teacher_logits) / temperature, dim=-1)
    # F.kl_div(log_q, p) = Σ p (log p − log q), as nn.KLDivLoss; "sum" then our own divisor = "batchmean".
    kl = F.kl_div(log_q, log_p, reduction="sum", log_target=True)
    return kl * temperature**2 / _normaliser(num_items, student_logits.shape[0], kl)


def mlm_loss(
    student_logits: torch.Tensor, labels: torch.Tensor, num_items: torch.Tensor | float | None = None
) -> torch.Tensor:
    """Cross-entropy against ``labels`` (``-100`` ignored), summed and divided by ``num_items``
    (default: the number of labelled positions). ``student_logits``: ``(N, V)``; ``labels``: ``(N,)``."""
    ce = F.cross_entropy(_up(student_logits), labels, ignore_index=-100, reduction="sum")
    return ce / _normaliser(num_items, int((labels != -100).sum()), ce)


def cosine_loss(
    student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, num_items: torch.Tensor | float | None = None
) -> torch.Tensor:
    """``1 − cos(h_s, h_t)`` summed over rows, divided by ``num_items`` (default: rows).

    ``student_hidden``, ``teacher_hidden``: ``(N, D)``. Same as ``CosineEmbeddingLoss`` with target 1.
    """
    cos = F.cosine_similarity(_up(student_hidden), _up(teacher_hidden), dim=-1, eps=1e-8)
    total = (1.0 - cos).sum()
    return total / _normaliser(num_items, student_hidden.shape[0], total)


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    student_hidden: torch.Tensor,
    teacher_hidden: torch.Tensor,
    attention_mask: torch.Tensor,
    labels: torch.Tensor,
    *,
    alpha_ce: float = 5.0,
    alpha_mlm: float = 2.0,
    alpha_cos: float = 1.0,
    temperature: float = 2.0,
    restrict_ce_to_mask: bool = False,
    num_tokens: torch.Tensor | float | None = None,
    num_masked: torch.Tensor | float | None = None,
) -> DistillationLossOutput:
    """The whole objective from full logits: ``(B, L, V)`` logits, ``(B, L, D)`` last hidden states,
    ``(B, L)`` attention mask and labels. ``num_tokens`` / ``num_masked`` override the normalisers
    (non-padding and masked positions; default: those of this batch)."""
    tokens = attention_mask.bool()
    masked = labels != -100
    ce_rows = masked if restrict_ce_to_mask else tokens
    zero = student_hidden.new_zeros((), dtype=torch.float32)
    loss_ce = (
        kl_div_loss(
            student_logits[ce_rows],
            teacher_logits[ce_rows],
            temperature,
            num_masked if restrict_ce_to_mask else num_tokens,
        )
        if alpha_ce > 0
        else zero
    )
    loss_mlm = mlm_loss(student_logits[masked], labels[masked], num_masked) if alpha_mlm > 0 else zero
    loss_cos = cosine_loss(student_hidden[tokens], teacher_hidden[tokens], num_tokens) if alpha_cos > 0 else zero
    loss = alpha_ce * loss_ce + alpha_mlm * loss_mlm + alpha_cos * loss_cos
    return DistillationLossOutput(loss, loss_ce.detach(), loss_mlm.detach(), loss_cos.detach())


#: Rows of teacher logits / softmax temporaries made at a time inside a chunk.
_BLOCK = 128


class _FusedDecoderDistillation(torch.autograd.Function):
    """``w_ce·Σ KL + w_mlm·Σ CE`` from transformed hidden states, chunk by chunk, gradients in forward.

    Returns ``(weighted_sum, kl_sum, ce_sum)``; only the first output is differentiable.

    Per chunk of ``c`` rows only one ``c × V`` buffer lives: the student logits, turned *in place*
    into ``log_softmax(s/τ)`` and then into the gradient w.r.t. the logits. The teacher logits and the
    softmax temporaries are made ``_BLOCK`` rows at a time, and the MLM rows (~15 %) get their own
    small buffer, so the peak is about ``(c + 4·_BLOCK + 2·m) × V`` floats instead of ~7 ``c × V`` copies.
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, teacher_hidden, teacher_weight, teacher_bias, labels, ce_rows,
                w_ce, w_mlm, temperature, chunk_size, needs_grad):  # fmt: skip
        # Autocast would re-cast every op below (and refuse the in-place fp32 updates); precision is
        # handled explicitly instead.
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            n = hidden.shape[0]
            dtype = torch.promote_types(hidden.dtype, torch.float32)  # softmax and sums in ≥ fp32
            kl_total = hidden.new_zeros((), dtype=dtype)
            ce_total = hidden.new_zeros((), dtype=dtype)
            grad_hidden = torch.empty_like(hidden) if needs_grad else None
            grad_weight = torch.zeros(weight.shape, dtype=dtype, device=weight.device) if needs_grad else None
            grad_bias = torch.zeros(weight.shape[0], dtype=dtype, device=weight.device) if needs_grad else None
            weight_up = weight.to(dtype)  # no copy in fp32
            # Logits in the activations' precision (bf16/fp16 under mixed precision: the big matmuls run
            # fast); softmax, sums and gradients in ≥ fp32.
            weight_mm = weight.to(hidden.dtype)
            bias_mm = bias.to(hidden.dtype) if bias is not None else None
            teacher_weight = teacher_weight.to(teacher_hidden.dtype)
            teacher_bias = teacher_bias.to(teacher_hidden.dtype) if teacher_bias is not None else None
            tau = temperature
            for start in range(0, n, chunk_size):
                stop = min(start + chunk_size, n)
                h = hidden[start:stop]
                logits = F.linear(h, weight_mm, bias_mm).to(dtype)  # (c, V): the only chunk-sized buffer
                y = labels[start:stop]
                idx_mlm = (y != -100).nonzero().squeeze(1) if w_mlm != 0.0 else y.new_empty(0)
                idx_ce = ce_rows[start:stop].nonzero().squeeze(1) if w_ce != 0.0 else y.new_empty(0)
                g_mlm = None
                if idx_mlm.numel():
                    # MLM first: it needs the logits at τ = 1, before they are overwritten.
                    yy = y.index_select(0, idx_mlm)
                    log_sm = F.log_softmax(logits.index_select(0, idx_mlm), dim=-1)  # (m, V)
                    ce_total -= log_sm.gather(1, yy[:, None]).sum()
                    if needs_grad:
                        g_mlm = log_sm.exp_()  # softmax − one-hot, times the weight
                        g_mlm[torch.arange(g_mlm.shape[0], device=g_mlm.device), yy] -= 1.0
                        g_mlm.mul_(w_mlm)
                    del log_sm
                all_ce = idx_ce.numel() == logits.shape[0]
                if idx_ce.numel():
                    s = logits if all_ce else logits.index_select(0, idx_ce)  # (n_ce, V), overwritten below
                    t_hidden = teacher_hidden[start:stop]
                    t_hidden = t_hidden if all_ce else t_hidden.index_select(0, idx_ce)
                    kl_chunk = s.new_zeros(())
                    for b in range(0, s.shape[0], _BLOCK):
                        sb = s[b : b + _BLOCK]
                        log_p = F.linear(t_hidden[b : b + _BLOCK], teacher_weight, teacher_bias).to(dtype).div_(tau)
                        log_p -= torch.logsumexp(log_p, dim=-1, keepdim=True)
                        sb.div_(tau)
                        sb -= torch.logsumexp(sb, dim=-1, keepdim=True)  # log q
                        p = log_p.exp()
                        kl_chunk += torch.sub(log_p, sb, out=log_p).mul_(p).sum()  # Σ p (log p − log q)
                        if needs_grad:
                            # d/ds [τ² · KL(p ‖ softmax(s/τ))] = τ · (softmax(s/τ) − p)
                            sb.exp_().sub_(p).mul_(w_ce * tau)
                        del log_p, p
                    kl_total += kl_chunk * tau**2
                if needs_grad:
                    if all_ce:
                        grad = logits  # already holds the KL gradient
                    else:
                        grad = logits.zero_()
                        if idx_ce.numel():
                            grad.index_copy_(0, idx_ce, s)
                    if g_mlm is not None:
                        grad.index_add_(0, idx_mlm, g_mlm)
                    grad_hidden[start:stop] = (grad @ weight_up).to(hidden.dtype)
                    grad_weight.addmm_(grad.T, h.to(dtype))
                    grad_bias += grad.sum(0)
                    del grad
                del logits, g_mlm
        # Kept as attributes, not saved tensors: backward scales them in place and frees them, so no
        # second V × D buffer appears next to the weight's gradient.
        ctx.grads = (grad_hidden, grad_weight, grad_bias)
        ctx.has_bias = bias is not None
        ctx.weight_dtype = weight.dtype
        ctx.mark_non_differentiable(kl_total, ce_total)
        weighted = kl_total * w_ce + ce_total * w_mlm
        return weighted, kl_total, ce_total

    @staticmethod
    def backward(ctx, grad_out, _grad_kl, _grad_ce):
        grads = ctx.grads
        if grads is None or grads[0] is None:
            raise RuntimeError(
                "fused_head_distillation_loss was run without gradients, or is being back-propagated a second "
                "time (retain_graph): its gradients are computed once, in the forward pass."
            )
        ctx.grads = None
        grad_hidden, grad_weight, grad_bias = grads
        gh = grad_hidden.mul_(grad_out.to(grad_hidden.dtype))
        gw = grad_weight.mul_(grad_out).to(ctx.weight_dtype)
        gb = grad_bias.mul_(grad_out).to(ctx.weight_dtype) if ctx.has_bias else None
        return gh, gw, gb, None, None, None, None, None, None, None, None, None, None


def fused_head_distillation_loss(
    student_hidden: torch.Tensor,
    student_weight: torch.Tensor,
    student_bias: torch.Tensor | None,
    teacher_hidden: torch.Tensor,
    teacher_weight: torch.Tensor,
    teacher_bias: torch.Tensor | None,
    labels: torch.Tensor,
    ce_rows: torch.Tensor,
    *,
    alpha_ce: float,
    alpha_mlm: float,
    temperature: float,
    num_ce: torch.Tensor | float | None = None,
    num_masked: torch.Tensor | float | None = None,
    chunk_size: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``α_ce·L_ce + α_mlm·L_mlm`` without materialising ``N × V`` tensors.

    ``student_hidden`` / ``teacher_hidden``: ``(N, D)`` outputs of each MLM head's transform at the
    positions that need logits; ``*_weight``: ``(V, D)`` decoders, ``*_bias``: ``(V,)``;
    ``labels``: ``(N,)`` with ``-100`` where there is no MLM target; ``ce_rows``: ``(N,)`` bool, the
    rows that enter ``L_ce``. Returns ``(weighted_loss, loss_ce, loss_mlm)``, the parts detached.
    """
    n_ce = _normaliser(num_ce, int(ce_rows.sum()), student_hidden)
    n_mlm = _normaliser(num_masked, int((labels != -100).sum()), student_hidden)
    w_ce = alpha_ce / float(n_ce)
    w_mlm = alpha_mlm / float(n_mlm)
    needs_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (student_hidden, student_weight, student_bias)
    )
    weighted, kl_sum, ce_sum = _FusedDecoderDistillation.apply(
        student_hidden, student_weight, student_bias, teacher_hidden, teacher_weight, teacher_bias,
        labels, ce_rows, w_ce, w_mlm, float(temperature), int(chunk_size), needs_grad,
    )  # fmt: skip
    return weighted, kl_sum / n_ce, ce_sum / n_mlm


# ---------------------------------------------------------------------------------------------------------------
# Layer-to-layer and attention-relation terms (narrow students; docs/narrow_students.md).
#
# Each is normalised like L_cos: a sum over the non-padding (query) positions divided by ``num_items``
# (default: the positions in the tensors given), so the trainer can pass the global token count.


def hidden_state_loss(
    student_hidden: torch.Tensor,
    teacher_hidden: torch.Tensor,
    kind: str = "mse",
    num_items: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """Distance between (projected) student and teacher hidden states of one layer pair (TinyBERT, PKD).

    ``student_hidden``: ``(N, D)``, already projected to the teacher's width; ``teacher_hidden``: ``(N, D)``;
    the non-padding positions only. ``kind="mse"``: ``Σ_rows mean_d (h_s − h_t)²`` — with the default
    normaliser exactly ``nn.MSELoss()`` (TinyBERT); ``kind="cosine"``: ``Σ_rows (1 − cos(h_s, h_t))`` (as
    :func:`cosine_loss`). Divided by ``num_items`` (default: rows).
    """
    if kind == "cosine":
        return cosine_loss(student_hidden, teacher_hidden, num_items)
    if kind != "mse":
        raise ValueError(f"kind must be 'mse' or 'cosine', got {kind!r}.")
    diff = _up(student_hidden) - _up(teacher_hidden)
    total = diff.pow(2).mean(dim=-1).sum()
    return total / _normaliser(num_items, student_hidden.shape[0], total)


def _relation_log_probs(left: torch.Tensor, right: torch.Tensor, num_heads: int, key_mask: torch.Tensor):
    """``log_softmax(a_h b_hᵀ / √d)`` per head: ``(B, L, W)`` × 2 → ``(B, heads, L, L)``, padding keys at −∞.

    The ``W`` columns are split into ``num_heads`` consecutive groups of ``d = W / num_heads`` (the way
    BERT splits Q and K into attention heads; MiniLMv2's relation heads are the same split).
    """
    batch, length, width = left.shape
    head_dim = width // num_heads
    a = _up(left).view(batch, length, num_heads, head_dim).transpose(1, 2)  # (B, H, L, d)
    b = _up(right).view(batch, length, num_heads, head_dim).transpose(1, 2)
    scores = a @ b.transpose(-1, -2) / head_dim**0.5  # (B, H, L, L)
    scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
    return F.log_softmax(scores, dim=-1)


def relation_kl_loss(
    student_left: torch.Tensor,
    student_right: torch.Tensor,
    teacher_left: torch.Tensor,
    teacher_right: torch.Tensor,
    attention_mask: torch.Tensor,
    num_heads: int,
    num_items: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """``KL(softmax(t_a t_bᵀ/√d_t) ‖ softmax(s_a s_bᵀ/√d_s))`` per head and query row, mean over heads.

    ``student_*``: ``(B, L, W_s)``, ``teacher_*``: ``(B, L, W_t)``, each split into ``num_heads`` heads
    (``W_s`` and ``W_t`` may differ; each must be divisible by ``num_heads``). Keys at padding positions are
    excluded from the softmax, and only non-padding query rows count. Returns
    ``Σ_{rows, heads} KL / num_heads`` divided by ``num_items`` (default: the non-padding positions).

    With ``(left, right) = (Q, K)`` and the models' head count this is the attention-distribution KL
    (MiniLM; TinyBERT matches the same maps); with ``(Q, Q)``, ``(K, K)``, ``(V, V)`` and any number of
    relation heads, MiniLMv2's self-attention relations.
    """
    key_mask = attention_mask.bool()
    log_q = _relation_log_probs(student_left, student_right, num_heads, key_mask)
    with torch.no_grad():
        log_p = _relation_log_probs(teacher_left, teacher_right, num_heads, key_mask)
    # Σ p (log p − log q) over valid keys; padding keys (p = q = 0) are zeroed explicitly (0 · ∞ would be NaN).
    kl = (log_p.exp() * (log_p - log_q)).masked_fill(~key_mask[:, None, None, :], 0.0).sum(-1)  # (B, H, L)
    total = kl.masked_fill(~key_mask[:, None, :], 0.0).sum() / num_heads
    return total / _normaliser(num_items, int(key_mask.sum()), total)


def attention_kl_loss(
    student_query: torch.Tensor,
    student_key: torch.Tensor,
    teacher_query: torch.Tensor,
    teacher_key: torch.Tensor,
    attention_mask: torch.Tensor,
    num_heads: int,
    num_items: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """Attention-distribution KL of one layer pair with the same number of heads (MiniLM, TinyBERT's maps).

    The attention probabilities are recomputed from the ``(B, L, W)`` query / key projections, so the models
    keep their fused attention kernels. See :func:`relation_kl_loss`.
    """
    return relation_kl_loss(
        student_query, student_key, teacher_query, teacher_key, attention_mask, num_heads, num_items
    )


def minilm_relation_loss(
    student_qkv: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    teacher_qkv: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    attention_mask: torch.Tensor,
    num_relation_heads: int,
    num_items: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """MiniLMv2's self-attention relation loss: the Q–Q, K–K and V–V relation KLs, summed.

    ``student_qkv`` / ``teacher_qkv``: the ``(B, L, W)`` query, key and value projections of one layer each
    (all heads concatenated); both are split into ``num_relation_heads`` relation heads, so widths and head
    counts of teacher and student may differ. See :func:`relation_kl_loss` for the normalisation.
    """
    return sum(
        relation_kl_loss(s, s, t, t, attention_mask, num_relation_heads, num_items)
        for s, t in zip(student_qkv, teacher_qkv)
    )
