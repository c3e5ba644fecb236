r"""Training loop: fit a student :class:`~kdcore.mlp.MLP` to labels, or distil a teacher into it.

One function, :func:`fit`, and the :class:`History` it returns. The loop is deliberately plain — shuffle,
slice a batch, forward, loss gradient, backward, optimiser step — so it can be read on a slide. The
extras it needs to be usable are kept at the edges: a progress bar, a checkpoint after every epoch,
a clean stop on Ctrl-C, and resuming from the last checkpoint.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import checkpoint as checkpoints
from ._arrays import _describe, check_alpha, check_int, check_temperature
from .mlp import MLP
from .optim import SGD, Adam, CosineLR, StepLR

__all__ = ["History", "fit"]

# Rows per forward pass when the whole data set goes through a model in evaluation mode (teacher logits,
# validation accuracy): bounds the memory of the activations without changing the result.
_EVAL_CHUNK = 8192

# Training settings that must agree between a checkpoint and the run that resumes from it, or the resumed
# run would not be the continuation of the interrupted one. The objective's settings matter only with a teacher.
_RESUME_MUST_MATCH = ("seed", "batch_size", "teacher", "n_samples")
_RESUME_MUST_MATCH_WITH_TEACHER = ("T", "alpha", "t2_scaling", "soft")


@dataclass
class History:
    """Per-epoch record of a :func:`fit` run.

    Attributes
    ----------
    loss : list of float
        Mean training loss over each epoch's batches (as seen during the epoch: dropout on, parameters
        moving).
    train_accuracy : list of float
        Fraction of training samples classified correctly by the batch logits the loss was computed on.
    val_accuracy : list of float
        Accuracy on ``(x_val, labels_val)`` after each epoch, evaluation mode; empty without validation data.
    seconds : list of float
        Wall-clock time of each epoch.
    lr : list of float
        The learning rate used in each epoch.
    interrupted : bool
        True if training was stopped by Ctrl-C (KeyboardInterrupt) before the last epoch.
    """

    loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    interrupted: bool = False

    @property
    def epochs(self) -> int:
        """The number of completed epochs."""
        return len(self.loss)

    def appended(
        self, loss: float, train_accuracy: float, val_accuracy: float | None, seconds: float, lr: float
    ) -> History:
        """A new history with one more epoch (``val_accuracy`` None: no validation data)."""
        return History(
            loss=[*self.loss, loss],
            train_accuracy=[*self.train_accuracy, train_accuracy],
            val_accuracy=self.val_accuracy + ([] if val_accuracy is None else [val_accuracy]),
            seconds=[*self.seconds, seconds],
            lr=[*self.lr, lr],
        )

    def to_dict(self) -> dict:
        """A JSON-ready dict (what checkpoints store)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, record: Mapping) -> History:
        """The inverse of :meth:`to_dict`."""
        names = ("loss", "train_accuracy", "val_accuracy", "seconds", "lr")
        if not isinstance(record, Mapping) or any(name not in record for name in names):
            raise ValueError(f"a history needs the keys {names}, got {_describe(record)}")
        return cls(
            **{name: [float(v) for v in record[name]] for name in names},
            interrupted=bool(record.get("interrupted", False)),
        )


def _check_int(value: object, name: str, low: int) -> int:
    return check_int(value, name, low)


def _check_data(model: MLP, x: object, labels: object, x_name: str, labels_name: str):
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{x_name} must hold real numbers, got dtype {x.dtype}")
    if x.ndim != 2 or x.shape[1] != model.sizes[0]:
        raise ValueError(f"{x_name} must have shape (n, {model.sizes[0]}), got shape {x.shape}")
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{labels_name} must be integer class indices, got dtype {labels.dtype}")
    if labels.shape != (x.shape[0],):
        raise ValueError(f"{labels_name} must have shape ({x.shape[0]},), one per row, got {labels.shape}")
    n_classes = model.sizes[-1]
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(
            f"{labels_name} must be in [0, {n_classes}), got values from {labels.min()} to {labels.max()}"
        )
    return x, labels.astype(np.intp, copy=False)


