r"""A fully connected network with a hand-written backward pass.

Each layer operation below comes as a pair, value then derivative, so the reader checks one against the
other without scrolling: ``_linear`` / ``_linear_backward``, ``_relu`` / ``_relu_backward``,
``_tanh`` / ``_tanh_backward``, ``_dropout`` / ``_dropout_backward``. :class:`MLP` chains them: its
``forward_with_cache`` calls the values in order and returns, with the logits, the :class:`Cache` of what the
derivatives need; its ``backward`` takes that cache and calls the derivatives in reverse order.

The model keeps no tape between the two calls (CS231n's layer style): a forward pass's cache is a value the
caller holds, so an evaluation pass, a prediction or a second forward pass in between cannot change the
gradients of the first. The one constraint of dropout training, a max-norm bound on each unit's incoming
weights (Hinton et al. 2012; Srivastava et al. 2014), is a projection applied after the optimiser's step:
:func:`max_norm_` and :meth:`MLP.apply_max_norm`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._arrays import _describe, check_int, check_real

__all__ = ["ACTIVATIONS", "MLP", "Cache", "max_norm_"]

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


def max_norm_(W: np.ndarray, max_norm: float) -> np.ndarray:
    r"""Project each column of ``W`` (one unit's incoming weights) into the ball of radius ``max_norm``, in place.

    .. math::

        W_{:, j} \leftarrow W_{:, j} \cdot \min\Bigl(1, \frac{c}{\lVert W_{:, j} \rVert_2}\Bigr)

    the Euclidean projection onto :math:`\{W : \lVert W_{:, j}\rVert_2 \le c \ \forall j\}`: a column
    inside the ball is left bitwise unchanged, one outside is scaled back onto its surface, keeping its
    direction. With :math:`W` of shape ``(fan_in, fan_out)`` as in :class:`MLP`, column :math:`j` holds the
    weights into unit :math:`j`. PyTorch's ``torch.renorm(W.T, 2, 0, c)`` is the same map except that it
    divides by :math:`\lVert w\rVert + 10^{-7}`, so its scaled columns end slightly inside the ball.

    Parameters
    ----------
    W : numpy.ndarray, shape (fan_in, fan_out)
        Float weights, modified in place (its dtype is kept).
    max_norm : float
        :math:`c > 0`.

    Returns
    -------
    numpy.ndarray
        ``W`` itself.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore.mlp import max_norm_
    >>> W = np.array([[3.0, 0.3], [4.0, 0.4]])  # column norms 5 and 0.5
    >>> max_norm_(W, 2.0).tolist()
    [[1.2, 0.3], [1.6, 0.4]]
    """
    norms = np.sqrt(np.einsum("ij,ij->j", W, W))
    over = norms > max_norm
    if over.any():  # most steps change nothing: skip the multiplication
        # norms[over] > max_norm > 0, so the division is safe; the factor is < 1.
        W[:, over] *= (max_norm / norms[over]).astype(W.dtype, copy=False)
    return W


_FORWARD = {"relu": _relu, "tanh": _tanh}
_BACKWARD = {"relu": _relu_backward, "tanh": _tanh_backward}


@dataclass(frozen=True)
class Cache:
    r"""What :meth:`MLP.backward` needs from one :meth:`MLP.forward_with_cache` call.

    A plain value owned by the caller: the model does not keep it, so nothing another call does (an
    evaluation pass, a prediction, another forward pass) changes it.

    Attributes
    ----------
    layer_inputs : tuple of numpy.ndarray
        :math:`a_0, …, a_{L-1}`: each affine layer's input (:math:`a_0` is the input after input dropout).
    hidden : tuple of numpy.ndarray
        :math:`h_k = \operatorname{act}(z_k)` of each hidden layer, before dropout.
    masks : tuple of numpy.ndarray or None
        Each hidden layer's dropout mask (0 or ``1/(1 - dropout)``), None where none was applied.
    input_mask : numpy.ndarray or None
        The input dropout mask (0 or ``1/(1 - input_dropout)``), None where none was applied.
    batch_shape : tuple of int
        The logits' shape, ``(n, sizes[-1])``: the shape ``dlogits`` must have.
    """

    layer_inputs: tuple[np.ndarray, ...]
    hidden: tuple[np.ndarray, ...]
    masks: tuple[np.ndarray | None, ...]
    input_mask: np.ndarray | None
    batch_shape: tuple[int, ...]


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
        kept ones are scaled by ``1 / (1 - dropout)``). Never applied to the logits.
    input_dropout : float
        Probability in [0, 1) of zeroing each input during training, the same way (Hinton et al. 2012 drop
        20 % of the pixels). 0, the default, draws no input mask at all.
    max_norm : float, optional
        :math:`c > 0`: after every optimiser step, :func:`kdcore.train.fit` calls :meth:`apply_max_norm`,
        which scales back each unit's incoming weight vector whose Euclidean norm exceeds ``c`` (biases are
        not constrained). None, the default, leaves the weights free.
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
        Draws the dropout masks (the input mask first, then the hidden layers' in order); its state is saved
        in checkpoints, so a resumed run draws the same masks.

    Notes
    -----
    With :math:`a_0 = x`, the forward pass of an :math:`L`-layer network is

    .. math::

        a_0 = x \odot m_0, \qquad
        z_k = a_{k-1} W_k + b_k, \qquad
        a_k = \operatorname{act}(z_k) \odot m_k \quad (k < L), \qquad
        \text{logits} = z_L,

    where :math:`m_0` is the input dropout mask and :math:`m_k` the hidden ones (all ones in evaluation). Given :math:`g_L = \partial L /
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
    .. [3] G. Hinton et al., "Improving neural networks by preventing co-adaptation of feature detectors",
       :arxiv:`1207.0580` (2012): 20 % input dropout, 50 % hidden dropout, max-norm on incoming weights.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore.mlp import MLP
    >>> model = MLP([4, 8, 3], seed=0)
    >>> [p.shape for p in model.params]
    [(4, 8), (8,), (8, 3), (3,)]
    >>> logits = model.forward(np.ones((2, 4)))  # evaluation: records nothing
    >>> logits.shape, logits.dtype
    ((2, 3), dtype('float32'))
    >>> logits, cache = model.forward_with_cache(np.ones((2, 4)), train=True)
    >>> grads = model.backward(np.ones((2, 3)), cache)
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
        input_dropout: float = 0.0,
        max_norm: float | None = None,
    ) -> None:
        self.sizes = _check_sizes(sizes)
        if not isinstance(activation, str) or activation not in ACTIVATIONS:
            allowed = ", ".join(repr(a) for a in ACTIVATIONS)
            raise ValueError(f"activation must be one of {allowed}, got activation={_describe(activation)}")
        self.activation = activation
        self.dropout = check_real(dropout, "dropout", 0.0, 1.0, open_high=True)
        self.input_dropout = check_real(input_dropout, "input_dropout", 0.0, 1.0, open_high=True)
        self.max_norm = None if max_norm is None else check_real(max_norm, "max_norm", 0.0, open_low=True)
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
        if self.max_norm is not None:
            self.apply_max_norm()  # start inside the constraint set (He-initialised columns have norm ≈ √2)

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
            "input_dropout": self.input_dropout,
            "max_norm": self.max_norm,
        }

    def __repr__(self) -> str:
        extra = ""
        if self.input_dropout:
            extra += f", input_dropout={self.input_dropout}"
        if self.max_norm is not None:
            extra += f", max_norm={self.max_norm}"
        return (
            f"MLP(sizes={list(self.sizes)}, activation={self.activation!r}, dropout={self.dropout}, "
            f"seed={self.seed}, dtype={self.dtype.name}{extra})"
        )

    # --- Forward and backward

    def forward(self, x: np.ndarray, train: bool = False, dropout_seed: int | None = None) -> np.ndarray:
        r"""The logits for a batch; records nothing (use :meth:`forward_with_cache` to differentiate).

        Parameters
        ----------
        x : array_like, shape (n, sizes[0])
            One sample per row; cast to the model's dtype.
        train : bool
            Apply dropout to the inputs and the hidden activations (when ``input_dropout`` or ``dropout``
            is positive). In evaluation (``train=False``) every unit is kept and nothing is rescaled.
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
        return self._forward(x, train, dropout_seed, keep=False)[0]

    def forward_with_cache(
        self, x: np.ndarray, train: bool = False, dropout_seed: int | None = None
    ) -> tuple[np.ndarray, Cache]:
        r"""The logits for a batch and the :class:`Cache` that :meth:`backward` needs to differentiate them.

        Takes the arguments of :meth:`forward`, and draws the same masks from the same generator. The cache
        is returned, not stored: pass it to :meth:`backward`. Any number of forward passes (for training,
        evaluation or prediction) may happen in between without affecting it.

        Returns
        -------
        logits : numpy.ndarray, shape (n, sizes[-1])
        cache : Cache

        Examples
        --------
        >>> import numpy as np
        >>> from kdcore.mlp import MLP
        >>> model = MLP([3, 16, 2], dropout=0.5, input_dropout=0.2, seed=1)
        >>> logits, cache = model.forward_with_cache(np.ones((4, 3)), train=True)
        >>> len(cache.masks), cache.input_mask.shape
        (1, (4, 3))
        """
        logits, cache = self._forward(x, train, dropout_seed, keep=True)
        assert cache is not None
        return logits, cache

    def _forward(
        self, x: np.ndarray, train: bool, dropout_seed: int | None, keep: bool
    ) -> tuple[np.ndarray, Cache | None]:
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise TypeError(f"x must hold real numbers, got dtype {x.dtype}")
        if x.ndim != 2 or x.shape[1] != self.sizes[0]:
            raise ValueError(f"x must have shape (n, {self.sizes[0]}), got shape {x.shape}")
        a = x.astype(self.dtype, copy=False)
        drop_inputs = train and self.input_dropout > 0.0
        drop_hidden = train and self.dropout > 0.0
        rng = None
        if drop_inputs or drop_hidden:
            rng = self.dropout_rng if dropout_seed is None else np.random.default_rng(dropout_seed)
        act = _FORWARD[self.activation]

        # The input mask is drawn first, and only when input dropout is on: a model without it draws exactly
        # the hidden masks it always drew.
        input_mask = self._draw_mask(rng, a.shape, self.input_dropout) if drop_inputs else None
        if input_mask is not None:
            a = _dropout(a, input_mask)
        layer_inputs, hidden, masks = [], [], []
        for k in range(self.n_layers):
            W, b = self.params[2 * k], self.params[2 * k + 1]
            layer_inputs.append(a)
            z = _linear(a, W, b)
            if k == self.n_layers - 1:
                logits = z  # the last layer is affine: logits may be any real numbers
                break
            h = act(z)
            mask = self._draw_mask(rng, h.shape, self.dropout) if drop_hidden else None
            if keep:
                hidden.append(h)
                masks.append(mask)
            a = h if mask is None else _dropout(h, mask)
        if not keep:
            return logits, None
        cache = Cache(
            layer_inputs=tuple(layer_inputs),
            hidden=tuple(hidden),
            masks=tuple(masks),
            input_mask=input_mask,
            batch_shape=(x.shape[0], self.sizes[-1]),
        )
        return logits, cache

    def _draw_mask(self, rng: np.random.Generator, shape: tuple[int, ...], rate: float) -> np.ndarray:
        # Drawn in the model's dtype, so a float32 model never builds a float64 array of the batch's size.
        keep = rng.random(shape, dtype=self.dtype) >= rate
        mask = keep.astype(self.dtype)
        mask *= self.dtype.type(1.0 / (1.0 - rate))
        return mask

    def backward(self, dlogits: np.ndarray, cache: Cache) -> list[np.ndarray]:
        r"""The gradient of a loss with respect to every parameter, given its gradient w.r.t. the logits.

        Parameters
        ----------
        dlogits : array_like, shape (n, sizes[-1])
            :math:`\partial L / \partial \text{logits}` for the batch of ``cache``'s forward pass (for a
            batch-mean loss it already carries the 1/n).
        cache : Cache
            What :meth:`forward_with_cache` returned with those logits. The weights are read from the
            model when ``backward`` runs, so call it before the optimiser changes them.

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
        >>> _, cache = model.forward_with_cache([[3.0, 4.0]])
        >>> grad_W, grad_b = model.backward([[2.0]], cache)
        >>> grad_W.ravel().tolist(), grad_b.tolist()
        ([6.0, 8.0], [2.0])
        """
        if not isinstance(cache, Cache):
            raise TypeError(
                f"cache must be the Cache that forward_with_cache returned, got {type(cache).__name__}"
            )
        if len(cache.layer_inputs) != self.n_layers or any(
            a.shape[1] != size for a, size in zip(cache.layer_inputs, self.sizes[:-1], strict=True)
        ):
            raise ValueError(f"cache was made by a model of other sizes than {list(self.sizes)}")
        grad_z = np.asarray(dlogits)
        if grad_z.shape != cache.batch_shape:
            raise ValueError(
                f"dlogits must have the shape of the cached forward pass's logits {cache.batch_shape}, "
                f"got shape {grad_z.shape}"
            )
        grad_z = grad_z.astype(self.dtype, copy=False)
        act_backward = _BACKWARD[self.activation]

        grads: list[np.ndarray] = [np.empty(0)] * len(self.params)
        for k in reversed(range(self.n_layers)):
            W = self.params[2 * k]
            grad_a, grads[2 * k], grads[2 * k + 1] = _linear_backward(grad_z, cache.layer_inputs[k], W, k > 0)
            if grad_a is None:
                # The first layer: nothing below it to differentiate. (Its input a_0 = x ⊙ m_0 already holds
                # the input mask, so dL/dW_1 = a_0ᵀ g_1 needs no separate dropout step.)
                break
            mask = cache.masks[k - 1]
            grad_h = grad_a if mask is None else _dropout_backward(grad_a, mask)
            grad_z = act_backward(grad_h, cache.hidden[k - 1])
        return grads

    def apply_max_norm(self) -> None:
        """Project every weight matrix with :func:`max_norm_` (each unit's incoming weights to norm ≤ ``max_norm``).

        Does nothing when ``max_norm`` is None. :func:`kdcore.train.fit` calls it after every optimiser step,
        which makes the step a projected gradient step (Srivastava et al. 2014, §5.1).

        Examples
        --------
        >>> import numpy as np
        >>> from kdcore.mlp import MLP
        >>> model = MLP([4, 3, 2], max_norm=0.5, seed=0)
        >>> model.params[0][:] = 10.0
        >>> model.apply_max_norm()
        >>> np.linalg.norm(model.params[0], axis=0).round(6).tolist()
        [0.5, 0.5, 0.5]
        """
        if self.max_norm is None:
            return
        for W in self.params[0::2]:
            max_norm_(W, self.max_norm)

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
        twin = MLP(**self.config())
        twin.set_params(self.params)
        twin.dropout_rng.bit_generator.state = self.dropout_rng.bit_generator.state
        return twin
