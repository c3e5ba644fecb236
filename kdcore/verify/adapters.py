r"""Adapters: run a loss written in PyTorch, JAX, TensorFlow or NumPy on NumPy inputs, and return its value and gradient.

:mod:`kdcore.verify` checks other people's distillation losses. It never needs to know how a framework
stores a tensor or differentiates a function: it builds the inputs as NumPy arrays, asks an adapter to
turn the constant ones (teacher logits, labels) into the framework's arrays, and then calls

.. code-block:: python

    evaluation = adapter.value_and_grad(loss_of_student, student_logits)

where ``loss_of_student`` maps the framework's student array to a scalar. The adapter differentiates it
with the framework's own machinery — ``torch.autograd.grad``, ``jax.vjp``, ``tf.GradientTape`` — because that gradient, not a
hand-derived one, is what the user's optimiser will see. NumPy has no autograd: its adapter returns the
gradient of a user-supplied ``grad_fn`` or none at all (then :mod:`kdcore.verify` falls back to finite
differences, :mod:`kdcore.gradcheck`).

Frameworks are imported lazily, when an adapter is created: kdcore itself needs only NumPy, and
``get_adapter("torch")`` on a machine without PyTorch raises :class:`FrameworkNotInstalledError` with the
``pip`` command that fixes it.

dtypes: every adapter keeps the dtype it is given — a float32 NumPy array becomes a float32 tensor — so a
check in float32 measures the loss as it runs in float32. JAX computes in float32 unless 64-bit mode is on;
its adapter switches it on for float64 inputs only, inside a context manager, and restores the setting.

Examples
--------
>>> import numpy as np
>>> from kdcore.adapters import get_adapter
>>> adapter = get_adapter("numpy")
>>> evaluation = adapter.value_and_grad(
...     lambda z: np.sum(z**2), np.array([[1.0, 2.0]]), grad_of_student=lambda z: 2 * z)
>>> evaluation.value, evaluation.grad
(5.0, array([[2., 4.]]))
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "FRAMEWORKS",
    "Adapter",
    "Evaluation",
    "FrameworkNotInstalledError",
    "JaxAdapter",
    "NotScalarError",
    "NumpyAdapter",
    "TensorflowAdapter",
    "TorchAdapter",
    "get_adapter",
]

FRAMEWORKS = ("torch", "jax", "tensorflow", "numpy")


class FrameworkNotInstalledError(ImportError):
    """The framework an adapter needs cannot be imported; the message says how to install it."""


class NotScalarError(ValueError):
    """The loss returned something other than one number (e.g. one value per sample)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = tuple(shape)
        super().__init__(f"the loss returned an array of shape {self.shape}, not a scalar")


class Evaluation(NamedTuple):
    """What one call of a loss produced, in NumPy terms."""

    value: float  # the loss as a Python float (exact: every float32 or float64 is a Python float)
    grad: np.ndarray | None  # d loss / d student logits, float64, the logits' shape; None if not available
    value_dtype: str  # the dtype the loss returned, e.g. "float32": a float64 input may come back as float32


def _scalar(array: np.ndarray) -> np.ndarray:
    """``array`` if it holds exactly one number; shape (1,) is accepted because ``tensor.sum(0, keepdim=True)`` is common."""
    if array.size != 1 or array.ndim > 1:
        raise NotScalarError(array.shape)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"the loss must return a real number, got dtype {array.dtype}")
    return array.reshape(())