def _eval_logits(model: MLP, x: np.ndarray) -> np.ndarray:
    return np.concatenate(
        [
            model.forward(x[start : start + _EVAL_CHUNK], train=False)
            for start in range(0, len(x), _EVAL_CHUNK)
        ]
    )


def _accuracy(model: MLP, x: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(_eval_logits(model, x), axis=1) == labels))


def _teacher_logits(teacher: object, model: MLP, x: np.ndarray) -> tuple[np.ndarray | None, str | None]:
    """The teacher's logits for all of ``x`` in the student's dtype, and what the teacher was."""
    if teacher is None:
        return None, None
    if isinstance(teacher, MLP):
        if teacher.sizes[0] != model.sizes[0] or teacher.sizes[-1] != model.sizes[-1]:
            raise ValueError(
                f"teacher and student must share inputs and classes, got teacher sizes {list(teacher.sizes)} "
                f"and student sizes {list(model.sizes)}"
            )
        # Once, before training, in evaluation mode: the teacher is fixed, so its logits are a constant of
        # the data set (Hinton et al. 2015, §2), and dropout in the teacher would only add noise.
        logits = _eval_logits(teacher, x.astype(teacher.dtype, copy=False))
        kind = "mlp"
    else:
        logits = np.asarray(teacher)
        if logits.dtype.kind not in "biuf":
            raise TypeError(f"teacher logits must hold real numbers, got dtype {logits.dtype}")
        if logits.shape != (x.shape[0], model.sizes[-1]):
            raise ValueError(
                f"teacher logits must have shape {(x.shape[0], model.sizes[-1])} (one row per sample of x), "
                f"got shape {logits.shape}"
            )
        kind = "logits"
    if not np.all(np.isfinite(logits)):
        raise ValueError("teacher logits must be finite")
    return logits.astype(model.dtype, copy=False), kind


def _progress_bar(enabled: bool, **options):
    """A tqdm bar, or None when progress is off or tqdm is not installed (it is an optional dependency)."""
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(**options)


