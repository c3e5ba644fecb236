r"""Optimisers (SGD with momentum, Adam) and learning-rate schedules (step, cosine).

An optimiser is not bound to a model: ``optimizer.step(model.params, grads)`` updates the arrays in place,
and its state (step count, momentum buffers, Adam's moments) is created on the first step, in the dtype of
the parameters. :meth:`~SGD.state_dict` exposes that state as plain arrays and :meth:`~SGD.config` the
hyperparameters as a JSON-ready dict, which is all a checkpoint needs; :func:`from_config` rebuilds the
object.

A schedule is a pure function of the epoch (or step) number, ``schedule.lr_at(t)``; training sets
``optimizer.lr`` from it at the start of every epoch. Being stateless, a schedule resumes for free.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from ._arrays import _describe, check_int, check_real

__all__ = ["SGD", "Adam", "CosineLR", "StepLR", "from_config"]


def _check_real(value: object, name: str, low: float, high: float = math.inf, *, open_low=False) -> float:
    """``value`` as a float in [low, high) (or (low, high) with ``open_low``), by kdcore's one error rule."""
    return check_real(value, name, low, high, open_low=open_low, open_high=True)


def _check_step_args(
    params: Sequence[np.ndarray], grads: Sequence[np.ndarray], buffers: Sequence[np.ndarray] | None
) -> None:
    if len(params) != len(grads):
        raise ValueError(f"got {len(params)} parameter arrays but {len(grads)} gradients")
    for k, (param, grad) in enumerate(zip(params, grads, strict=True)):
        if param.shape != grad.shape:
            raise ValueError(f"grads[{k}] has shape {grad.shape}, but params[{k}] has shape {param.shape}")
    if buffers is not None:
        shapes = [b.shape for b in buffers]
        if shapes != [p.shape for p in params]:
            raise ValueError(
                "the optimiser's state was made for parameters of shapes "
                f"{shapes}, not {[p.shape for p in params]}: use a new optimiser for another model"
            )


def _load_buffers(
    state: Mapping[str, np.ndarray], prefix: str, params: Sequence[np.ndarray] | None
) -> list[np.ndarray] | None:
    """The arrays ``prefix0, prefix1, …`` of ``state`` (None if there are none), checked against ``params``."""
    buffers = []
    while f"{prefix}{len(buffers)}" in state:
        buffers.append(np.array(state[f"{prefix}{len(buffers)}"]))  # a copy: the state is ours alone
    if params is not None and buffers:
        if len(buffers) != len(params):
            raise ValueError(f"optimiser state has {len(buffers)} {prefix}* arrays for {len(params)} params")
        for k, (buffer, param) in enumerate(zip(buffers, params, strict=True)):
            if buffer.shape != param.shape or buffer.dtype != param.dtype:
                raise ValueError(
                    f"optimiser state {prefix}{k} has shape {buffer.shape} and dtype {buffer.dtype}, "
                    f"but params[{k}] has shape {param.shape} and dtype {param.dtype}"
                )
    return buffers or None


def _check_no_extra_keys(state: Mapping[str, np.ndarray], known: set[str]) -> None:
    # An unknown key means a state saved by another optimiser (or a corrupt one): refuse, don't ignore it.
    extra = sorted(set(state) - known)
    if extra:
        raise ValueError(f"optimiser state has unexpected entries {extra}")


def _load_step(state: Mapping[str, np.ndarray]) -> int:
    if "step" not in state:
        raise ValueError(f"optimiser state needs a 'step' entry, got keys {sorted(state)}")
    step = np.asarray(state["step"])
    if step.shape != () or step.dtype.kind not in "iu" or int(step) < 0:
        raise ValueError(
            f"optimiser state 'step' must be a non-negative integer scalar, got {_describe(step)}"
        )
    return int(step)


