r"""The catalogue of causes: every way :mod:`kdcore.verify` can say a distillation loss is wrong.

Each :class:`Cause` is a code (the key), a one-line title and the fix. ``docs/verify.md`` documents each code
with its symptom, its math and its fix; a test checks that every code here has its section there.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CATALOGUE", "Cause", "message"]


@dataclass(frozen=True)
class Cause:
    """A catalogued reason why a loss disagrees with kdcore: what it is and how to fix it."""

    title: str
    fix: str


CATALOGUE: dict[str, Cause] = {
    "missing-T2-scaling": Cause(
        "the soft term is not multiplied by T²",
        "multiply the soft loss by T**2, as Hinton et al. (2015) prescribe: the soft gradient (p − q)/T "
        "shrinks like 1/T², and T² keeps its weight against the hard loss independent of the temperature",
    ),
    "unexpected-T2-scaling": Cause(
        "the soft term is multiplied by T², but the check was asked for t2_scaling=False",
        "drop the T**2 factor, or check with t2_scaling=True (the default, Hinton's prescription)",
    ),
    "mean-over-classes": Cause(
        "the loss averages over classes as well as samples (PyTorch's kl_div reduction='mean')",
        "use reduction='batchmean' (sum over classes, mean over samples); 'mean' divides by B·N",
    ),
    "sum-over-batch": Cause(
        "the loss sums over the samples instead of averaging them",
        "divide by the batch size (kl_div reduction='batchmean', cross_entropy reduction='mean')",
    ),
    "batch-mean-twice": Cause(
        "the loss divides by the batch size twice: it is the reference divided by B",
        "average over the samples once: kl_div(..., reduction='batchmean') is already a mean over samples, "
        "so do not divide it by the batch size again (nor take .mean() of a per-sample mean)",
    ),
    "probabilities-as-log-probabilities": Cause(
        "the student's probabilities are used where its log-probabilities belong",
        "pass log_softmax(student_logits / T) as kl_div's input (not softmax), or use log p in −Σ q·log p",
    ),
    "swapped-kl-direction": Cause(
        "the divergence runs the wrong way: its two distributions are exchanged (KL(student ‖ teacher) "
        "where KL(teacher ‖ student) is meant, or the reverse)",
        "kl_div(input, target) computes KL(target ‖ input): for the forward KL (Hinton, skew KL) the input is "
        "the student's log-probabilities and the target the teacher's; for the reverse KL (MiniLLM, skew "
        "reverse KL) the other way round",
    ),
    "numerically-unstable": Cause(
        "the loss is not finite for large but finite logits, where the true loss is",
        "compute log-probabilities with log_softmax (never log(softmax(·)) or exp(·)/sum(exp(·))), and "
        "zero the terms of masked classes instead of multiplying 0 by log 0",
    ),
    "non-finite": Cause(
        "the loss is not finite even on ordinary logits",
        "look for a log of a negative number or of 0. Two spellings of kl_div do that: log-probabilities as "
        "the target without log_target=True (kl_div(log_softmax(z/T), log_softmax(v/T))), and the arguments "
        "exchanged (kl_div(softmax(v/T), log_softmax(z/T))). kl_div(input, target) wants the student's "
        "log-probabilities as input and the teacher's probabilities (or, with log_target=True, "
        "log-probabilities) as target",
    ),
    "log-softmax-masked-vocabulary": Cause(
        "the loss is NaN or infinite where vocabulary entries are masked (logit −1e9 in both student and "
        "teacher), although masked entries contribute nothing",
        "a masked entry's probability is exactly 0, so log(softmax(·)) is −inf there and 0·(−inf) is NaN: take "
        "log-probabilities from log_softmax, and zero the masked terms with where(mask, 0, term) (or use "
        "kl_div(..., log_target=True) on log-probabilities)",
    ),
    "padding-in-mean": Cause(
        "padding positions are counted: the divergence at positions whose label is -100 (or whose mask is "
        "False) enters the loss",
        "select the kept positions before reducing: keep = labels != -100; loss = per_token[keep].sum() / "
        "keep.sum() (or (per_token * keep).sum() / keep.sum())",
    ),
    "mean-over-all-positions": Cause(
        "the padding is zeroed but the mean divides by every position, padding included: the loss shrinks "
        "with the amount of padding",
        "divide by the number of kept positions, keep.sum(), not by per_token.numel() (.mean() of a masked "
        "tensor divides by all of its elements)",
    ),
    "log-space-mixture": Cause(
        "the mixture is formed in log space: β·log q + (1 − β)·log p is the log of the geometric mixture "
        "q^β·p^(1−β), not of the arithmetic mixture β·q + (1 − β)·p",
        "mix probabilities, not log-probabilities: log M = logsumexp(stack([log q + log β, log p + log(1 − β)]), "
        "0), as trl does",
    ),
    "mixture-weight-swapped": Cause(
        "the mixture weight weighs the other distribution than the definition (or than the convention the "
        "check was told) says",
        "in GKD's JSD_β, M = β·q + (1 − β)·p and the weights are β on KL(q ‖ M), 1 − β on KL(p ‖ M) (β on the "
        "teacher, as trl); DistiLLM's skew α is the share of the distribution the divergence starts from. If "
        "your β deliberately weights the student, check with weight_on='student' (--beta-on student)",
    ),
    "temperature-on-one-side": Cause(
        "the temperature is applied to one side only: the student's or the teacher's logits are not divided "
        "by T",
        "divide both logits by T before the softmax: log_softmax(student_logits / T), log_softmax(teacher_logits / T)",
    ),
    "dkd-target-leak": Cause(
        "the target class leaks into DKD's non-target distribution: NCKD is not the KL of the distributions "
        "over the non-target classes",
        "remove the target class exactly: mask its logit with -inf (or take the renormalised probabilities "
        "of the other classes), in both the teacher's and the student's distribution; subtracting 1000 from a "
        "tempered logit is not enough when |z|/T is of that order",
    ),
    "topk-not-renormalized": Cause(
        "the top-k teacher is not renormalised: the probabilities of its full softmax, e^a, are used over the k "
        "stored classes, whose mass m is below 1 — the rest of the teacher (the tail) is dropped: the loss is "
        "m times the renormalised one plus m·log m, so each token weighs by how much of its teacher was "
        "stored, and the value can be negative",
        "renormalise the stored log-probabilities over the k classes (a - logsumexp(a, -1)), or keep the "
        "missing mass as a tail bucket log(-expm1(logsumexp(a, -1))); then choose the convention on purpose "
        "(kdcore.topk_kl_divergence documents renormalized, dense_student and tail)",
    ),
    "topk-tail-clamped": Cause(
        "the tail bucket is clamped: its mass is computed as log(-expm1(min(logsumexp, -ε))) (or dropped "
        "below ε), which changes the loss wherever the top k hold all but less than ε of the mass — a "
        "confident teacher, the common case in language models",
        "compute the tail as log(-expm1(logsumexp(a, -1))) without a clamp, and give an empty tail (mass 0) "
        "no term: where(tail_mass > 0, tail_mass * (log_tail_teacher - log_tail_student), 0)",
    ),
    "topk-tail-temperature": Cause(
        "the tail bucket is tempered with a mass the top k do not determine: at T ≠ 1 the teacher's tail "
        "Σ_{j∉K} q_j^(1/T)/Z depends on how the rest is spread, which is not stored; the loss uses a guess "
        "(the tail tempered as one class, or left at T = 1 next to a tempered student)",
        "use the tail convention at T = 1 only (store the teacher's log-probabilities at the temperature you "
        "distil at), or a renormalised convention, which is defined at every T",
    ),
    "topk-student-renormalized": Cause(
        "the student's log-softmax is renormalised over the k stored classes although the code claims the "
        "dense student (dense_student): the student is left free outside K",
        "take log_softmax over the whole vocabulary first, then gather it at the teacher's indices: "
        "log_softmax(student_logits / T, -1).gather(-1, indices), not log_softmax(student_logits.gather(-1, "
        "indices) / T, -1)",
    ),
    "topk-convention-mismatch": Cause(
        "the loss computes another top-k convention than the one it was checked for",
        "check it with the convention it implements (--topk-convention, or none to have it reported), or "
        "change how it treats the classes outside the top k (docs/verify.md, 'Top-k teachers')",
    ),
    "topk-indices-misaligned": Cause(
        "the teacher's values meet the student at other classes than the ones they were stored for: values "
        "and indices paired out of order (indices sorted, values not), or gathered along the wrong axis",
        "gather the student with the very indices the values were stored with, along the class axis: "
        "student_log_probs.gather(-1, teacher_indices) (NumPy: take_along_axis(..., axis=-1)); never sort "
        "one of the pair without the other",
    ),
    "temperature-on-hard-loss": Cause(
        "the hard-label cross-entropy is computed on the tempered logits z/T",
        "compute the hard term at T = 1: cross_entropy(student_logits, labels); T softens the teacher only",
    ),
    "alpha-swapped": Cause(
        "the weights are exchanged: α weighs the other term than the one the check expects",
        "by default the check expects α on the hard term and (1 − α) on the soft term "
        "(kdcore.distillation_loss); if your code's documented convention is α on the soft term, check it "
        "with alpha_on='soft' (kdcore check --alpha-on soft); otherwise swap the weights",
    ),
    "gradient-mismatch": Cause(
        "the value is right but the gradient w.r.t. the student logits is not",
        "look for .detach() / stop_gradient / .item() / a NumPy round trip on the student's path, or a "
        "custom backward that disagrees with the forward",
    ),
    "value-mismatch": Cause(
        "the value disagrees with kdcore, and no catalogued cause explains it",
        "compare the failing cases below with kdcore.kl_divergence / kdcore.distillation_loss on the same "
        "inputs; typical causes are a softmax over the wrong axis, a temperature applied twice or not at "
        "all, label smoothing, or a precision loss",
    ),
    "exception": Cause(
        "the loss raised an exception on some inputs",
        "the battery uses shapes (B, N) with B from 1 to 64 and N from 2 to 1000, float32 and float64; "
        "see the message of each failing case",
    ),
    "not-scalar": Cause(
        "the loss did not return a single number",
        "reduce over the samples (mean, 'batchmean') so that the loss is a scalar",
    ),
}


def message(code: str, detail: str = "") -> str:
    """A finding's sentence: what is wrong (with ``detail``), then the fix from the catalogue."""
    cause = CATALOGUE[code]
    return f"{cause.title}{detail}. Fix: {cause.fix}."