def fit(
    model: MLP,
    x: np.ndarray,
    labels: np.ndarray,
    teacher: MLP | np.ndarray | None = None,
    *,
    T: float = 4.0,
    alpha: float = 0.5,
    epochs: int = 10,
    batch_size: int = 64,
    optimizer: SGD | Adam | None = None,
    schedule: StepLR | CosineLR | None = None,
    seed: int = 0,
    x_val: np.ndarray | None = None,
    labels_val: np.ndarray | None = None,
    progress: bool = True,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    t2_scaling: bool = True,
    soft: str = "cross_entropy",
    dataset: str | None = None,
) -> History:
    r"""Train ``model`` in place with mini-batch gradient descent, on labels alone or distilling a teacher.

    Parameters
    ----------
    model : MLP
        The student; its parameters are updated in place.
    x : array_like, shape (n, sizes[0])
        Training inputs (cast once to the model's dtype).
    labels : array_like of int, shape (n,)
        Hard labels in ``[0, sizes[-1])``.
    teacher : MLP or array_like, shape (n, sizes[-1]), optional
        None trains on the labels alone (cross-entropy). An :class:`MLP` is run once over all of ``x``, in
        evaluation mode, before training; an array is taken as the teacher's logits for ``x``, row by row.
        Either way the objective is :func:`kdcore.distillation_loss`.
    T : float
        Distillation temperature (> 0).
    alpha : float
        Weight of the hard-label cross-entropy, in [0, 1]; the soft term gets ``1 - alpha``.
    epochs : int
        Total number of epochs (when resuming, including those already done).
    batch_size : int
        Samples per step; the last batch of an epoch may be smaller.
    optimizer : SGD or Adam, optional
        Default ``Adam(lr=1e-3)``. Its state carries over between calls.
    schedule : StepLR or CosineLR, optional
        Sets ``optimizer.lr = schedule.lr_at(epoch)`` at the start of every epoch (counted from 0).
    seed : int
        Seeds the shuffling, ``numpy.random.default_rng(seed)``. The same seed, model and data give
        bitwise the same history and parameters. (Dropout masks come from ``model.dropout_rng``.)
    x_val, labels_val : array_like, optional
        Validation data, both or neither; its accuracy is recorded after every epoch.
    progress : bool
        Show tqdm progress bars (epochs, and batches within one) with the running loss and accuracy, if
        tqdm is installed. ``False`` is silent.
    checkpoint : str or os.PathLike, optional
        Save a checkpoint (:func:`kdcore.checkpoint.save`) here after every completed epoch, atomically.
    resume : bool
        If ``checkpoint`` exists, continue from it: parameters, optimiser state, dropout generator, epoch
        and history are restored, the shuffles of the finished epochs are replayed, and training goes on to
        ``epochs``. The result is bitwise the one of an uninterrupted run. Without a checkpoint file,
        training starts from scratch.
    t2_scaling, soft
        Passed to :func:`kdcore.distillation_loss` (ignored without a teacher).
    dataset : str, optional
        The name of the data set ``x`` comes from, recorded in every checkpoint
        (:attr:`kdcore.checkpoint.Checkpoint.dataset`); resuming from a checkpoint of another data set is
        refused.

    Returns
    -------
    History
        One entry per completed epoch (including resumed ones). On Ctrl-C, ``history.interrupted`` is True.

    Notes
    -----
    Each step minimises, over the batch :math:`B`,

    .. math::

        \frac{1}{|B|} \sum_{i \in B} \Bigl[\alpha\, \mathrm{CE}(y_i, z_i)
        + (1 - \alpha)\, T^2\, \mathrm{soft}(z_i, v_i, T)\Bigr]

    with student logits :math:`z` and teacher logits :math:`v`, or :math:`\mathrm{CE}(y_i, z_i)` alone
    without a teacher. The :math:`T^2` keeps the soft term's gradient, which scales as :math:`1/T^2`, of
    the same size as the hard term's when :math:`T` changes (Hinton et al. 2015, §2).

    **Ctrl-C.** A KeyboardInterrupt during an epoch rolls the model, the optimiser and the dropout
    generator back to the end of the last completed epoch — the state the checkpoint on disk holds — and
    returns the history so far. A half-finished epoch is never saved.

    References
    ----------
    .. [1] G. Hinton, O. Vinyals, J. Dean, "Distilling the knowledge in a neural network",
       NIPS Deep Learning Workshop 2014, :arxiv:`1503.02531`.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore.mlp import MLP
    >>> from kdcore.optim import SGD
    >>> from kdcore.train import fit
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((200, 2))
    >>> labels = (x[:, 0] > 0).astype(int)
    >>> student = MLP([2, 8, 2], seed=0)
    >>> history = fit(student, x, labels, epochs=5, optimizer=SGD(lr=0.5), progress=False)
    >>> history.epochs, history.loss[-1] < history.loss[0], history.train_accuracy[-1] > 0.9
    (5, True, True)
    """
    import kdcore  # at call time: kdcore/__init__.py imports this module, and the losses live there

    if not isinstance(model, MLP):
        raise TypeError(f"model must be a kdcore.mlp.MLP, got {type(model).__name__}")
    x, labels = _check_data(model, x, labels, "x", "labels")
    validate = x_val is not None or labels_val is not None
    if validate:
        if x_val is None or labels_val is None:
            raise ValueError("give both x_val and labels_val, or neither")
        x_val, labels_val = _check_data(model, x_val, labels_val, "x_val", "labels_val")
        x_val = x_val.astype(model.dtype, copy=False)
    T = check_temperature(T)
    alpha = check_alpha(alpha)
    epochs = _check_int(epochs, "epochs", 0)
    batch_size = _check_int(batch_size, "batch_size", 1)
    seed = _check_int(seed, "seed", 0)
    problem = checkpoints._dataset_problem(dataset)
    if problem:
        raise ValueError(f"dataset must be {problem}, got dataset={dataset!r}")
    n = x.shape[0]
    if n == 0:
        raise ValueError("x has no rows to train on")
    # The teacher sees x as given (a float64 teacher gets float64 inputs); the student's copy is cast once
    # here, not batch by batch.
    teacher_logits, teacher_kind = _teacher_logits(teacher, model, x)
    x = x.astype(model.dtype, copy=False)

    config = {
        "T": T,
        "alpha": alpha,
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": seed,
        "t2_scaling": t2_scaling,
        "soft": soft,
        "teacher": teacher_kind,
        "n_samples": n,
        "schedule": None if schedule is None else schedule.config(),
        "dataset": dataset,
    }
    history = History()
    start_epoch = 0
    if resume and checkpoint is not None and Path(checkpoint).exists():
        start_epoch, history, optimizer = _resume(Path(checkpoint), model, optimizer, config)
    if optimizer is None:
        optimizer = Adam(lr=1e-3)
    shuffle_rng = np.random.default_rng(seed)
    for _ in range(start_epoch):  # replay the finished epochs' shuffles, so a resumed run continues exactly
        shuffle_rng.permutation(n)

    def objective(student_logits: np.ndarray, index: np.ndarray) -> tuple[float, np.ndarray]:
        batch_labels = labels[index]
        if teacher_logits is None:
            loss = kdcore.cross_entropy(student_logits, batch_labels, reduction="mean")
            return float(loss), kdcore.cross_entropy_grad(student_logits, batch_labels, reduction="mean")
        args = (student_logits, teacher_logits[index], batch_labels, T, alpha)
        options = {"t2_scaling": t2_scaling, "soft": soft, "reduction": "mean"}
        loss, grad = kdcore.distillation_loss_and_grad(*args, **options)  # one pass for both
        return float(loss), grad

    epoch_bar = _progress_bar(
        progress, total=epochs, initial=start_epoch, desc="epochs", unit="epoch", dynamic_ncols=True
    )
    try:
        for epoch in range(start_epoch, epochs):
            # Where Ctrl-C rolls back to: the end of the last completed epoch (what the checkpoint holds).
            snapshot = (model.get_params(), optimizer.state_dict(), model.dropout_rng.bit_generator.state)
            try:
                started = time.perf_counter()
                if schedule is not None:
                    optimizer.lr = schedule.lr_at(epoch)
                order = shuffle_rng.permutation(n)
                loss, accuracy = _run_epoch(
                    model, optimizer, x, labels, order, batch_size, objective, epoch, progress
                )
                record = history.appended(
                    loss=loss,
                    train_accuracy=accuracy,
                    val_accuracy=_accuracy(model, x_val, labels_val) if validate else None,
                    seconds=time.perf_counter() - started,
                    lr=optimizer.lr,
                )
                if checkpoint is not None:
                    checkpoints.save(
                        checkpoint,
                        model,
                        optimizer,
                        config,
                        epoch=epoch + 1,
                        history=record.to_dict(),
                        dataset=dataset,
                    )
                history = record  # the epoch counts as completed only once its checkpoint is on disk
            except KeyboardInterrupt:
                params, optimizer_state, rng_state = snapshot
                model.set_params(params)
                optimizer.load_state_dict(optimizer_state)
                model.dropout_rng.bit_generator.state = rng_state
                raise
            if epoch_bar is not None:
                postfix = {"loss": f"{loss:.4f}", "acc": f"{accuracy:.3f}"}
                if validate:
                    postfix["val_acc"] = f"{history.val_accuracy[-1]:.3f}"
                epoch_bar.set_postfix(postfix, refresh=False)
                epoch_bar.update(1)
    except KeyboardInterrupt:
        # After the rollback above, the model, optimiser, history and checkpoint all describe the end of the
        # last completed epoch; they also do when Ctrl-C lands between two epochs.
        history.interrupted = True
    finally:
        if epoch_bar is not None:
            epoch_bar.close()
    return history


