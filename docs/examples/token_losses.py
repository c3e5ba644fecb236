"""Two token-level distillation losses with a bug each, for trying ``kdcore check`` (docs/verify.md).

    kdcore check docs/examples/token_losses.py:per_token_kl_padded --framework torch --kind skew-kl
    kdcore check docs/examples/token_losses.py:jsd_geometric --framework torch --kind jsd

Both look like code found in language-model distillation repositories; neither is kdcore's. The first
averages over every position of a (B, S, V) batch, padding included; the second forms the JSD's mixture from
log-probabilities. ``tests/test_verify_families.py`` checks that ``kdcore check`` names each bug.
"""

import torch
import torch.nn.functional as F


def per_token_kl_padded(logits, teacher_logits, labels, lam=0.1):
    """DistiLLM-style skew KL, KL(q ‖ λq + (1 − λ)p) per token; the labels are taken, then forgotten."""
    log_q = F.log_softmax(teacher_logits, dim=-1)
    log_p = F.log_softmax(logits, dim=-1)
    log_m = torch.logsumexp(torch.stack([log_q + torch.log(torch.tensor(lam, dtype=log_q.dtype)),
                                         log_p + torch.log1p(torch.tensor(-lam, dtype=log_q.dtype))]), dim=0)  # fmt: skip
    per_token = (log_q.exp() * (log_q - log_m)).sum(-1)
    return per_token.mean()  # every position, padding (labels == -100) included


def jsd_geometric(student_logits, teacher_logits, labels, beta=0.5, temperature=1.0):
    """GKD's generalised JSD with the mixture formed in log space."""
    log_p = F.log_softmax(student_logits / temperature, dim=-1)
    log_q = F.log_softmax(teacher_logits / temperature, dim=-1)
    log_m = beta * log_q + (1 - beta) * log_p  # the log of q^β p^(1−β), not of β q + (1 − β) p
    jsd = beta * F.kl_div(log_m, log_q, reduction="none", log_target=True)
    jsd = jsd + (1 - beta) * F.kl_div(log_m, log_p, reduction="none", log_target=True)
    keep = labels != -100
    return jsd[keep].sum() / keep.sum()
