r"""Gradient checking: compare analytic derivatives with finite differences, and say how far apart they are.

Every derivative in kdcore is checked with this module, and it is public so that students check theirs with
the same tool. It offers three checks and the two finite-difference estimates they are built on:

* :func:`check_gradient` — a gradient ``grad(x)`` of a scalar function ``fn(x)``, along random directions
  (and every coordinate direction for small ``x``);
* :func:`check_vjp` — a vector-Jacobian product ``vjp(x, c)`` of an array function ``fn(x)``, by the
  inner-product identity :math:`\langle J t, c \rangle = \langle t, J^\top c \rangle`;
* :func:`check_hessian` — a Hessian (full, or one block per sample) by differencing the *analytic*
  gradient, which is the way to check a second derivative once the first is known to be right;
* :func:`numerical_gradient` and :func:`directional_derivative` — the estimates themselves.

Each check returns a :class:`GradcheckReport`: one row per direction with the analytic value, the numeric
value and their relative error, printed as a table (``print(report)``), true when the check passed.

How to read a relative error
----------------------------
The relative error of an analytic value :math:`a` against a numeric one :math:`n` is
:math:`|a - n| / (|a| + |n|)` (see :func:`relative_error`). It is 1 when the signs differ, 1/3 when one is
twice the other, and it does not care about the scale of the function. The rule of thumb of the CS231n
notes, for double precision:

==================  ==================================================================
relative error      what it usually means
==================  ==================================================================
> 1e-2              the gradient is wrong
1e-4 … 1e-2         something is off; be uncomfortable
1e-7 … 1e-4         fine only for functions with kinks (ReLU, max, hinge), else too high
< 1e-7              the gradient is right
==================  ==================================================================

The module is a package, one concern a module:

===================================  =========================================================================
module                               what it holds
===================================  =========================================================================
:mod:`kdcore.gradcheck.report`       :class:`GradcheckRow`, :class:`GradcheckReport`, :func:`relative_error`
:mod:`kdcore.gradcheck.differences`  :func:`numerical_gradient`, :func:`directional_derivative` (Richardson)
:mod:`kdcore.gradcheck.checks`       :func:`check_gradient`, :func:`check_vjp`, :func:`check_hessian`
===================================  =========================================================================

Every public name is importable from ``kdcore.gradcheck`` itself.
"""

# The tuning constants stay readable as kdcore.gradcheck.NAME, as they were before the split.
from .checks import (  # noqa: F401
    COORDINATE_DIRECTIONS_MAX_SIZE,
    DEFAULT_RTOL,
    FLOAT64_ROUNDING_ULPS,
    NOISE_FACTOR,
    NOISE_ULPS,
    check_gradient,
    check_hessian,
    check_vjp,
)
from .differences import DEFAULT_STEP_FACTOR, directional_derivative, numerical_gradient  # noqa: F401
from .report import GradcheckReport, GradcheckRow, relative_error

__all__ = [
    "GradcheckReport",
    "GradcheckRow",
    "check_gradient",
    "check_hessian",
    "check_vjp",
    "directional_derivative",
    "numerical_gradient",
    "relative_error",
]
