r"""Per-position formulas of a top-k teacher loss — the conventions and the catalogued mistakes.

Notation (as :mod:`kdcore.topk`): dense student logits :math:`z`, :math:`p = \operatorname{softmax}(z/T)`;
the teacher stored as log-probabilities :math:`a_K` at its k classes K; :math:`\hat q =
\operatorname{softmax}_K(a/T)`, :math:`\hat p = p_K / P_K` with :math:`P_K = \sum_K p_i`; the tail buckets
:math:`q_t = 1 - \sum_K e^{a_i}` and :math:`p_t = 1 - P_K`.

The three conventions, forward, are :func:`kdcore.topk_kl_divergence` itself (exact). Everything else is
written out here in float64, accurate to a few ulps of the terms' size — what the checker's tolerance needs:

=========================  ===================================================================================
form                       per-position value (forward: KL(teacher ‖ student); *reverse*: KL(student ‖ teacher))
=========================  ===================================================================================
``reference``              the convention: renormalized, dense_student or tail (reverse: renormalized, tail)
``unnormalized``           :math:`\sum_K q_i(\log q_i - \log p_i)` with :math:`q_i = e^{a_i/T}` (mass < 1:
                           the tail dropped), the student dense (dense_student) or renormalised over K
``clamped-ε``              the tail buckets with :math:`\log(1 - \sum)` clamped as ``log(-expm1(min(lse, -ε)))``
                           on both sides (SDPO's ``add_tail``, ε = 1e-7)
``clamped-drop-ε``         as ``clamped-ε``, and the tail term dropped where the teacher's tail is ≤ ε
                           (DistillKit's ``SYMMETRIC_UNIFORM``, ε = 1e-6)
``tail-one-class``         at T ≠ 1: the teacher's tail tempered as if it were one class,
                           :math:`(q_i^{1/T}, q_t^{1/T})/Z` (DistillKit's approximation)
``tail-untempered``        at T ≠ 1: the teacher's buckets at T = 1, the student's at T
``sorted`` / ``reversed``  a convention with the values paired with the wrong classes: the indices sorted
                           (the values not), or the values in the opposite order
``student-T-only``         :math:`\hat q = \operatorname{softmax}_K(a)` untempered, the student at T
``teacher-T-only``         the student untempered, :math:`p = \operatorname{softmax}(z)`
=========================  ===================================================================================

Each form gives, per position, the KL-type value, the teacher's own term (so that the soft cross-entropy
convention is value + entropy, with the same gradient) and a function for the gradient rows w.r.t. z.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..reverse_kl import reverse_kl_divergence, reverse_kl_divergence_grad
from ..softmax import logsumexp
from ..topk import topk_kl_divergence, topk_kl_divergence_grad, topk_soft_cross_entropy

__all__ = ["CLAMPS", "TOPK_FORMS", "TopKForms"]

CLAMPS = (1e-4, 1e-5, 1e-6, 1e-7, 1e-8)  # the ε of clamped tails tried: real code uses 1e-6 and 1e-7
# (form, convention, direction) triples the checker tries; the reference forms first.
TOPK_FORMS: tuple[tuple[str, str, str], ...] = (
    ("reference", "renormalized", "forward"),
    ("reference", "dense_student", "forward"),
    ("reference", "tail", "forward"),
    ("reference", "renormalized", "reverse"),
    ("reference", "tail", "reverse"),
    ("unnormalized", "dense_student", "forward"),
    ("unnormalized", "renormalized", "forward"),
    *((f"clamped-{eps:g}", "tail", "forward") for eps in CLAMPS),
    *((f"clamped-drop-{eps:g}", "tail", "forward") for eps in CLAMPS),
    ("tail-one-class", "tail", "forward"),
    ("tail-untempered", "tail", "forward"),
    *((pairing, convention, "forward") for pairing in ("sorted", "reversed")
      for convention in ("renormalized", "dense_student", "tail")),
    *((side, convention, "forward") for side in ("student-T-only", "teacher-T-only")
      for convention in ("renormalized", "dense_student")),
)  # fmt: skip

Rows = tuple[np.ndarray, np.ndarray, Callable[[], np.ndarray]]  # value (P,), teacher term (P,), grad (P, V)


def _nan_rows(P: int, V: int) -> Rows:
    return np.full(P, np.nan), np.full(P, np.nan), lambda: np.full((P, V), np.nan)


def _xlogy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x·y with 0 where x is 0 (0·log 0 = 0: a class the teacher gives no mass contributes nothing)."""
    return np.where(x > 0, x * np.where(x > 0, y, 0.0), 0.0)