def _run_epoch(
    model: MLP,
    optimizer: SGD | Adam,
    x: np.ndarray,
    labels: np.ndarray,
    order: np.ndarray,
    batch_size: int,
    objective: Callable[[np.ndarray, np.ndarray], tuple[float, np.ndarray]],
    epoch: int,
    progress: bool,
) -> tuple[float, float]:
    """One pass over the data in ``order``: all of training is here; the rest of ``fit`` is bookkeeping.

    Returns the mean loss and the accuracy over the epoch's batches.
    """
    n = len(order)
    bar = _progress_bar(
        progress, total=math.ceil(n / batch_size), desc=f"epoch {epoch + 1}", unit="batch", leave=False
    )
    loss_sum, correct = 0.0, 0
    try:
        for batch, start in enumerate(range(0, n, batch_size)):
            index = order[start : start + batch_size]
            # The cache is ours alone: nothing else (an evaluation pass, a callback) can overwrite it.
            student_logits, cache = model.forward_with_cache(x[index], train=True)
            loss, dlogits = objective(student_logits, index)
            if not math.isfinite(loss):
                raise FloatingPointError(
                    f"the loss is {loss} at epoch {epoch + 1}, batch {batch + 1}: the learning rate "
                    f"({optimizer.lr}) is probably too high"
                )
            optimizer.step(model.params, model.backward(dlogits, cache))
            model.apply_max_norm()  # a projected step when the model has a max-norm constraint; else nothing

            # Statistics weighted by batch size, so a short last batch counts for what it holds.
            loss_sum += loss * len(index)
            correct += int(np.sum(np.argmax(student_logits, axis=1) == labels[index]))
            if bar is not None:
                seen = start + len(index)
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}", refresh=False)
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return loss_sum / n, correct / n