def _import(module: str, package: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise FrameworkNotInstalledError(
            f"the {package!r} framework is not installed (pip install {package}); "
            f"importing {module!r} failed: {error}"
        ) from error


class Adapter:
    """Turns NumPy inputs into one framework's arrays and differentiates a loss w.r.t. the student logits.

    Subclasses set :attr:`name` and :attr:`has_autograd` and implement :meth:`constant`, :meth:`labels` and
    :meth:`value_and_grad`; :meth:`precision` is a context manager entered around every evaluation.
    """

    name: str = ""
    #: True when :meth:`value_and_grad` differentiates by itself (PyTorch, JAX); False for NumPy.
    has_autograd: bool = False

    def constant(self, array: np.ndarray) -> Any:
        """``array`` (teacher logits) as a framework array of the same dtype, not differentiated."""
        raise NotImplementedError

    def labels(self, labels: np.ndarray) -> Any:
        """Integer class labels as the framework's 64-bit integer array (what its cross-entropy wants)."""
        raise NotImplementedError

    @contextlib.contextmanager
    def precision(self, dtype: np.dtype) -> Iterator[None]:
        """A context in which arrays of ``dtype`` keep their precision (only JAX needs to do anything)."""
        yield

    def supports(self, dtype: np.dtype) -> bool:
        """Whether this adapter can run a loss in ``dtype`` on this machine."""
        return True

    def value_and_grad(
        self,
        loss_of_student: Callable[[Any], Any],
        student_logits: np.ndarray,
        grad_of_student: Callable[[Any], Any] | None = None,
    ) -> Evaluation:
        """Evaluate ``loss_of_student`` at ``student_logits`` and differentiate it.

        Parameters
        ----------
        loss_of_student : callable
            Maps the framework's student array to a scalar (0-d, or shape (1,)).
        student_logits : numpy.ndarray, shape (B, N)
            The point, float32 or float64; the framework array handed to ``loss_of_student`` has this dtype.
        grad_of_student : callable, optional
            Only for NumPy: the user's own gradient ``d loss / d student logits``. Autograd adapters ignore it.

        Returns
        -------
        Evaluation
            The value, the gradient (float64, or None when the adapter has none) and the returned dtype.
        """
        raise NotImplementedError


class TorchAdapter(Adapter):
    """PyTorch: CPU tensors, gradients by ``torch.autograd.grad``.

    A loss that does not depend on the student logits at all (every path ``.detach()``-ed) has gradient
    zero, which is what an optimiser would get; it is reported as such rather than as an error.
    """

    name = "torch"
    has_autograd = True

    def __init__(self) -> None:
        self.torch = _import("torch", "torch")

    def constant(self, array: np.ndarray) -> Any:
        # A copy: torch.from_numpy shares memory, and a loss that writes into its input must not alter ours.
        return self.torch.from_numpy(np.array(array, copy=True))

    def labels(self, labels: np.ndarray) -> Any:
        return self.torch.from_numpy(np.asarray(labels, dtype=np.int64).copy())

    def value_and_grad(self, loss_of_student, student_logits, grad_of_student=None) -> Evaluation:
        torch = self.torch
        # enable_grad: the caller may be inside torch.no_grad() (e.g. an evaluation loop in a notebook).
        with torch.enable_grad():
            student = torch.from_numpy(np.array(student_logits, copy=True)).requires_grad_(True)
            output = loss_of_student(student)
            if not isinstance(output, torch.Tensor):
                output = torch.as_tensor(output)
            value = _scalar(output.detach().cpu().numpy())
            grad = None
            if output.requires_grad:
                (grad,) = torch.autograd.grad(output.reshape(()), student, allow_unused=True)
        gradient = np.zeros(student_logits.shape) if grad is None else grad.detach().cpu().numpy()
        return Evaluation(float(value), np.asarray(gradient, dtype=np.float64), str(value.dtype))


class JaxAdapter(Adapter):
    """JAX: ``jax.numpy`` arrays, gradients by ``jax.vjp``; float64 runs in 64-bit mode, switched on locally.

    ``jax.vjp`` rather than ``jax.grad``: it returns the output as well, so a loss that is not a scalar is
    reported as such (``jax.grad`` would raise its own, less specific, error).
    """

    name = "jax"
    has_autograd = True

    def __init__(self) -> None:
        self.jax = _import("jax", "jax")
        self.jnp = _import("jax.numpy", "jax")
        # jax ≥ 0.4.36 has jax.enable_x64 as a context manager; older versions had it in jax.experimental.
        self._enable_x64 = getattr(self.jax, "enable_x64", None)
        if self._enable_x64 is None:
            experimental = getattr(self.jax, "experimental", None)
            self._enable_x64 = getattr(experimental, "enable_x64", None)

    def supports(self, dtype: np.dtype) -> bool:
        if np.dtype(dtype) != np.float64:
            return True
        return self._enable_x64 is not None or bool(self.jax.config.jax_enable_x64)

    @contextlib.contextmanager
    def precision(self, dtype: np.dtype) -> Iterator[None]:
        if np.dtype(dtype) == np.float64 and self._enable_x64 is not None:
            with self._enable_x64(True):
                yield
        else:
            yield

    def constant(self, array: np.ndarray) -> Any:
        return self.jnp.asarray(np.array(array, copy=True))

    def labels(self, labels: np.ndarray) -> Any:
        # int64 only exists in 64-bit mode; in 32-bit mode jnp.asarray makes int32, which every JAX loss accepts.
        return self.jnp.asarray(np.asarray(labels, dtype=np.int64))

    def value_and_grad(self, loss_of_student, student_logits, grad_of_student=None) -> Evaluation:
        student = self.jnp.asarray(np.array(student_logits, copy=True))
        # jit: one XLA compilation per shape instead of one per primitive — several times faster for a
        # fresh shape, and how the loss runs in training anyway. A loss that branches in Python on the
        # values of its inputs cannot be traced by jit; it runs eagerly instead.
        untraceable = getattr(self.jax.errors, "JAXTypeError", TypeError)
        try:
            output, vjp = self.jax.vjp(self.jax.jit(loss_of_student), student)
        except untraceable:
            output, vjp = self.jax.vjp(loss_of_student, student)
        value = _scalar(np.asarray(output))
        (grad,) = vjp(self.jnp.ones_like(output))
        return Evaluation(float(value), np.asarray(grad, dtype=np.float64), str(value.dtype))


class TensorflowAdapter(Adapter):
    """TensorFlow 2 (and Keras 3 on its TensorFlow backend): eager tensors, gradients by ``tf.GradientTape``.

    The loss runs eagerly, as it does when a user calls it to debug; a ``tf.function`` inside it is
    traced as usual. A gradient that TensorFlow returns as ``IndexedSlices`` (after a gather) is densified.
    """

    name = "tensorflow"
    has_autograd = True

    def __init__(self) -> None:
        self.tf = _import("tensorflow", "tensorflow-cpu")

    def constant(self, array: np.ndarray) -> Any:
        return self.tf.constant(np.array(array, copy=True))

    def labels(self, labels: np.ndarray) -> Any:
        return self.tf.constant(np.asarray(labels, dtype=np.int64))

    def value_and_grad(self, loss_of_student, student_logits, grad_of_student=None) -> Evaluation:
        tf = self.tf
        student = tf.constant(np.array(student_logits, copy=True))
        with tf.GradientTape() as tape:
            tape.watch(student)
            output = tf.convert_to_tensor(loss_of_student(student))
        value = _scalar(output.numpy())
        grad = tape.gradient(output, student) if output.dtype.is_floating else None
        gradient = np.zeros(student_logits.shape) if grad is None else tf.convert_to_tensor(grad).numpy()
        return Evaluation(float(value), np.asarray(gradient, dtype=np.float64), str(value.dtype))


class NumpyAdapter(Adapter):
    """Plain NumPy: the loss gets NumPy arrays; the gradient is the user's ``grad_of_student``, or None."""

    name = "numpy"
    has_autograd = False

    def constant(self, array: np.ndarray) -> Any:
        return np.array(array, copy=True)

    def labels(self, labels: np.ndarray) -> Any:
        return np.asarray(labels, dtype=np.int64).copy()

    def value_and_grad(self, loss_of_student, student_logits, grad_of_student=None) -> Evaluation:
        value = _scalar(np.asarray(loss_of_student(np.array(student_logits, copy=True))))
        grad = None
        if grad_of_student is not None:
            grad = np.asarray(grad_of_student(np.array(student_logits, copy=True)), dtype=np.float64)
            if grad.shape != student_logits.shape:
                raise ValueError(
                    f"grad_fn returned shape {grad.shape}, expected the student logits' shape "
                    f"{student_logits.shape}"
                )
        return Evaluation(float(value), grad, str(value.dtype))


_ADAPTERS: dict[str, type[Adapter]] = {
    "torch": TorchAdapter,
    "jax": JaxAdapter,
    "tensorflow": TensorflowAdapter,
    "numpy": NumpyAdapter,
}


def get_adapter(framework: str) -> Adapter:
    """The adapter for ``framework``, importing the framework now.

    Parameters
    ----------
    framework : {"torch", "jax", "tensorflow", "numpy"}
        The framework the loss is written in.

    Returns
    -------
    Adapter

    Raises
    ------
    ValueError
        For an unknown framework name.
    FrameworkNotInstalledError
        When the framework cannot be imported; the message names the ``pip install`` that fixes it.

    Examples
    --------
    >>> from kdcore.adapters import get_adapter
    >>> get_adapter("numpy").name
    'numpy'
    >>> get_adapter("mxnet")
    Traceback (most recent call last):
    ...
    ValueError: framework must be one of 'torch', 'jax', 'tensorflow', 'numpy', got framework='mxnet'
    """
    if not isinstance(framework, str) or framework not in _ADAPTERS:
        allowed = ", ".join(repr(name) for name in FRAMEWORKS)
        raise ValueError(f"framework must be one of {allowed}, got framework={framework!r}")
    return _ADAPTERS[framework]()
