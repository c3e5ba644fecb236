r"""Running a user's loss on the battery: fresh inputs per call, warnings captured, exceptions described.

:func:`run_case` calls the loss through an adapter and returns an :class:`Outcome` — the value, the gradient
(autograd, the user's ``grad_fn``, or directional finite differences for NumPy) or the exception — with no
judgement yet: that is :mod:`kdcore.verify.diagnosis`'s job.
"""

from __future__ import annotations

import contextlib
import math
import os
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..gradcheck import DEFAULT_STEP_FACTOR, directional_derivative
from .adapters import Adapter, Evaluation, NotScalarError
from .battery import FINITE_DIFFERENCE_REGIMES, SEED, Case
from .binding import Binding, BindingError
from .hypotheses import FD_DIRECTIONS, FD_NOISE_ULPS, FD_RTOL, Allowances, Hypothesis, eps, prediction

__all__ = ["Outcome", "Recorder", "describe_exception", "run_case", "scalars"]


@dataclass(eq=False)  # compared by identity: its fields are arrays
class Outcome:
    """One case's raw result, before any diagnosis."""

    case: Case
    prediction: Allowances  # a Prediction (soft, distillation) or a FamilyPrediction (the newer kinds)
    evaluation: Evaluation | None = None
    grad_source: str = "none"
    # For finite differences: the unit directions and the measured directional derivatives.
    directions: list[np.ndarray] = field(default_factory=list)
    derivatives: list[float] = field(default_factory=list)
    fd_noise: float = 0.0
    error: str | None = None  # an exception's one-line description
    not_scalar: tuple[int, ...] | None = None

    @property
    def value(self) -> float:
        return math.nan if self.evaluation is None else self.evaluation.value

    @property
    def has_gradient(self) -> bool:
        return (self.evaluation is not None and self.evaluation.grad is not None) or bool(self.derivatives)

    def gradient_finite(self) -> bool:
        if self.evaluation is not None and self.evaluation.grad is not None:
            return bool(np.all(np.isfinite(self.evaluation.grad)))
        return all(math.isfinite(d) for d in self.derivatives)

    def grad_error(self, h: Hypothesis) -> float:
        """The gradient's distance from the hypothesis's, in allowances (≤ 1 passes); NaN if not measured."""
        if self.evaluation is not None and self.evaluation.grad is not None:
            return self.prediction.grad_error(h, self.evaluation.grad)
        if not self.derivatives:
            return math.nan
        expected, _ = self.prediction.grad(h)
        norm = float(np.linalg.norm(expected))
        worst = 0.0
        for direction, measured in zip(self.directions, self.derivatives, strict=True):
            if not math.isfinite(measured):
                return math.inf
            predicted = float(np.sum(expected * direction))
            allowance = FD_RTOL * (abs(predicted) + norm) + self.fd_noise
            worst = max(worst, abs(measured - predicted) / allowance)
        return worst


class Recorder:
    """Collects the warnings a loss emits (PyTorch warns about kl_div's reduction='mean', for instance)."""

    def __init__(self) -> None:
        self.messages: dict[str, None] = {}

    @contextlib.contextmanager
    def capture(self) -> Iterator[None]:
        # The loss's own warnings are data for the report, not errors of ours (and under pytest's
        # filterwarnings = error they would abort the check); floating-point warnings are silenced because a
        # non-finite result is what the report is about.
        with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
            warnings.simplefilter("always")
            yield
        for warning in caught:
            self.messages.setdefault(f"{warning.category.__name__}: {warning.message}", None)


_LIBRARY_DIRECTORIES = (
    str(Path(__file__).resolve().parent),
    str(Path(os.__file__).resolve().parent),
    "site-packages",
)


def describe_exception(error: BaseException) -> str:
    """One line: the exception, and the deepest line of the user's own code it came through."""
    frames = traceback.extract_tb(error.__traceback__)
    # The user's line, not the framework's: the deepest frame outside kdcore, the standard library and
    # installed packages (falling back to the deepest frame of all).
    own = [
        f for f in frames if not any(part in str(Path(f.filename).resolve()) for part in _LIBRARY_DIRECTORIES)
    ]
    frame = (own or frames or [None])[-1]
    where = f" (at {Path(frame.filename).name}:{frame.lineno})" if frame is not None else ""
    text = f"{type(error).__name__}: {error}".splitlines()[0]
    return (text if len(text) <= 200 else text[:197] + "...") + where


