r"""A fully connected network with a hand-written backward pass.

Each layer operation below comes as a pair, value then derivative, so the reader checks one against the
other without scrolling: ``_linear`` / ``_linear_backward``, ``_relu`` / ``_relu_backward``,
``_tanh`` / ``_tanh_backward``, ``_dropout`` / ``_dropout_backward``. :class:`MLP` chains them: its
``forward`` calls the values in order, its ``backward`` calls the derivatives in reverse order.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ._arrays import _describe, check_int, check_real

__all__ = ["ACTIVATIONS", "MLP"]

#: The hidden-layer activations :class:`MLP` knows.
ACTIVATIONS = ("relu", "tanh")


# --- Each operation beside its derivative. `grad_v` stands for dL/dv: each backward takes the gradient of
# the loss w.r.t. the operation's output and returns it w.r.t. the operation's inputs.


def _linear(a: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    # z = a W + b, one row per sample.
    return a @ W + b


def _linear_backward(
    grad_z: np.ndarray, a: np.ndarray, W: np.ndarray, need_grad_a: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    # dL/dW sums the outer products a_i ⊗ grad_z_i over the batch; b is added to every row, so its gradient
    # is the column sum; dz/da = Wᵀ. The first layer's dL/da would be dL/dx, which training never needs: on
    # MNIST skipping it saves a (batch × 784 × hidden) product per step.
    grad_W = a.T @ grad_z
    grad_b = grad_z.sum(axis=0)
    grad_a = grad_z @ W.T if need_grad_a else None
    return grad_a, grad_W, grad_b


def _relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0)


def _relu_backward(grad_h: np.ndarray, h: np.ndarray) -> np.ndarray:
    # relu'(z) = 1 where z > 0, else 0 (the subgradient 0 at z = 0, as PyTorch). h > 0 exactly where z > 0.
    # A multiplication by the boolean mask: np.copyto(..., where=) was measured 20× slower.
    return grad_h * (h > 0)


def _tanh(z: np.ndarray) -> np.ndarray:
    return np.tanh(z)


def _tanh_backward(grad_h: np.ndarray, h: np.ndarray) -> np.ndarray:
    # tanh'(z) = 1 − tanh(z)², written with the output h = tanh(z) so z need not be kept.
    return grad_h * (1 - h * h)


def _dropout(h: np.ndarray, mask: np.ndarray) -> np.ndarray:
    # Inverted dropout: mask holds 0 (dropped) or 1/(1 − p) (kept), so E[h ⊙ mask] = h and evaluation
    # needs no rescaling.
    return h * mask


def _dropout_backward(grad_a: np.ndarray, mask: np.ndarray) -> np.ndarray:
    # The mask is a constant of the forward pass: d(h ⊙ mask)/dh = diag(mask).
    return grad_a * mask


_FORWARD = {"relu": _relu, "tanh": _tanh}
_BACKWARD = {"relu": _relu_backward, "tanh": _tanh_backward}


@dataclass
class _Tape:
    """What ``backward`` needs from the last ``forward``: each layer's input and each hidden output."""

    layer_inputs: list[np.ndarray] = field(default_factory=list)  # a_0 = x, a_1, …, a_{L-1}
    hidden: list[np.ndarray] = field(default_factory=list)  # h_k = act(z_k), before dropout
    masks: list[np.ndarray | None] = field(default_factory=list)  # None where no dropout was applied
    batch_shape: tuple[int, ...] = ()


def _check_sizes(sizes: object) -> tuple[int, ...]:
    if isinstance(sizes, str | bytes) or not isinstance(sizes, Sequence | np.ndarray):
        raise ValueError(f"sizes must be a sequence of positive integers, got sizes={_describe(sizes)}")
    checked = []
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size <= 0:
            raise ValueError(f"sizes must hold positive integers only, got sizes={_describe(sizes)}")
        checked.append(int(size))
    if len(checked) < 2:
        raise ValueError(f"sizes needs at least 2 entries [inputs, …, classes], got sizes={_describe(sizes)}")
    return tuple(checked)


def _check_dtype(dtype: object) -> np.dtype:
    checked = None
    if dtype is not None:  # np.dtype(None) is float64: too easy to pass by accident
        try:
            checked = np.dtype(dtype)  # type: ignore[call-overload]
        except TypeError:
            pass
    # `is None` first: a dtype compares equal to None (None means float64 to NumPy).
    if checked is None or checked not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64, got dtype={_describe(dtype)}")
    return checked


