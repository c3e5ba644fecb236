r"""Figures of what the temperature (and the divergence) does in knowledge distillation, one function per figure.

Every figure function returns a :class:`matplotlib.figure.Figure` (so a notebook can restyle it before
saving) and draws with one house style (:func:`style`, :data:`STYLE`): the Okabe–Ito colour-blind-safe
palette (:data:`OKABE_ITO`), mathtext labels, no seaborn. Cool colours mean low temperatures, warm colours
high ones. This package is the only part of kdcore that imports matplotlib, and it does so lazily, inside
the functions: ``import kdcore`` never needs it. Drawing never changes the caller's rcParams or backend.

==============================  ==============================================================================
figure                          the lesson
==============================  ==============================================================================
:func:`temperature_softmax`     raising :math:`T` flattens the softmax and lifts the small probabilities
                                ("dark knowledge") into view, without changing their order
:func:`entropy_vs_temperature`  :math:`H(\operatorname{softmax}(v/T))` rises from 0 (one-hot, :math:`T\to 0`)
                                to :math:`\log N` (uniform, :math:`T\to\infty`)
:func:`gradient_scale`          the soft gradient :math:`(p - q)/T` shrinks like :math:`1/T^2`; times
                                :math:`T^2` it stays :math:`O(1)`, the size of the hard-label gradient
:func:`high_temperature_limit`  :math:`T^2\,\partial\mathrm{KL}/\partial z \to ((z-\bar z)-(v-\bar v))/N` with
                                an :math:`O(1/T)` error; the paper's :math:`(z - v)/N` needs equal means
:func:`dark_knowledge`          a trained teacher's soft targets on real digits: at :math:`T = 1` one bar,
                                at :math:`T = 4` the look-alike classes
:func:`temperature_sweep`       distilled-student accuracy against :math:`T` and :math:`\alpha`
:func:`capacity_curve`          the "container and water" picture: accuracy against student width,
                                trained on labels alone and distilled
:func:`divergence_fits`         a one-peak student fitted to a two-peak teacher: forward KL covers both
                                peaks, reverse KL locks onto one, :math:`\mathrm{JSD}_\beta` jumps between
==============================  ==============================================================================

The first four are pure computation on a fixed pair of logit vectors (:data:`EXAMPLE_TEACHER_LOGITS`,
:data:`EXAMPLE_STUDENT_LOGITS`) and take well under a second each. The last three draw small
:class:`~kdcore.mlp.MLP` models trained on scikit-learn's digits; the training is in :mod:`kdcore.sweeps`
(:func:`train_teacher`, :func:`run_sweep`, :func:`run_capacity`) and the sweep's file format in
:mod:`kdcore.sweep_file` (:func:`save_sweep`, :func:`load_sweep`). Those names are re-exported here too,
where they were first documented. The eighth, :func:`divergence_fits`, fits a two-parameter student by
each divergence with kdcore's exact gradients (about 20 s). :func:`write_all` draws them all, sharing one
teacher.

======================================  ================================================================
module                                  holds
======================================  ================================================================
:mod:`kdcore.figures.style`             palette, rcParams, :func:`style`, :func:`new_figure`,
                                        :func:`save_figure` (byte-identical files)
:mod:`kdcore.figures.temperature`       :func:`temperature_softmax`, :func:`entropy_vs_temperature`
:mod:`kdcore.figures.gradients`         :func:`gradient_scale`, :func:`high_temperature_limit`
:mod:`kdcore.figures.soft_targets`      :func:`dark_knowledge`
:mod:`kdcore.figures.student_accuracy`  :func:`temperature_sweep`, :func:`capacity_curve`
:mod:`kdcore.figures.divergences`       :func:`divergence_fits`, :func:`one_peak_fits`
:mod:`kdcore.figures.experiment`        :func:`learning_curves`, :func:`confusion_matrix` of
                                        :func:`kdcore.experiment.run`
:mod:`kdcore.figures.gallery`           :func:`write_all` (``kdcore figures``) and its :class:`Budget`
======================================  ================================================================
"""

# The experiments behind the figures, and the sweep file: their home is kdcore.sweeps and
# kdcore.sweep_file; kdcore.figures.<name> stays importable, as documented before the split.
from ..sweep_file import SWEEP_FORMAT, SWEEP_FORMAT_VERSION, load_sweep, save_sweep
from ..sweeps import run_capacity, run_sweep, train_teacher
from .divergences import divergence_fits, one_peak_fits
from .experiment import confusion_matrix, learning_curves, write_experiment_figures
from .gallery import FIGURES, Budget, write_all
from .gradients import gradient_norms, gradient_scale, high_temperature_errors, high_temperature_limit
from .soft_targets import dark_knowledge, dark_knowledge_examples, soft_target_examples
from .student_accuracy import capacity_curve, sweep_summary, temperature_sweep
from .style import FORMATS, MARKERS, OKABE_ITO, STYLE, new_figure, save_figure, style, temperature_colour
from .temperature import (
    EXAMPLE_STUDENT_LOGITS,
    EXAMPLE_TEACHER_LOGITS,
    entropy,
    entropy_vs_temperature,
    temperature_softmax,
)

__all__ = [
    "EXAMPLE_STUDENT_LOGITS",
    "EXAMPLE_TEACHER_LOGITS",
    "FIGURES",
    "FORMATS",
    "MARKERS",
    "OKABE_ITO",
    "STYLE",
    "SWEEP_FORMAT",
    "SWEEP_FORMAT_VERSION",
    "Budget",
    "capacity_curve",
    "confusion_matrix",
    "dark_knowledge",
    "dark_knowledge_examples",
    "divergence_fits",
    "entropy",
    "entropy_vs_temperature",
    "gradient_norms",
    "gradient_scale",
    "high_temperature_errors",
    "high_temperature_limit",
    "learning_curves",
    "load_sweep",
    "new_figure",
    "one_peak_fits",
    "run_capacity",
    "run_sweep",
    "save_figure",
    "save_sweep",
    "soft_target_examples",
    "style",
    "sweep_summary",
    "temperature_colour",
    "temperature_softmax",
    "temperature_sweep",
    "train_teacher",
    "write_all",
    "write_experiment_figures",
]
