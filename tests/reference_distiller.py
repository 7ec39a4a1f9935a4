"""A literal, independent transcription of DistilBERT's ``Distiller.step`` loss (MLM branch).

huggingface/transformers-research-projects, distillation/distiller.py: full (B, L, V) logits for
teacher and student, masked_select over the attention mask (or the MLM labels), nn.KLDivLoss
(batchmean) · τ², nn.CrossEntropyLoss over the flattened logits, nn.CosineEmbeddingLoss with
target 1 over the last hidden states at non-padding positions. Used by the tests and benchmarks
as ground truth; it deliberately shares no code with hf_eliquare.losses.
"""

import torch
from torch import nn


def reference_distillation_loss(
    s_logits, t_logits, s_hidden, t_hidden, attention_mask, lm_labels,
    alpha_ce=5.0, alpha_mlm=2.0, alpha_cos=1.0, temperature=2.0, restrict_ce_to_mask=False,
):  # fmt: skip
    ce_loss_fct = nn.KLDivLoss(reduction="batchmean")
    lm_loss_fct = nn.CrossEntropyLoss(ignore_index=-100)
    cosine_loss_fct = nn.CosineEmbeddingLoss(reduction="mean")
    attention_mask = attention_mask.bool()

    if restrict_ce_to_mask:
        mask = (lm_labels > -1).unsqueeze(-1).expand_as(s_logits)
    else:
        mask = attention_mask.unsqueeze(-1).expand_as(s_logits)
    s_logits_slct = torch.masked_select(s_logits, mask).view(-1, s_logits.size(-1))
    t_logits_slct = torch.masked_select(t_logits, mask).view(-1, s_logits.size(-1))
    loss_ce = (
        ce_loss_fct(
            nn.functional.log_softmax(s_logits_slct / temperature, dim=-1),
            nn.functional.softmax(t_logits_slct / temperature, dim=-1),
        )
        * temperature**2
    )
    loss = alpha_ce * loss_ce
    loss_mlm = lm_loss_fct(s_logits.view(-1, s_logits.size(-1)), lm_labels.view(-1))
    loss = loss + alpha_mlm * loss_mlm

    mask = attention_mask.unsqueeze(-1).expand_as(s_hidden)
    dim = s_hidden.size(-1)
    s_hidden_slct = torch.masked_select(s_hidden, mask).view(-1, dim)
    t_hidden_slct = torch.masked_select(t_hidden, mask).view(-1, dim)
    target = s_hidden_slct.new(s_hidden_slct.size(0)).fill_(1)
    loss_cos = cosine_loss_fct(s_hidden_slct, t_hidden_slct, target)
    loss = loss + alpha_cos * loss_cos
    return loss, loss_ce, loss_mlm, loss_cos


def reference_step_loss(student, teacher, input_ids, attention_mask, lm_labels, **kwargs):
    """Forward both models as the distiller does and return its loss terms."""
    s_out = student(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
    with torch.no_grad():
        t_out = teacher(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
    return reference_distillation_loss(
        s_out.logits, t_out.logits, s_out.hidden_states[-1], t_out.hidden_states[-1], attention_mask, lm_labels,
        **kwargs,
    )  # fmt: skip
