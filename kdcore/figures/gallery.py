r"""Every figure at once: :func:`write_all` (``kdcore figures``) and its training :class:`Budget`."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .._arrays import _describe
from ..sweep_file import load_sweep, save_sweep, write_json
from ..sweeps import _log, _resolve_teacher, run_capacity, run_sweep, train_teacher
from .divergences import SHOWN_BETAS, SWEEP_BETAS, divergence_fits, one_peak_fits
from .gradients import gradient_scale, high_temperature_limit
from .soft_targets import dark_knowledge, soft_target_examples
from .student_accuracy import capacity_curve, temperature_sweep
from .style import FORMATS, save_figure
from .temperature import entropy_vs_temperature, temperature_softmax

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["FIGURES", "Budget", "write_all"]

#: The figures :func:`write_all` writes, in order; each is saved as ``<name>.<format>``.
FIGURES = (
    "temperature_softmax",
    "entropy_vs_temperature",
    "gradient_scale",
    "high_temperature_limit",
    "dark_knowledge",
    "temperature_sweep",
    "capacity_curve",
    "divergence_fits",
)


@dataclass(frozen=True)
class Budget:
    """How much training the data-driven figures do in :func:`write_all` (the defaults: < 1 min on 2 cores).

    Attributes
    ----------
    teacher_hidden : tuple of int
        Hidden widths of the quick digits teacher (used when no checkpoint is given).
    teacher_epochs : int
        Epochs of that teacher (about 99 % test accuracy on digits after 40).
    student_epochs : int
        Epochs of every student of the sweep and the capacity curve.
    sweep_temperatures, sweep_alphas, sweep_seeds
        The grid of :func:`~kdcore.sweeps.run_sweep` (used when no sweep file is given).
    sweep_folds : int
        Its evaluation: 1, digits' test split (451 images); k ≥ 2, k-fold cross-validation on all 1,797
        (k times the cost, and a teacher per fold).
    sweep_student_hidden : tuple of int
        Hidden widths of the sweep's student.
    capacity_widths, capacity_seeds
        The students of :func:`run_capacity`.
    capacity_T, capacity_alpha
        The distillation settings of :func:`run_capacity`.
    divergence_betas, divergence_shown, divergence_steps
        The fits of :func:`~kdcore.figures.divergences.one_peak_fits` (about 20 s at the defaults): the
        JSD's β values, those drawn in panel (b), and the optimiser's steps per fit.
    """

    teacher_hidden: tuple[int, ...] = (128,)
    teacher_epochs: int = 40
    student_epochs: int = 20
    sweep_temperatures: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0)
    sweep_alphas: tuple[float, ...] = (0.1, 0.5, 0.9)
    sweep_seeds: tuple[int, ...] = (0,)
    sweep_folds: int = 1
    sweep_student_hidden: tuple[int, ...] = (16,)
    capacity_widths: tuple[int, ...] = (2, 4, 8, 16, 32, 64)
    capacity_seeds: tuple[int, ...] = (0, 1)
    capacity_T: float = 4.0
    capacity_alpha: float = 0.5
    divergence_betas: tuple[float, ...] = SWEEP_BETAS
    divergence_shown: tuple[float, ...] = SHOWN_BETAS
    divergence_steps: int = 400


def write_all(
    out_dir: str | os.PathLike,
    fmt: str = "png",
    checkpoint: str | os.PathLike | None = None,
    sweep_json: str | os.PathLike | None = None,
    *,
    budget: Budget | None = None,
    progress: bool = False,
) -> list[Path]:
    """Write every figure of :data:`FIGURES` to ``out_dir`` (``kdcore figures --out DIR``).

    Parameters
    ----------
    out_dir : str or os.PathLike
        Created if missing. Each figure goes to ``<name>.<fmt>``.
    fmt : {"png", "svg", "pdf"}, default "png"
        File format.
    checkpoint : str or os.PathLike, optional
        A teacher checkpoint (:func:`kdcore.checkpoint.save`). It draws :func:`dark_knowledge` (on its own
        data set); when it is a digits model it is also the teacher of the sweep and of the capacity curve.
        Default: a quick digits teacher is trained (under a second) and shared by the three figures.
    sweep_json : str or os.PathLike, optional
        A sweep file (``kdcore sweep``, :func:`save_sweep`) for :func:`temperature_sweep`. Default: a small
        sweep is run here with the ``budget``'s grid (one seed, about 10 s on digits) and saved beside the
        figures as ``temperature_sweep.json``, so the figure can be redrawn or the sweep extended.
    budget : Budget, optional
        How much training the data-driven figures do; default ``Budget()`` (the whole call takes well
        under a minute on 2 cores).
    progress : bool, default False
        Print a line per figure (and per trained model) to stderr.

    Returns
    -------
    list of pathlib.Path
        The figures, in :data:`FIGURES` order, then the data behind them: ``dark_knowledge.json``
        (:func:`~kdcore.figures.soft_targets.soft_target_examples`), ``capacity_curve.json``
        (:func:`~kdcore.sweeps.run_capacity`), if the sweep was run here ``temperature_sweep.json``, and
        ``divergence_fits.json`` (:func:`~kdcore.figures.divergences.one_peak_fits`).

    Examples
    --------
    Every figure with the smallest budget (a few seconds of training; the drawing takes longer), into a
    temporary folder:

    >>> import tempfile
    >>> from kdcore.figures import FIGURES, Budget, write_all
    >>> tiny = Budget(teacher_hidden=(32,), teacher_epochs=10, student_epochs=1, sweep_temperatures=(4.0,),
    ...               sweep_alphas=(0.5,), sweep_seeds=(0,), sweep_student_hidden=(4,), capacity_widths=(2,),
    ...               capacity_seeds=(0,), divergence_betas=(0.5,), divergence_shown=(0.5,), divergence_steps=5)
    >>> with tempfile.TemporaryDirectory() as out:
    ...     names = [path.name for path in write_all(out, budget=tiny)]
    >>> names[: len(FIGURES)] == [f"{name}.png" for name in FIGURES]
    True
    >>> names[len(FIGURES):]
    ['dark_knowledge.json', 'capacity_curve.json', 'temperature_sweep.json', 'divergence_fits.json']
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(map(repr, FORMATS))}, got fmt={_describe(fmt)}")
    budget = Budget() if budget is None else budget
    # A bad sweep file fails now, not after a minute of drawing and training.
    sweep = None if sweep_json is None else load_sweep(sweep_json)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    started = time.perf_counter()

    def save(name: str, figure: Figure) -> None:
        written.append(save_figure(figure, out / f"{name}.{fmt}", fmt))
        _log(progress, f"figures: wrote {written[-1]} ({time.perf_counter() - started:.1f} s)")

    save("temperature_softmax", temperature_softmax())
    save("entropy_vs_temperature", entropy_vs_temperature())
    save("gradient_scale", gradient_scale())
    save("high_temperature_limit", high_temperature_limit())

    if checkpoint is not None:
        teacher, dataset, _ = _resolve_teacher(checkpoint, None)
    else:
        teacher = train_teacher("digits", budget.teacher_hidden, budget.teacher_epochs, progress=False)
        dataset = "digits"
    # The data behind each data-driven figure is saved beside it as JSON: the gallery's captions are
    # checked against these files (tests/test_figure_captions.py), and a figure can be redrawn from them.
    examples = soft_target_examples(teacher, dataset=dataset)
    data_files = [write_json(examples, out / "dark_knowledge.json")]
    save("dark_knowledge", dark_knowledge(examples))
    # The sweep and the capacity curve are digits experiments (a minute's budget): a teacher for another
    # data set draws the dark-knowledge figure only.
    if dataset != "digits":
        teacher = train_teacher("digits", budget.teacher_hidden, budget.teacher_epochs, progress=False)

    sweep_path = None
    if sweep is None:
        sweep = run_sweep(
            "digits",
            budget.sweep_temperatures,
            budget.sweep_alphas,
            budget.sweep_seeds,
            folds=budget.sweep_folds,
            # Cross-validation trains a teacher per fold: the shared one has seen the images it would test.
            teacher=teacher if budget.sweep_folds == 1 else None,
            teacher_hidden=budget.teacher_hidden,
            teacher_epochs=budget.teacher_epochs,
            student_hidden=budget.sweep_student_hidden,
            epochs=budget.student_epochs,
            progress=progress,
        )
        sweep_path = save_sweep(sweep, out / "temperature_sweep.json")
    save("temperature_sweep", temperature_sweep(sweep))

    capacity = run_capacity(
        budget.capacity_widths,
        dataset="digits",
        teacher=teacher,
        T=budget.capacity_T,
        alpha=budget.capacity_alpha,
        seeds=budget.capacity_seeds,
        epochs=budget.student_epochs,
        progress=progress,
    )
    data_files.append(write_json(capacity, out / "capacity_curve.json"))
    save("capacity_curve", capacity_curve(capacity))
    if sweep_path is not None:
        data_files.append(sweep_path)

    fits = one_peak_fits(budget.divergence_betas, budget.divergence_shown, steps=budget.divergence_steps)
    data_files.append(write_json(fits, out / "divergence_fits.json"))
    save("divergence_fits", divergence_fits(fits))
    return written + data_files
