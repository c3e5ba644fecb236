r"""Check a distillation loss written in another framework against kdcore, and say what is wrong with it.

An engineer has a knowledge-distillation loss in PyTorch, JAX, TensorFlow or NumPy. :func:`check_soft_loss` and
:func:`check_distillation_loss` run it on a fixed battery of inputs, compare its value and its gradient
w.r.t. the student logits with kdcore's, and return a :class:`Report`: ``ok``, and for a wrong loss a
list of :class:`Finding` objects that name the cause (``missing-T2-scaling``, ``swapped-kl-direction``,
…) with the evidence. ``kdcore check MODULE:FUNCTION`` (:func:`run_check`) does the same from the shell.
The causes, their symptoms, their math and their fixes are documented in ``docs/verify.md``.

The package, one module per concern:

=============================  ===========================================================================
:mod:`.catalogue`              the causes a finding can name, with their fixes
:mod:`.battery`                the seeded inputs every loss runs on
:mod:`.token_battery`          the inputs of the newer kinds: (B, S, V) logits with padding, DKD batches
:mod:`.hypotheses`             the reference and the catalogued mistakes as formulas, and the tolerances
:mod:`.forms`                  the newer losses' per-position divergences, right and wrong, from kdcore
:mod:`.families`               their hypotheses: forms × accepted conventions × scales × reductions
:mod:`.binding`                how the loss is called: arguments by name, classes, partials, methods
:mod:`.running`                calling the loss through an adapter, capturing what it does
:mod:`.diagnosis`              fitting the hypotheses and writing the findings
:mod:`.reports`                :class:`Report` and its text and JSON
:mod:`.checks`                 :func:`check_soft_loss`, :func:`check_distillation_loss`,
                               :func:`check_divergence_loss`, :func:`check_topk_loss`
:mod:`.command`                :func:`run_check`, what ``kdcore check`` runs
:mod:`.adapters`               PyTorch, JAX, TensorFlow, NumPy: arrays in, value and gradient out
=============================  ===========================================================================

The top-k kind has its own three modules: :mod:`.topk_battery` (its inputs), :mod:`.topk_forms` (the
per-position formulas, right and wrong) and :mod:`.topk_family` (their hypotheses and conventions), and
:mod:`.topk_check` holds :func:`check_topk_loss`.

The reference
-------------
With student logits :math:`z`, teacher logits :math:`v`, labels :math:`y`, temperature :math:`T`, weight
:math:`\alpha`, :math:`p = \operatorname{softmax}(z/T)`, :math:`q = \operatorname{softmax}(v/T)` and
:math:`B` samples:

* ``check_soft_loss``: ``fn(student_logits, teacher_logits, T)`` must return
  :math:`\frac{T^2}{B}\sum_b \mathrm{KL}(q_b\,\|\,p_b)` or :math:`\frac{T^2}{B}\sum_b (-\textstyle\sum_i q_{bi}\log p_{bi})`
  — Hinton's prescription, reduced as PyTorch's ``"batchmean"``. Both conventions are accepted (they differ
  by the teacher's entropy, which does not depend on the student, so the gradients agree); the report
  says which one it found.
* ``check_distillation_loss``: ``fn(student_logits, teacher_logits, labels, T, alpha)`` must return
  :func:`kdcore.distillation_loss` — :math:`\alpha\,\mathrm{CE}(y, z) + (1-\alpha)\,T^2\,L_\text{soft}`,
  the hard cross-entropy at temperature 1, mean over samples, the soft term in either convention.

The arguments are matched by parameter name, not position (:mod:`kdcore.verify.binding`):
``fn(student, teacher, labels, alpha=0.1, T=10)`` and ``DistillKL(T).forward(y_s, y_t)`` are checked as they
are. ``t2_scaling=False`` drops the :math:`T^2` from the reference, for code that scales elsewhere;
``alpha_on="soft"`` expects α on the soft term.

* ``check_divergence_loss(fn, kind)``, ``kind`` one of ``"reverse-kl"``, ``"jsd"``, ``"skew-kl"``,
  ``"skew-reverse-kl"``, ``"dkd"``: kdcore's :func:`~kdcore.reverse_kl_divergence`,
  :func:`~kdcore.jensen_shannon_divergence`, :func:`~kdcore.skew_kl_divergence`,
  :func:`~kdcore.skew_reverse_kl_divergence` or :func:`~kdcore.decoupled_kd_loss`, on token-level inputs
  (``(B, S, V)`` logits, ``-100`` padding labels or a mask, masked vocabulary). The conventions real trainers
  choose on purpose (T² or not, β on the teacher or the student, trl's switch to forward/reverse KL at
  β = 0 and 1, a mean per token or per sequence) are accepted and named in ``report.convention``.

* ``check_topk_loss(fn)``: a loss against a teacher stored as its top k, ``(values, indices)``; kdcore's
  :func:`~kdcore.topk_kl_divergence` under the convention found (renormalized, dense_student or tail, forward
  or reverse, T² or not), which the report names. Dropping the tail without renormalising, clamping it,
  tempering it, renormalising a student claimed dense and misaligned indices are findings.

How a cause is named
--------------------
By fitting, not by pattern-matching source code. Every catalogued cause is a *hypothesis* with a
formula — "the loss is :math:`\frac1B\sum_b \mathrm{KL}` without :math:`T^2`", "it is
:math:`T^2\,\mathrm{KL}(p\,\|\,q)`", "it divides by :math:`B N`" — and combinations of them (a loss can
both forget :math:`T^2` and average over classes). kdcore computes each hypothesis's value on every case
of the battery; the report names the hypothesis that matches the loss on *all* cases within the same
tolerance as the reference. When none matches, the finding is ``value-mismatch``: the catalogue explains
failures, it never excuses one. A loss whose value is right (or right under a named hypothesis) but whose
gradient is not gets ``gradient-mismatch``. Non-finite results are classified first: only on large finite
logits (``numerically-unstable``), or even on ordinary ones (``non-finite``).

Examples
--------
A NumPy loss that forgets the :math:`T^2` (NumPy losses may pass their own gradient as ``grad_fn``;
without one, kdcore uses finite differences):

>>> import numpy as np
>>> from kdcore import log_softmax, softmax
>>> from kdcore.verify import check_soft_loss
>>> def kd_loss(student_logits, teacher_logits, T):
...     teacher_probs = softmax(teacher_logits, T)
...     return -np.sum(teacher_probs * log_softmax(student_logits, T)) / len(student_logits)
>>> def kd_loss_grad(student_logits, teacher_logits, T):
...     diff = softmax(student_logits, T) - softmax(teacher_logits, T)
...     return diff / T / len(student_logits)
>>> report = check_soft_loss(kd_loss, framework="numpy", grad_fn=kd_loss_grad)
>>> report.ok
False
>>> [finding.code for finding in report.findings]
['missing-T2-scaling']
"""

from .battery import BATTERY
from .battery import CaseSpec
from .catalogue import CATALOGUE
from .catalogue import Cause
from .checks import KINDS
from .checks import check_distillation_loss
from .checks import check_divergence_loss
from .checks import check_soft_loss
from .topk_check import check_topk_loss
from .command import run_check
from .reports import REPORT_SCHEMA_VERSION
from .reports import CaseResult
from .reports import Finding
from .reports import Report

__all__ = [
    "BATTERY",
    "CATALOGUE",
    "KINDS",
    "REPORT_SCHEMA_VERSION",
    "CaseResult",
    "CaseSpec",
    "Cause",
    "Finding",
    "Report",
    "check_distillation_loss",
    "check_divergence_loss",
    "check_soft_loss",
    "check_topk_loss",
    "run_check",
]
