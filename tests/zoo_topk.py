"""A zoo of top-k (sparse) teacher losses, correct and buggy, for ``check_topk_loss`` (``--kind topk``).

Each member is written the way the code it imitates is written, by hand (nothing is copied): arcee-ai/
DistillKit's ``sparse_kl_div`` (``distillkit/lossfuncs/kl.py``, ``common.py``: the student's full
log-softmax gathered at the stored ids, the teacher renormalised — ``MissingProbabilityHandling.ZERO`` — or
with a tail bucket — ``SYMMETRIC_UNIFORM``, whose ``log_missing_prob`` clamps the log-mass at −1e-6 and
drops the tail term at or below 1e-6; the sum times T² over the number of kept tokens), SDPO's
``renorm_topk_log_probs`` / ``add_tail`` (lasgroup/SDPO, ``verl/trainer/ppo/core_algos.py``; its tail
clamps at −1e-7), NVIDIA Megatron-LM's cached-logits ghost token, verl's GKD recipe ("RKL on renormalized
top-k", ``recipe/gkd/megatron/megatron_distill_losses.py``) — and then, for the buggy ones, with one
mistake. Each asserts the verdict kdcore.verify must reach (``expected``: the codes; empty = correct) and, for
correct ones, phrases the report's convention must contain.

The two clamped tails are real: DistillKit's and SDPO's tails differ from the exact loss where a confident
teacher leaves less than ε outside its top k, and the check says so (``topk-tail-clamped``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TopKMember:
    name: str
    framework: str
    fn: Callable
    expected: frozenset[str]
    conventions: tuple[str, ...] = ()
    options: tuple[tuple[str, object], ...] = ()

    def __str__(self) -> str:  # pytest ids
        return self.name


def _member(name, framework, fn, expected=(), conventions=(), **options) -> TopKMember:
    return TopKMember(name, framework, fn, frozenset(expected), tuple(conventions), tuple(options.items()))


def torch_members() -> list[TopKMember]:
    """The PyTorch members. Imports torch."""
    import torch
    import torch.nn.functional as F

    members: list[TopKMember] = []

    def add(name, fn, expected=(), conventions=(), **options):
        members.append(_member(name, "torch", fn, expected, conventions, **options))

    # --- DistillKit: sparse_kl_div with MissingProbabilityHandling.ZERO, then KLDLoss's scaling --------------
    def distillkit_target_logprobs(values, temperature):
        # log-probabilities tempered and renormalised over the k stored ids (α = generation T / distillation T)
        alpha_values = values / temperature
        return alpha_values - torch.logsumexp(alpha_values, dim=-1, keepdim=True)

    def distillkit_kl(logits, target_ids, target_values, mask, temperature=1.0):
        student_lse = torch.logsumexp(logits / temperature, dim=-1, keepdim=True)
        sparse_student_logprobs = (logits / temperature).gather(-1, target_ids) - student_lse
        with torch.no_grad():
            sparse_target_logprobs = distillkit_target_logprobs(target_values, temperature)
        teacher_sparse_probs = sparse_target_logprobs.exp()
        inner_sum = torch.sum(
            teacher_sparse_probs * (sparse_target_logprobs - sparse_student_logprobs), dim=-1
        )
        inner_sum = inner_sum * mask
        return torch.sum(inner_sum) * temperature**2 / mask.float().sum()

    add("distillkit_sparse_kl", distillkit_kl, (), ("dense_student", "multiplied by T²", "kept positions"))
    add("distillkit_claimed_dense", distillkit_kl, (), ("dense_student",), convention="dense_student")

    # --- DistillKit: SYMMETRIC_UNIFORM at T = 1: a tail bucket, its log-mass clamped at −ε -----------------
    def log1mexp(x):
        return torch.where(x > -1, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))

    def log_missing_prob(sparse_logprobs, eps=1e-6):
        return log1mexp(torch.logsumexp(sparse_logprobs, dim=-1).clamp(max=-eps))

    def distillkit_symmetric_uniform(logits, target_ids, target_values, mask, eps=1e-6):
        sparse_student = logits.gather(-1, target_ids) - torch.logsumexp(logits, dim=-1, keepdim=True)
        inner_sum = torch.sum(target_values.exp() * (target_values - sparse_student), dim=-1)
        log_ratio = log_missing_prob(target_values, eps) - log_missing_prob(sparse_student, eps)
        teacher_missing = log_missing_prob(target_values, eps).exp()
        missing_kl = torch.where(
            teacher_missing > eps, teacher_missing * log_ratio, torch.zeros_like(log_ratio)
        )
        return torch.sum((inner_sum + missing_kl) * mask) / mask.float().sum()

    add(
        "distillkit_symmetric_uniform", distillkit_symmetric_uniform, {"topk-tail-clamped"}, convention="tail"
    )

    # --- SDPO: renorm_topk_log_probs on both sides, and add_tail (clamped at −1e-7) -------------------------
    def renorm_topk_log_probs(logp):
        return logp - torch.logsumexp(logp, dim=-1, keepdim=True)

    def add_tail(log_probs):
        log_s = torch.clamp(torch.logsumexp(log_probs, dim=-1, keepdim=True), max=-1e-7)
        return torch.cat([log_probs, torch.log(-torch.expm1(log_s))], dim=-1)

    def sdpo_topk_kl(
        student_logits, teacher_topk_logprobs, teacher_topk_indices, loss_mask, add_tail_bucket=False
    ):
        student_logp = F.log_softmax(student_logits, dim=-1).gather(-1, teacher_topk_indices)
        teacher_logp = teacher_topk_logprobs
        if add_tail_bucket:
            student_logp, teacher_logp = add_tail(student_logp), add_tail(teacher_logp)
        else:
            student_logp, teacher_logp = (
                renorm_topk_log_probs(student_logp),
                renorm_topk_log_probs(teacher_logp),
            )
        per_token = (teacher_logp.exp() * (teacher_logp - student_logp)).sum(-1)
        return (per_token * loss_mask).sum() / loss_mask.sum().clamp_min(1)

    add("sdpo_renormalized", sdpo_topk_kl, (), ("renormalized", "forward", "no T²", "kept positions"))
    add("sdpo_add_tail", sdpo_topk_kl, {"topk-tail-clamped"}, args={"add_tail_bucket": True})

    # --- Megatron-LM style: cached top-k log-probs plus a ghost token for the rest, exactly ----------------
    # (the ghost token of Megatron-LM's cached_logits_loss, without its ε: an empty tail — the top k hold all
    # the mass up to rounding — contributes nothing, and nothing NaN reaches the gradient)
    def teacher_rest(values):
        rest_mass = -torch.expm1(torch.logsumexp(values, dim=-1).clamp(max=0))
        empty = rest_mass <= 64 * values.shape[-1] * torch.finfo(values.dtype).eps
        return torch.log(torch.where(empty, torch.ones_like(rest_mass), rest_mass)), empty

    def student_rest(log_probs, ids, empty):
        rest = log_probs.scatter(-1, ids, float("-inf"))
        return torch.logsumexp(torch.where(empty[..., None], torch.zeros_like(rest), rest), dim=-1)

    def ghost_token_kl(logits, teacher_topk_logps, teacher_topk_ids, loss_mask):
        log_probs = torch.log_softmax(logits, dim=-1)
        t_rest, empty = teacher_rest(teacher_topk_logps)
        s_rest = student_rest(log_probs, teacher_topk_ids, empty)
        student_topk = torch.gather(log_probs, -1, teacher_topk_ids)
        per_token = F.kl_div(student_topk, teacher_topk_logps, reduction="none", log_target=True).sum(-1)
        ghost = torch.where(empty, torch.zeros_like(t_rest), t_rest.exp() * (t_rest - s_rest))
        return ((per_token + ghost) * loss_mask).sum() / loss_mask.sum()

    add("megatron_ghost_token", ghost_token_kl, (), ("tail:", "forward"), convention="tail")

    # --- verl GKD recipe: reverse KL on the renormalised top k --------------------------------------------
    def verl_rkl_topk(logits, teacher_topk_logps, teacher_topk_indices, attention_mask, temperature=1.0):
        student = F.log_softmax(logits / temperature, dim=-1).gather(-1, teacher_topk_indices)
        student_hat = student - torch.logsumexp(student, dim=-1, keepdim=True)
        teacher_hat = F.log_softmax(teacher_topk_logps / temperature, dim=-1)
        rkl = (student_hat.exp() * (student_hat - teacher_hat)).sum(-1)
        return (rkl * attention_mask).sum() / attention_mask.sum()

    add("verl_rkl_renormalized", verl_rkl_topk, (), ("renormalized", "reverse KL", "no T²"))

    # --- buggy ------------------------------------------------------------------------------------------------
    def probs_not_renormalized(logits, target_ids, target_values, mask, temperature=1.0):
        log_p = F.log_softmax(logits / temperature, dim=-1).gather(-1, target_ids)
        teacher_probs = torch.exp(target_values / temperature)  # the full softmax's probabilities: mass < 1
        per_token = (teacher_probs * (target_values / temperature - log_p)).sum(-1)
        return temperature**2 * (per_token * mask).sum() / mask.sum()

    add("topk_not_renormalized", probs_not_renormalized, {"topk-not-renormalized"})

    def dense_claimed_renormalized(logits, target_ids, target_values, mask, temperature=1.0):
        """Dense student (DistillKit's convention), it says; the log-softmax is taken after the gather."""
        log_p = F.log_softmax(logits.gather(-1, target_ids) / temperature, dim=-1)
        log_q = F.log_softmax(target_values / temperature, dim=-1)
        per_token = (log_q.exp() * (log_q - log_p)).sum(-1)
        return temperature**2 * (per_token * mask).sum() / mask.sum()

    add("dense_claimed_but_renormalized", dense_claimed_renormalized, {"topk-student-renormalized"},
        convention="dense_student")  # fmt: skip
    add("renormalized_unclaimed", dense_claimed_renormalized, (), ("renormalized", "multiplied by T²"))

    def indices_sorted(logits, target_ids, target_values, mask, temperature=1.0):
        sorted_ids, _ = torch.sort(target_ids, dim=-1)  # for a coalesced gather; the values are not reordered
        log_p = F.log_softmax(logits / temperature, dim=-1).gather(-1, sorted_ids)
        log_q = F.log_softmax(target_values / temperature, dim=-1)
        per_token = (log_q.exp() * (log_q - log_p)).sum(-1)
        return (per_token * mask).sum() / mask.sum()

    add("indices_sorted_values_not", indices_sorted, {"topk-indices-misaligned"})

    def tail_tempered_as_one_class(logits, target_ids, target_values, mask, temperature=1.0):
        """DistillKit's SYMMETRIC_UNIFORM at T ≠ 1 (without its ε): the tail tempered as if it were one class."""
        alpha = 1.0 / temperature
        t_rest, empty = teacher_rest(target_values)
        log_z = torch.logsumexp(torch.cat([alpha * target_values, alpha * t_rest[..., None]], dim=-1), dim=-1)
        log_z = torch.where(empty, torch.logsumexp(alpha * target_values, dim=-1), log_z)
        teacher_k, teacher_tail = alpha * target_values - log_z[..., None], alpha * t_rest - log_z
        log_p = F.log_softmax(logits / temperature, dim=-1)
        student_k, s_rest = log_p.gather(-1, target_ids), student_rest(log_p, target_ids, empty)
        per_token = (teacher_k.exp() * (teacher_k - student_k)).sum(-1)
        tail = torch.where(empty, torch.zeros_like(s_rest), teacher_tail.exp() * (teacher_tail - s_rest))
        return ((per_token + tail) * mask).sum() / mask.sum()

    add("tail_tempered_as_one_class", tail_tempered_as_one_class, {"topk-tail-temperature"})

    def teacher_untempered(logits, target_ids, target_values, mask, temperature=1.0):
        log_p = F.log_softmax(logits / temperature, dim=-1).gather(-1, target_ids)
        log_q = F.log_softmax(target_values, dim=-1)  # stored at T = 1 and used as they are
        per_token = (log_q.exp() * (log_q - log_p)).sum(-1)
        return temperature**2 * (per_token * mask).sum() / mask.sum()

    add("topk_teacher_untempered", teacher_untempered, {"temperature-on-one-side"})

    def mean_over_all_positions(logits, target_ids, target_values, mask):
        log_p = F.log_softmax(logits, dim=-1).gather(-1, target_ids)
        log_q = F.log_softmax(target_values, dim=-1)
        per_token = (log_q.exp() * (log_q - log_p)).sum(-1) * mask
        return per_token.mean()  # divides by every position, padding included

    add("topk_mean_over_all_positions", mean_over_all_positions, {"mean-over-all-positions"})

    def kl_div_mean(logits, target_ids, target_values, mask):
        keep = mask.bool()
        log_p = F.log_softmax(logits, dim=-1).gather(-1, target_ids)[keep]
        log_q = F.log_softmax(target_values, dim=-1)[keep]
        return F.kl_div(log_p, log_q, reduction="mean", log_target=True)  # divides by tokens × k

    add("topk_kl_div_mean", kl_div_mean, {"mean-over-classes"})

    def log_of_softmax(logits, target_ids, target_values, mask):
        log_p = F.log_softmax(logits, dim=-1).gather(-1, target_ids)
        q = torch.softmax(target_values, dim=-1)
        per_token = (q * (torch.log(q) - log_p)).sum(-1)  # log 0 where a stored class has probability 0
        return (per_token * mask).sum() / mask.sum()

    add("topk_log_of_softmax", log_of_softmax, {"log-softmax-masked-vocabulary"})
    return members


def numpy_members() -> list[TopKMember]:
    """NumPy members (plain ``make test``): gradients by finite differences."""

    def log_softmax(x, axis=-1):
        top = np.max(x, axis=axis, keepdims=True)
        return x - top - np.log(np.sum(np.exp(x - top), axis=axis, keepdims=True))

    def renormalized(student_logits, teacher_values, teacher_indices, mask, T=1.0):
        z_k = np.take_along_axis(student_logits / T, teacher_indices, axis=-1)
        log_p_hat, log_q_hat = log_softmax(z_k), log_softmax(teacher_values / T)
        per_token = np.sum(np.exp(log_q_hat) * (log_q_hat - log_p_hat), axis=-1)
        return np.sum(np.where(mask, per_token, 0.0)) / np.sum(mask)

    def not_renormalized(student_logits, teacher_values, teacher_indices, mask, T=1.0):
        log_p = np.take_along_axis(log_softmax(student_logits / T), teacher_indices, axis=-1)
        q = np.exp(teacher_values / T)
        per_token = np.sum(q * (teacher_values / T - log_p), axis=-1)
        return np.sum(np.where(mask, per_token, 0.0)) / np.sum(mask)

    def wrong_axis(student_logits, teacher_values, teacher_indices, mask, T=1.0):
        # The values reversed against their ids: np.sort(...) ascending on the values, ids left descending.
        log_p = np.take_along_axis(log_softmax(student_logits / T), teacher_indices, axis=-1)
        log_q = log_softmax(np.sort(teacher_values, axis=-1) / T)
        per_token = np.sum(np.exp(log_q) * (log_q - log_p), axis=-1)
        return np.sum(np.where(mask, per_token, 0.0)) / np.sum(mask)

    return [
        _member("np_renormalized", "numpy", renormalized, (), ("renormalized", "no T²")),
        _member("np_not_renormalized", "numpy", not_renormalized, {"topk-not-renormalized"}),
        _member("np_values_reversed", "numpy", wrong_axis, {"topk-indices-misaligned"}),
    ]