class SGD:
    r"""Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay.

    Parameters
    ----------
    lr : float
        Learning rate :math:`\eta \ge 0`.
    momentum : float
        :math:`\mu \in [0, 1)`; 0 is plain SGD.
    nesterov : bool
        Use Nesterov's look-ahead form (needs ``momentum > 0``).
    weight_decay : float
        :math:`\lambda \ge 0`, applied as **L2 regularisation**: :math:`\lambda \theta` is added to the
        gradient, i.e. the loss gets :math:`\tfrac{\lambda}{2}\lVert\theta\rVert^2`, on every parameter
        (biases too). For plain SGD this is the same as decoupled decay; with momentum it is what
        ``torch.optim.SGD`` does.

    Attributes
    ----------
    step_count : int
        The number of steps taken.
    velocity : list of numpy.ndarray or None
        The momentum buffers :math:`v`, one per parameter (None before the first step or with no momentum).

    Notes
    -----
    With :math:`g = \nabla L(\theta) + \lambda\theta`, one step is

    .. math::

        v \leftarrow \mu v + g, \qquad
        \theta \leftarrow \theta - \eta \, v
        \quad\text{(or, Nesterov, } \theta \leftarrow \theta - \eta\,(g + \mu v)\text{)},

    with :math:`v = 0` before the first step — the convention of PyTorch, where :math:`\eta` multiplies
    the velocity rather than being folded into it (the two differ only when :math:`\eta` changes).

    References
    ----------
    .. [1] I. Sutskever, J. Martens, G. Dahl, G. Hinton, "On the importance of initialization and
       momentum in deep learning", ICML 2013.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore.optim import SGD
    >>> params = [np.array([1.0, -2.0])]
    >>> opt = SGD(lr=0.1, momentum=0.9)
    >>> opt.step(params, [np.array([1.0, 1.0])])
    >>> opt.step(params, [np.array([1.0, 1.0])])  # v = 0.9·1 + 1 = 1.9
    >>> params[0].tolist()
    [0.71, -2.29]
    """

    name = "sgd"

    def __init__(
        self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0
    ) -> None:
        self.lr = _check_real(lr, "lr", 0.0)
        self.momentum = _check_real(momentum, "momentum", 0.0, 1.0)
        if not isinstance(nesterov, bool):
            raise ValueError(f"nesterov must be True or False, got nesterov={_describe(nesterov)}")
        if nesterov and self.momentum == 0.0:
            raise ValueError("nesterov=True needs momentum > 0, got momentum=0")
        self.nesterov = nesterov
        self.weight_decay = _check_real(weight_decay, "weight_decay", 0.0)
        self.step_count = 0
        self.velocity: list[np.ndarray] | None = None

    def step(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray]) -> None:
        """Update ``params`` in place by one step along ``grads`` (which are left unchanged)."""
        _check_step_args(params, grads, self.velocity)
        if self.momentum and self.velocity is None:
            self.velocity = [np.zeros_like(p) for p in params]
        for k, (param, grad) in enumerate(zip(params, grads, strict=True)):
            if self.weight_decay:
                grad = grad + self.weight_decay * param  # d/dθ of (λ/2)‖θ‖²; a new array, not the caller's
            direction = grad
            if self.velocity is not None:
                velocity = self.velocity[k]
                velocity *= self.momentum
                velocity += grad
                direction = grad + self.momentum * velocity if self.nesterov else velocity
            param -= self.lr * direction
        self.step_count += 1

    def config(self) -> dict:
        """The hyperparameters as a JSON-ready dict; ``from_config`` rebuilds the optimiser from it."""
        return {
            "name": self.name,
            "lr": self.lr,
            "momentum": self.momentum,
            "nesterov": self.nesterov,
            "weight_decay": self.weight_decay,
        }

    def state_dict(self) -> dict[str, np.ndarray]:
        """The state as arrays: ``step`` and ``velocity0, velocity1, …`` (once there are buffers)."""
        state = {"step": np.array(self.step_count, dtype=np.int64)}
        for k, velocity in enumerate(self.velocity or []):
            state[f"velocity{k}"] = velocity.copy()
        return state

    def load_state_dict(
        self, state: Mapping[str, np.ndarray], params: Sequence[np.ndarray] | None = None
    ) -> None:
        """Restore :meth:`state_dict`'s output (copied); with ``params``, check the buffers fit them."""
        step = _load_step(state)
        velocity = _load_buffers(state, "velocity", params)
        _check_no_extra_keys(state, {"step"} | {f"velocity{k}" for k in range(len(velocity or []))})
        self.step_count, self.velocity = step, velocity

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.config().items() if key != "name")
        return f"SGD({args})"