class MLP:
    r"""A multilayer perceptron: affine layers, an activation between them, logits out.

    Parameters
    ----------
    sizes : sequence of int
        ``[inputs, hidden_1, …, hidden_m, classes]``, at least two entries, all positive. Two entries give
        a linear model (multinomial logistic regression).
    activation : {"relu", "tanh"}
        Applied after every hidden layer, never after the last (the logits are affine).
    dropout : float
        Probability in [0, 1) of zeroing each hidden activation during training (inverted dropout: the
        kept ones are scaled by ``1 / (1 - dropout)``). Never applied to inputs or logits.
    seed : int
        Seeds the initial weights and, through an independent stream, the dropout masks. The same seed
        gives bitwise identical parameters and masks.
    dtype : {numpy.float32, numpy.float64}
        Parameters, activations and gradients all have this dtype; inputs are cast to it.

    Attributes
    ----------
    params : list of numpy.ndarray
        ``[W_1, b_1, W_2, b_2, …]`` with ``W_k`` of shape ``(sizes[k-1], sizes[k])`` and ``b_k`` of
        shape ``(sizes[k],)``. Optimisers update these arrays in place.
    dropout_rng : numpy.random.Generator
        Draws the dropout masks; its state is saved in checkpoints, so a resumed run draws the same masks.
    dropout_masks : list of numpy.ndarray or None
        The masks the last :meth:`forward` used, one per hidden layer (None where none was applied).

    Notes
    -----
    With :math:`a_0 = x`, the forward pass of an :math:`L`-layer network is

    .. math::

        z_k = a_{k-1} W_k + b_k, \qquad
        a_k = \operatorname{act}(z_k) \odot m_k \quad (k < L), \qquad
        \text{logits} = z_L,

    where :math:`m_k` is the dropout mask (all ones in evaluation). Given :math:`g_L = \partial L /
    \partial z_L`, the backward pass runs the chain rule from the top:

    .. math::

        \frac{\partial L}{\partial W_k} = a_{k-1}^\top g_k, \qquad
        \frac{\partial L}{\partial b_k} = \mathbf 1^\top g_k, \qquad
        g_{k-1} = \bigl(g_k W_k^\top \odot m_{k-1}\bigr) \odot \operatorname{act}'(z_{k-1}).

    Weights are drawn with He initialisation, :math:`W_k \sim \mathcal N(0, 2 / \text{fan-in})`, which
    keeps the variance of ReLU activations constant from layer to layer; tanh, whose gain is 1 near 0,
    gets :math:`\mathcal N(0, 1 / \text{fan-in})` (LeCun). Biases start at zero. The weights are drawn in
    float64 and then cast, so a float32 and a float64 model with the same seed hold the same numbers up to
    rounding.

    References
    ----------
    .. [1] K. He, X. Zhang, S. Ren, J. Sun, "Delving deep into rectifiers", ICCV 2015,
       :doi:`10.1109/ICCV.2015.123`.
    .. [2] N. Srivastava et al., "Dropout: a simple way to prevent neural networks from overfitting",
       JMLR 15 (2014).

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore.mlp import MLP
    >>> model = MLP([4, 8, 3], seed=0)
    >>> [p.shape for p in model.params]
    [(4, 8), (8,), (8, 3), (3,)]
    >>> logits = model.forward(np.ones((2, 4)))
    >>> logits.shape, logits.dtype
    ((2, 3), dtype('float32'))
    >>> grads = model.backward(np.ones((2, 3)))
    >>> [g.shape for g in grads] == [p.shape for p in model.params]
    True
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str = "relu",
        dropout: float = 0.0,
        seed: int = 0,
        dtype: type | np.dtype = np.float32,
    ) -> None:
        self.sizes = _check_sizes(sizes)
        if not isinstance(activation, str) or activation not in ACTIVATIONS:
            allowed = ", ".join(repr(a) for a in ACTIVATIONS)
            raise ValueError(f"activation must be one of {allowed}, got activation={_describe(activation)}")
        self.activation = activation
        self.dropout = check_real(dropout, "dropout", 0.0, 1.0, open_high=True)
        self.seed = check_int(seed, "seed", 0)
        self.dtype = _check_dtype(dtype)

        init_rng = np.random.default_rng(self.seed)
        gain = 2.0 if activation == "relu" else 1.0
        self.params: list[np.ndarray] = []
        for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:], strict=True):
            W = init_rng.standard_normal((fan_in, fan_out)) * math.sqrt(gain / fan_in)
            self.params += [W.astype(self.dtype), np.zeros(fan_out, dtype=self.dtype)]
        # A child of the same seed, independent of the initialisation stream: changing the architecture
        # (which changes how many numbers initialisation draws) does not shift the dropout masks.
        self.dropout_rng = np.random.default_rng(np.random.SeedSequence(self.seed).spawn(1)[0])
        self._tape: _Tape | None = None

    # --- Description

    @property
    def n_layers(self) -> int:
        """The number of affine layers (``len(sizes) - 1``)."""
        return len(self.sizes) - 1

    @property
    def n_params(self) -> int:
        """The number of scalar parameters, weights and biases together."""
        return sum(p.size for p in self.params)

    def config(self) -> dict:
        """The constructor arguments as a JSON-ready dict: ``MLP(**model.config())`` builds the same shape."""
        return {
            "sizes": list(self.sizes),
            "activation": self.activation,
            "dropout": self.dropout,
            "seed": self.seed,
            "dtype": self.dtype.name,
        }

    def __repr__(self) -> str:
        return (
            f"MLP(sizes={list(self.sizes)}, activation={self.activation!r}, dropout={self.dropout}, "
            f"seed={self.seed}, dtype={self.dtype.name})"
        )

    # --- Forward and backward

    def forward(self, x: np.ndarray, train: bool = False, dropout_seed: int | None = None) -> np.ndarray:
        r"""The logits for a batch, remembering what :meth:`backward` needs.

        Parameters
        ----------
        x : array_like, shape (n, sizes[0])
            One sample per row; cast to the model's dtype.
        train : bool
            Apply dropout to the hidden activations (when ``dropout > 0``). In evaluation
            (``train=False``) every unit is kept and nothing is rescaled.
        dropout_seed : int, optional
            Draw this call's masks from ``numpy.random.default_rng(dropout_seed)`` instead of the model's
            own generator, which is then left untouched: every call with the same seed uses the same masks,
            as a finite-difference check needs.

        Returns
        -------
        numpy.ndarray, shape (n, sizes[-1])
            The logits, in the model's dtype.

        Examples
        --------
        >>> import numpy as np
        >>> from kdcore.mlp import MLP
        >>> model = MLP([3, 16, 2], dropout=0.5, seed=1)
        >>> x = np.ones((1, 3))
        >>> bool(np.array_equal(model.forward(x, train=True, dropout_seed=7),
        ...                     model.forward(x, train=True, dropout_seed=7)))
        True
        >>> bool(np.array_equal(model.forward(x), model.forward(x)))  # evaluation is deterministic
        True
        """
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise TypeError(f"x must hold real numbers, got dtype {x.dtype}")
        if x.ndim != 2 or x.shape[1] != self.sizes[0]:
            raise ValueError(f"x must have shape (n, {self.sizes[0]}), got shape {x.shape}")
        a = x.astype(self.dtype, copy=False)
        drop = train and self.dropout > 0.0
        rng = None
        if drop:
            rng = self.dropout_rng if dropout_seed is None else np.random.default_rng(dropout_seed)
        act = _FORWARD[self.activation]

        tape = _Tape(batch_shape=(x.shape[0], self.sizes[-1]))
        for k in range(self.n_layers):
            W, b = self.params[2 * k], self.params[2 * k + 1]
            tape.layer_inputs.append(a)
            z = _linear(a, W, b)
            if k == self.n_layers - 1:
                logits = z  # the last layer is affine: logits may be any real numbers
                break
            h = act(z)
            tape.hidden.append(h)
            mask = self._draw_mask(rng, h.shape) if drop else None
            tape.masks.append(mask)
            a = h if mask is None else _dropout(h, mask)
        self._tape = tape
        return logits

    def _draw_mask(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        # Drawn in the model's dtype, so a float32 model never builds a float64 array of the batch's size.
        keep = rng.random(shape, dtype=self.dtype) >= self.dropout
        mask = keep.astype(self.dtype)
        mask *= self.dtype.type(1.0 / (1.0 - self.dropout))
        return mask

    @property
    def dropout_masks(self) -> list[np.ndarray | None]:
        """The masks of the last :meth:`forward`, one per hidden layer: 0 or ``1/(1-dropout)``, or None."""
        if self._tape is None:
            return []
        return list(self._tape.masks)

    def backward(self, dlogits: np.ndarray) -> list[np.ndarray]:
        r"""The gradient of a loss with respect to every parameter, given its gradient w.r.t. the logits.

        Parameters
        ----------
        dlogits : array_like, shape (n, sizes[-1])
            :math:`\partial L / \partial \text{logits}` for the batch of the last :meth:`forward` (for a
            batch-mean loss it already carries the 1/n).

        Returns
        -------
        list of numpy.ndarray
            Aligned with :attr:`params`: ``[dL/dW_1, dL/db_1, …]``, in the model's dtype.

        Examples
        --------
        A linear model's weight gradient is the outer product of input and output gradient:

        >>> import numpy as np
        >>> from kdcore.mlp import MLP
        >>> model = MLP([2, 1], dtype=np.float64)
        >>> _ = model.forward([[3.0, 4.0]])
        >>> grad_W, grad_b = model.backward([[2.0]])
        >>> grad_W.ravel().tolist(), grad_b.tolist()
        ([6.0, 8.0], [2.0])
        """
        if self._tape is None:
            raise RuntimeError("backward needs the tape of a forward pass: call forward first")
        tape = self._tape
        grad_z = np.asarray(dlogits)
        if grad_z.shape != tape.batch_shape:
            raise ValueError(
                f"dlogits must have the shape of the last forward's logits {tape.batch_shape}, "
                f"got shape {grad_z.shape}"
            )
        grad_z = grad_z.astype(self.dtype, copy=False)
        act_backward = _BACKWARD[self.activation]

        grads: list[np.ndarray] = [np.empty(0)] * len(self.params)
        for k in reversed(range(self.n_layers)):
            W = self.params[2 * k]
            grad_a, grads[2 * k], grads[2 * k + 1] = _linear_backward(grad_z, tape.layer_inputs[k], W, k > 0)
            if grad_a is None:
                break  # the first layer: nothing below it to differentiate
            mask = tape.masks[k - 1]
            grad_h = grad_a if mask is None else _dropout_backward(grad_a, mask)
            grad_z = act_backward(grad_h, tape.hidden[k - 1])
        return grads

    # --- Conveniences

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The predicted class of each row of ``x``: the argmax of the evaluation-mode logits.

        Examples
        --------
        >>> import numpy as np
        >>> from kdcore.mlp import MLP
        >>> MLP([5, 3], seed=0).predict(np.zeros((2, 5))).tolist()  # zero biases: all logits tie at 0
        [0, 0]
        """
        return np.argmax(self.forward(x, train=False), axis=1)

    def get_params(self) -> list[np.ndarray]:
        """Copies of the parameters (later training does not change them)."""
        return [p.copy() for p in self.params]

    def set_params(self, params: Sequence[np.ndarray]) -> None:
        """Overwrite the parameters in place (optimisers keep their references), casting to the model dtype.

        Raises ``ValueError`` if the number of arrays or any shape differs from :attr:`params`.
        """
        if len(params) != len(self.params):
            raise ValueError(f"expected {len(self.params)} parameter arrays, got {len(params)}")
        new = [np.asarray(p) for p in params]
        for k, (old, value) in enumerate(zip(self.params, new, strict=True)):
            if value.shape != old.shape:
                raise ValueError(f"params[{k}] must have shape {old.shape}, got shape {value.shape}")
            if value.dtype.kind not in "biuf":
                raise TypeError(f"params[{k}] must hold real numbers, got dtype {value.dtype}")
        for old, value in zip(self.params, new, strict=True):
            old[...] = value
        self._tape = None  # the tape belonged to the old parameters

    def copy(self) -> MLP:
        """An independent model with equal parameters and dropout generator state.

        Examples
        --------
        >>> from kdcore.mlp import MLP
        >>> model = MLP([2, 3, 2], seed=4)
        >>> twin = model.copy()
        >>> twin.params[0] += 1
        >>> bool((twin.params[0] != model.params[0]).all())
        True
        """
        twin = MLP(self.sizes, self.activation, self.dropout, self.seed, self.dtype)
        twin.set_params(self.params)
        twin.dropout_rng.bit_generator.state = self.dropout_rng.bit_generator.state
        return twin