def run_case(
    loss: Binding, grad: Binding | None, kind: str, adapter: Adapter, case: Case, recorder: Recorder
) -> Outcome:
    """Run the loss (and its ``grad_fn``, for NumPy) on one case; raise only :class:`BindingError`."""
    outcome = Outcome(case, prediction(case, kind))
    spec = case.spec
    with adapter.precision(case.dtype), recorder.capture():
        try:
            # Fresh framework arrays at every call: a loss that writes into its inputs must not change what
            # the next call (its gradient, a finite-difference probe) sees.
            def arguments(student):
                if kind == "topk":  # the teacher as its top k: log-probabilities and their class ids
                    values = {
                        "student_logits": student,
                        "teacher_values": adapter.constant(case.teacher_values),
                        "teacher_indices": adapter.labels(case.teacher_indices),
                    }
                else:
                    values = {
                        "student_logits": student,
                        "teacher_logits": adapter.constant(case.teacher_logits),
                    }
                values.update(scalars(kind, spec))
                if kind != "soft":
                    values["labels"] = adapter.labels(case.labels)
                if hasattr(case, "keep"):
                    values["mask"] = adapter.constant(case.keep)
                return values

            def loss_of_student(student):
                return _loss_value(loss.call(arguments(student)))

            def grad_of_student(student):
                return grad.call(arguments(student))

            outcome.evaluation = adapter.value_and_grad(
                loss_of_student, case.student_logits, grad_of_student if grad is not None else None
            )
            if adapter.has_autograd:
                outcome.grad_source = "autograd"
            elif grad is not None:
                outcome.grad_source = "grad_fn"
            elif case.dtype == np.float64 and spec.regime in FINITE_DIFFERENCE_REGIMES:
                _finite_differences(outcome, loss_of_student)
        except BindingError:
            raise  # the loss cannot be called as a loss at all: a usage problem, not a finding
        except NotScalarError as error:
            outcome.not_scalar = error.shape
        except Exception as error:  # the user's loss may raise anything; each case reports its own
            outcome.error = describe_exception(error)
            outcome.evaluation = None
    return outcome


def scalars(kind: str, spec: Any) -> dict[str, float]:
    """The numbers of a case the loss may take: T, and α, β or the skew as the kind has them."""
    names = {"soft": ("T",), "distillation": ("T", "alpha"), "jsd": ("T", "beta"), "dkd": ("T", "alpha", "beta"),
             "skew-kl": ("T", "skew"), "skew-reverse-kl": ("T", "skew")}.get(kind, ("T",))  # fmt: skip
    return {name: getattr(spec, name) for name in names}


def _loss_value(value: Any) -> Any:
    """``value``, unless it is plainly not a loss value (a class's call built an object, a factory...)."""
    if callable(value) or isinstance(value, str | dict | type(None)):
        raise BindingError(
            f"calling the target returned {type(value).__name__!r}, not a number: it does not compute a loss "
            "when called (a class or a factory? check a class with its constructor arguments: --init ...)"
        )
    return value


def _finite_differences(outcome: Outcome, loss_of_student: Callable) -> None:
    """Directional derivatives of a NumPy loss along seeded random unit directions (float64 only)."""
    case = outcome.case
    rng = np.random.default_rng([SEED, case.index, 1])
    active = ~case.mask
    # The step: gradcheck's eps^(1/4)·max(1, |x|), with |x| over unmasked classes only (the −1e9 of a mask
    # would make it 1e5), and no larger than T·eps^(1/4), since the loss curves on the scale of z/T.
    size = max(1.0, float(np.max(np.abs(case.student_logits[active]))))
    step = DEFAULT_STEP_FACTOR * min(size, max(case.spec.T, 1e-3) * size)
    scale = abs(outcome.value) + sum(
        map(abs, outcome.prediction.value(outcome.prediction.reference_hypothesis))
    )
    outcome.fd_noise = FD_NOISE_ULPS * 3.0 * eps(np.dtype(np.float64)) * scale / step
    for _ in range(FD_DIRECTIONS):
        direction = np.where(active, rng.standard_normal(case.student_logits.shape), 0.0)
        direction /= np.linalg.norm(direction)
        outcome.directions.append(direction)
        outcome.derivatives.append(
            # reshape: the adapter accepted a result of shape (1,), gradcheck wants a 0-d one
            directional_derivative(
                lambda z: np.reshape(loss_of_student(z), ()), case.student_logits, direction, step=step
            )
        )
    outcome.grad_source = "finite-differences"