class Adam:
    r"""Adam with bias correction, and optional decoupled weight decay (AdamW).

    Parameters
    ----------
    lr : float
        Learning rate :math:`\eta \ge 0`.
    betas : (float, float)
        Decay rates :math:`(\beta_1, \beta_2)`, each in [0, 1), of the moment estimates.
    eps : float
        :math:`\epsilon > 0`, added to :math:`\sqrt{\hat v}` so a zero gradient does not divide by zero.
    weight_decay : float
        :math:`\lambda \ge 0`, **decoupled** (Loshchilov & Hutter's AdamW): the parameters shrink by
        :math:`\eta\lambda\theta` outside the adaptive step. Added to the gradient instead (L2), the decay
        would be divided by :math:`\sqrt{\hat v}` and so be weakest on the parameters with the largest
        gradients.

    Attributes
    ----------
    step_count : int
        :math:`t`, the number of steps taken (bias correction needs it).
    m, v : list of numpy.ndarray or None
        First and second moment estimates, one per parameter (None before the first step).

    Notes
    -----
    Step :math:`t = 1, 2, \dots` with gradient :math:`g`:

    .. math::

        m &\leftarrow \beta_1 m + (1 - \beta_1)\, g, \qquad
        v \leftarrow \beta_2 v + (1 - \beta_2)\, g \odot g, \\
        \hat m &= m / (1 - \beta_1^t), \qquad \hat v = v / (1 - \beta_2^t), \\
        \theta &\leftarrow (1 - \eta\lambda)\,\theta - \eta\, \hat m / (\sqrt{\hat v} + \epsilon).

    :math:`m` and :math:`v` start at zero, which biases them towards zero early on; dividing by
    :math:`1 - \beta^t` removes that bias exactly for a constant gradient. So the first step moves every
    parameter by about :math:`\eta` against the sign of its gradient, whatever the gradient's scale.

    References
    ----------
    .. [1] D. P. Kingma, J. Ba, "Adam: a method for stochastic optimization", ICLR 2015,
       :arxiv:`1412.6980`.
    .. [2] I. Loshchilov, F. Hutter, "Decoupled weight decay regularization", ICLR 2019,
       :arxiv:`1711.05101`.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore.optim import Adam
    >>> params = [np.array([1.0, 1.0])]
    >>> Adam(lr=0.1).step(params, [np.array([1e-3, -50.0])])
    >>> params[0].round(4).tolist()  # both move by ≈ lr, whatever the gradient's size
    [0.9, 1.1]
    """

    name = "adam"

    def __init__(
        self,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        self.lr = _check_real(lr, "lr", 0.0)
        if not isinstance(betas, Sequence) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got betas={_describe(betas)}")
        self.betas = (
            _check_real(betas[0], "betas[0]", 0.0, 1.0),
            _check_real(betas[1], "betas[1]", 0.0, 1.0),
        )
        self.eps = _check_real(eps, "eps", 0.0, open_low=True)
        self.weight_decay = _check_real(weight_decay, "weight_decay", 0.0)
        self.step_count = 0
        self.m: list[np.ndarray] | None = None
        self.v: list[np.ndarray] | None = None

    def step(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray]) -> None:
        """Update ``params`` in place by one Adam step along ``grads`` (which are left unchanged)."""
        _check_step_args(params, grads, self.m)
        if self.m is None or self.v is None:
            self.m = [np.zeros_like(p) for p in params]
            self.v = [np.zeros_like(p) for p in params]
        beta1, beta2 = self.betas
        self.step_count += 1
        t = self.step_count
        # Python floats: NumPy treats them as weak scalars, so float32 buffers stay float32.
        correction1 = 1.0 - beta1**t
        correction2 = 1.0 - beta2**t
        for param, grad, m, v in zip(params, grads, self.m, self.v, strict=True):
            if self.weight_decay:
                param *= 1.0 - self.lr * self.weight_decay  # decoupled: not seen by m and v
            m *= beta1
            m += (1.0 - beta1) * grad
            v *= beta2
            v += (1.0 - beta2) * (grad * grad)
            m_hat = m / correction1
            v_hat = v / correction2
            param -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)

    def config(self) -> dict:
        """The hyperparameters as a JSON-ready dict; ``from_config`` rebuilds the optimiser from it."""
        return {
            "name": self.name,
            "lr": self.lr,
            "betas": list(self.betas),
            "eps": self.eps,
            "weight_decay": self.weight_decay,
        }

    def state_dict(self) -> dict[str, np.ndarray]:
        """The state as arrays: ``step``, ``m0, m1, …`` and ``v0, v1, …`` (once there are moments)."""
        state = {"step": np.array(self.step_count, dtype=np.int64)}
        for k, (m, v) in enumerate(zip(self.m or [], self.v or [], strict=True)):
            state[f"m{k}"] = m.copy()
            state[f"v{k}"] = v.copy()
        return state

    def load_state_dict(
        self, state: Mapping[str, np.ndarray], params: Sequence[np.ndarray] | None = None
    ) -> None:
        """Restore :meth:`state_dict`'s output (copied); with ``params``, check the moments fit them."""
        step = _load_step(state)
        m = _load_buffers(state, "m", params)
        v = _load_buffers(state, "v", params)
        if (m is None) != (v is None) or (m is not None and v is not None and len(m) != len(v)):
            raise ValueError("Adam state needs as many 'm*' arrays as 'v*' arrays")
        _check_no_extra_keys(state, {"step"} | {f"{b}{k}" for b in "mv" for k in range(len(m or []))})
        self.step_count, self.m, self.v = step, m, v

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.config().items() if key != "name")
        return f"Adam({args})"