class TopKForms:
    """Every form's per-position value and gradient on one case, in float64, computed when first asked for.

    ``z`` (P, V), ``a`` (P, k) and ``indices`` (P, k): the case flattened to P positions, padding included.
    """

    def __init__(self, z: np.ndarray, a: np.ndarray, indices: np.ndarray, T: float) -> None:
        self.z, self.a, self.indices, self.T = z, a, indices, T
        self.P, self.V = z.shape
        self.k = a.shape[-1]
        self._cache: dict[tuple[str, str, str], Rows] = {}
        self._student: dict[float, dict[str, np.ndarray]] = {}

    def rows(self, form: str, convention: str, direction: str) -> Rows:
        key = (form, convention, direction)
        if key not in self._cache:
            with np.errstate(all="ignore"):
                self._cache[key] = self._compute(form, convention, direction)
        return self._cache[key]

    # --- kdcore's own conventions, on (possibly rearranged) inputs -----------------------------------
    def _kdcore(self, convention: str, z, a, indices, T: float, chain: float = 1.0) -> Rows:
        if self.k == self.V:
            convention = "renormalized"  # k = V: the three coincide (and rounding cannot fake a tail)
        if convention == "tail" and T != 1.0:
            return _nan_rows(self.P, self.V)  # kdcore: the tail is not defined at T ≠ 1
        values = "log_probs" if convention == "tail" else "logits"  # same renormalised loss, no mass check
        options = {"convention": convention, "values": values}
        kl = np.asarray(topk_kl_divergence(z, a, indices, T, "none", **options), dtype=np.float64)
        ce = np.asarray(topk_soft_cross_entropy(z, a, indices, T, "none", **options), dtype=np.float64)

        def grad() -> np.ndarray:
            with np.errstate(all="ignore"):
                rows = topk_kl_divergence_grad(z, a, indices, T, "none", "student", **options)
            return chain * np.asarray(rows, dtype=np.float64)

        return kl, ce - kl, grad

    # --- the student's pieces at a temperature ----------------------------------------------------------
    def _pieces(self, T: float) -> dict[str, np.ndarray]:
        """log p, p, the gathered and renormalised log-probabilities, the tail log-mass and its shares."""
        if T not in self._student:
            w = self.z / T
            log_p = w - logsumexp(w)[:, None]
            in_k = np.zeros((self.P, self.V), dtype=bool)
            np.put_along_axis(in_k, self.indices, True, axis=-1)
            w_k = np.take_along_axis(w, self.indices, axis=-1)
            log_p_hat = w_k - logsumexp(w_k)[:, None]
            rest = np.where(in_k, -np.inf, w)
            lam = logsumexp(rest) if self.k < self.V else np.full(self.P, -np.inf)
            shares = np.where(in_k, 0.0, np.exp(rest - np.where(np.isfinite(lam), lam, 0.0)[:, None]))
            self._student[T] = {
                "log_p": log_p, "p": np.exp(log_p), "log_p_k": np.take_along_axis(log_p, self.indices, -1),
                "log_p_hat": log_p_hat, "p_hat": self._scatter(np.exp(log_p_hat)),
                "log_p_tail": lam - logsumexp(w), "tail_shares": shares,
            }  # fmt: skip
        return self._student[T]

    def _scatter(self, values: np.ndarray) -> np.ndarray:
        dense = np.zeros((self.P, self.V))
        np.put_along_axis(dense, self.indices, values, axis=-1)
        return dense

    def _teacher_tail(self) -> np.ndarray:
        """log q_t = log(1 − Σ_K e^a), as log(−expm1(lse)); −inf when the top k hold all the mass."""
        if self.k == self.V:
            return np.full(self.P, -np.inf)
        mass = logsumexp(self.a)
        return np.log(-np.expm1(np.minimum(mass, 0.0)))

    # --- the forms -------------------------------------------------------------------------------------
    def _compute(self, form: str, convention: str, direction: str) -> Rows:
        z, a, indices, T = self.z, self.a, self.indices, self.T
        if direction == "reverse":
            return self._reverse(convention)
        if form == "reference":
            return self._kdcore(convention, z, a, indices, T)
        if form == "sorted":
            return self._kdcore(convention, z, a, np.sort(indices, axis=-1), T)
        if form == "reversed":
            return self._kdcore(convention, z, a[:, ::-1], indices, T)
        if form == "student-T-only":  # softmax_K(a·T/T) = softmax_K(a): the teacher untempered
            return self._kdcore(convention, z, a * T, indices, T)
        if form == "teacher-T-only":  # p = softmax(z·T/T) = softmax(z); d/dz of f(z·T) is T·f'(z·T)
            return self._kdcore(convention, z * T, a, indices, T, chain=T)
        if form == "unnormalized":
            return self._unnormalized(convention)
        if form.startswith("clamped"):
            if T != 1.0:
                return _nan_rows(self.P, self.V)
            drop = form.startswith("clamped-drop-")
            eps = float(form.removeprefix("clamped-drop-" if drop else "clamped-"))
            return self._clamped(eps, drop)
        if form == "tail-one-class":
            return self._tail_one_class()
        if form == "tail-untempered":
            s = self._pieces(T)
            return self._buckets(a, self._teacher_tail(), s, s["log_p_tail"])
        raise ValueError(f"unknown top-k form {form!r}")

    def _unnormalized(self, convention: str) -> Rows:
        """q = e^{a/T} over K, not renormalised: Σ q(log q − log p) against the dense or renormalised student."""
        s, T = self._pieces(self.T), self.T
        log_q = self.a / T
        q = np.exp(log_q)
        dense = convention == "dense_student"
        log_p = s["log_p_k"] if dense else s["log_p_hat"]
        value = np.sum(_xlogy(q, log_q - log_p), axis=-1)
        entropy = -np.sum(_xlogy(q, log_q), axis=-1)
        mass = np.sum(q, axis=-1)[:, None]
        # d/dz of −Σ q log p_i = (Σq·p − q)/T (dense), (Σq·p̂ − q)/T over K (renormalised)
        base = s["p"] if dense else s["p_hat"]
        return value, entropy, lambda: (mass * base - self._scatter(q)) / T

    def _buckets(
        self, log_q_k: np.ndarray, log_q_tail: np.ndarray, s: dict, log_p_tail: np.ndarray,
        student_free: np.ndarray | None = None, keep_tail: np.ndarray | None = None,
    ) -> Rows:  # fmt: skip
        r"""k + 1 buckets: Σ_K q(log q − log p) + q_t(log q_t − log p_t), the student's buckets from its
        dense softmax. ``student_free``: rows whose student tail depends on z (not clamped); ``keep_tail``:
        rows whose tail term counts. Gradient: (Σ_K q)·p − q on K, plus q_t·(p − r) with r the student's
        shares of its own tail (r_j = p_j/p_t outside K), divided by T."""
        T = self.T
        q, q_t = np.exp(log_q_k), np.exp(log_q_tail)
        keep_tail = np.ones(self.P, dtype=bool) if keep_tail is None else keep_tail
        q_t = np.where(keep_tail, q_t, 0.0)
        value = np.sum(_xlogy(q, log_q_k - s["log_p_k"]), axis=-1) + _xlogy(q_t, log_q_tail - log_p_tail)
        entropy = -np.sum(_xlogy(q, log_q_k), axis=-1) - _xlogy(q_t, log_q_tail)
        free = np.ones(self.P, dtype=bool) if student_free is None else student_free
        moving_tail = np.where(free, q_t, 0.0)[:, None]

        def grad() -> np.ndarray:
            mass = np.sum(q, axis=-1)[:, None]
            rows = mass * s["p"] - self._scatter(q) + moving_tail * (s["p"] - s["tail_shares"])
            return rows / T

        return value, entropy, grad

    def _clamped(self, eps: float, drop: bool) -> Rows:
        """Both tails as log(−expm1(min(lse, −ε))): at least 1 − e^{−ε} ≈ ε; with ``drop``, the tail term
        counted only where the teacher's (clamped) tail exceeds ε."""
        s = self._pieces(1.0)
        bound = -eps
        teacher_tail = np.log(-np.expm1(np.minimum(logsumexp(self.a), bound)))
        student_mass = logsumexp(s["log_p_k"])  # log P_K
        free = student_mass < bound
        student_tail = np.where(free, s["log_p_tail"], np.log(-np.expm1(np.minimum(student_mass, bound))))
        keep = np.exp(teacher_tail) > eps if drop else None
        return self._buckets(self.a, teacher_tail, s, student_tail, student_free=free, keep_tail=keep)

    def _tail_one_class(self) -> Rows:
        """DistillKit's tempered tail: (q_i^{1/T}, q_t^{1/T}) renormalised, the student's buckets at T."""
        s, alpha = self._pieces(self.T), 1.0 / self.T
        log_tail = self._teacher_tail()
        norm = np.logaddexp(logsumexp(alpha * self.a), alpha * log_tail)
        return self._buckets(alpha * self.a - norm[:, None], alpha * log_tail - norm, s, s["log_p_tail"])

    def _reverse(self, convention: str) -> Rows:
        """KL(student ‖ teacher) over the convention's buckets: the k classes renormalised, or k + 1 buckets."""
        z_k = np.take_along_axis(self.z, self.indices, axis=-1)
        if convention == "renormalized" or self.k == self.V:
            T = self.T
            value = np.asarray(reverse_kl_divergence(z_k, self.a, T, "none"), dtype=np.float64)
            return (
                value,
                np.zeros(self.P),
                lambda: self._scatter(reverse_kl_divergence_grad(z_k, self.a, T, "none", "student")),
            )
        if self.T != 1.0:
            return _nan_rows(self.P, self.V)
        s = self._pieces(1.0)
        lam = s["log_p_tail"] + logsumexp(self.z)  # log Σ_{∉K} e^z: the tail bucket's logit
        student = np.concatenate([z_k, lam[:, None]], axis=-1)
        teacher = np.concatenate([self.a, self._teacher_tail()[:, None]], axis=-1)
        value = np.asarray(reverse_kl_divergence(student, teacher, 1.0, "none"), dtype=np.float64)

        def grad() -> np.ndarray:
            buckets = reverse_kl_divergence_grad(student, teacher, 1.0, "none", "student")
            # ∂λ/∂z_j = e^{z_j − λ} outside K: the tail bucket's derivative spread over its classes
            return self._scatter(buckets[:, :-1]) + buckets[:, -1:] * s["tail_shares"]

        return value, np.zeros(self.P), grad