def _resume(path: Path, model: MLP, optimizer: SGD | Adam | None, config: dict):
    """Load ``path`` into ``model`` (and ``optimizer``); return the start epoch, history and optimiser."""
    saved = checkpoints.load(path)
    for key in ("sizes", "activation", "dropout", "dtype", "input_dropout", "max_norm"):
        if saved.model.config()[key] != model.config()[key]:
            raise ValueError(
                f"cannot resume from {path}: the checkpoint's model has {key}={saved.model.config()[key]!r}, "
                f"this one {key}={model.config()[key]!r}"
            )
    keys = _RESUME_MUST_MATCH + (_RESUME_MUST_MATCH_WITH_TEACHER if config["teacher"] else ())
    for key in keys:
        if saved.config.get(key) != config[key]:
            raise ValueError(
                f"cannot resume from {path}: it was trained with {key}={saved.config.get(key)!r}, "
                f"this run asks for {key}={config[key]!r}"
            )
    if saved.dataset is not None and config["dataset"] is not None and saved.dataset != config["dataset"]:
        raise ValueError(
            f"cannot resume from {path}: it was trained on dataset={saved.dataset!r}, "
            f"this run asks for dataset={config['dataset']!r}"
        )
    if saved.epoch is None or saved.metadata.get("history") is None:
        raise ValueError(f"cannot resume from {path}: it records no epoch or history (not saved by fit)")
    model.set_params(saved.model.params)
    model.dropout_rng.bit_generator.state = saved.model.dropout_rng.bit_generator.state
    if optimizer is None:
        optimizer = saved.optimizer
    elif saved.optimizer is not None:
        if type(optimizer) is not type(saved.optimizer):
            raise ValueError(
                f"cannot resume from {path}: it was trained with {type(saved.optimizer).__name__}, "
                f"this run passes {type(optimizer).__name__}"
            )
        optimizer.load_state_dict(saved.optimizer.state_dict(), params=model.params)
    history = History.from_dict(saved.metadata["history"])
    history.interrupted = False
    return saved.epoch, history, optimizer