class StepLR:
    r"""Step decay: the learning rate is multiplied by ``gamma`` every ``step_size`` epochs.

    .. math:: \eta(t) = \eta_0 \, \gamma^{\lfloor t / s \rfloor}

    Examples
    --------
    >>> from kdcore.optim import StepLR
    >>> schedule = StepLR(0.1, step_size=10, gamma=0.5)
    >>> [schedule.lr_at(t) for t in (0, 9, 10, 25)]
    [0.1, 0.1, 0.05, 0.025]
    """

    name = "step"

    def __init__(self, base_lr: float, step_size: int, gamma: float = 0.1) -> None:
        self.base_lr = _check_real(base_lr, "base_lr", 0.0)
        self.step_size = check_int(step_size, "step_size", 1)
        self.gamma = _check_real(gamma, "gamma", 0.0)

    def lr_at(self, t: int) -> float:
        """The learning rate for epoch (or step) ``t``, counted from 0."""
        return self.base_lr * self.gamma ** (int(t) // self.step_size)

    def config(self) -> dict:
        """The arguments as a JSON-ready dict; ``from_config`` rebuilds the schedule from it."""
        return {"name": self.name, "base_lr": self.base_lr, "step_size": self.step_size, "gamma": self.gamma}


class CosineLR:
    r"""Cosine annealing from ``base_lr`` at ``t = 0`` to ``min_lr`` at ``t = total`` (and after).

    .. math::

        \eta(t) = \eta_{\min} + \tfrac12 (\eta_0 - \eta_{\min})
        \bigl(1 + \cos(\pi \min(t, T) / T)\bigr)

    References
    ----------
    .. [1] I. Loshchilov, F. Hutter, "SGDR: stochastic gradient descent with warm restarts", ICLR 2017,
       :arxiv:`1608.03983` (without the restarts).

    Examples
    --------
    >>> from kdcore.optim import CosineLR
    >>> schedule = CosineLR(0.1, total=10)
    >>> [round(schedule.lr_at(t), 12) for t in (0, 5, 10, 20)]
    [0.1, 0.05, 0.0, 0.0]
    """

    name = "cosine"

    def __init__(self, base_lr: float, total: int, min_lr: float = 0.0) -> None:
        self.base_lr = _check_real(base_lr, "base_lr", 0.0)
        self.total = check_int(total, "total", 1)
        self.min_lr = _check_real(min_lr, "min_lr", 0.0)

    def lr_at(self, t: int) -> float:
        """The learning rate for epoch (or step) ``t``, counted from 0."""
        progress = min(max(int(t), 0), self.total) / self.total
        return self.min_lr + 0.5 * (self.base_lr - self.min_lr) * (1.0 + math.cos(math.pi * progress))

    def config(self) -> dict:
        """The arguments as a JSON-ready dict; ``from_config`` rebuilds the schedule from it."""
        return {"name": self.name, "base_lr": self.base_lr, "total": self.total, "min_lr": self.min_lr}


_BY_NAME = {cls.name: cls for cls in (SGD, Adam, StepLR, CosineLR)}


def from_config(config: Mapping[str, object]) -> SGD | Adam | StepLR | CosineLR:
    """Rebuild an optimiser or schedule from its ``config()`` dict (fresh state: load that separately).

    Examples
    --------
    >>> from kdcore.optim import Adam, from_config
    >>> from_config(Adam(lr=0.01).config())
    Adam(lr=0.01, betas=[0.9, 0.999], eps=1e-08, weight_decay=0.0)
    """
    if not isinstance(config, Mapping) or config.get("name") not in _BY_NAME:
        known = ", ".join(repr(name) for name in _BY_NAME)
        raise ValueError(f"config must be a dict whose 'name' is one of {known}, got {_describe(config)}")
    arguments = {key: value for key, value in config.items() if key != "name"}
    if "betas" in arguments:
        arguments["betas"] = tuple(arguments["betas"])  # type: ignore[arg-type]  # JSON has no tuples
    try:
        return _BY_NAME[config["name"]](**arguments)  # type: ignore[index]
    except TypeError as error:  # an unknown or missing key
        raise ValueError(f"config {_describe(config)} does not fit {config['name']!r}: {error}") from None
