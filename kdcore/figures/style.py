r"""The house style of kdcore's figures: the palette, the rcParams, a fresh figure, a reproducible save.

Every kdcore figure is drawn inside :func:`style` (a ``matplotlib.rc_context``: the caller's rcParams are
restored afterwards and nothing process-wide changes — no backend is switched, no pyplot state is made) on
a :class:`~matplotlib.figure.Figure` with its own Agg canvas (:func:`new_figure`). Other code that wants
the same look — docs/results.md's figures, a notebook — uses the same two::

    from kdcore.figures import OKABE_ITO, new_figure, save_figure, style

    with style():
        figure = new_figure(5.2, 3.4)
        ax = figure.subplots()
        ax.plot([1, 2, 3], color=OKABE_ITO["blue"])
    save_figure(figure, "mine.png")

Determinism
-----------
The same inputs give byte-identical files: :func:`save_figure` strips the timestamps and version strings
matplotlib writes by default (PNG ``Software``; SVG ``Date`` and ``Creator``; PDF ``CreationDate``,
``Creator`` and ``Producer``) and fixes ``svg.hashsalt``, which otherwise salts the SVG element ids
with a random number.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from .._arrays import _describe

if TYPE_CHECKING:  # matplotlib is imported lazily, when a figure is drawn
    from matplotlib.figure import Figure

__all__ = [
    "FORMATS",
    "MARKERS",
    "OKABE_ITO",
    "STYLE",
    "new_figure",
    "save_figure",
    "style",
    "temperature_colour",
]

#: The Okabe–Ito palette (Okabe & Ito 2008, "Color Universal Design"): distinguishable under the common
#: colour-vision deficiencies and in greyscale print. Yellow is kept for completeness but not used on white.
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
}

# Low temperatures cool, high temperatures warm; markers differ too, so colour is never the only cue.
_TEMPERATURE_COLOURS = ("blue", "sky_blue", "green", "orange", "vermillion", "purple", "black")
#: Markers in the same order as the temperature colours, so colour is never the only cue.
MARKERS = ("o", "s", "D", "^", "v", "P", "X")

#: The rcParams every figure is drawn with (applied with ``matplotlib.rc_context``, so the caller's own
#: settings are left alone).
STYLE = {
    "font.size": 9.0,
    "axes.titlesize": 9.5,
    "axes.labelsize": 9.0,
    "legend.fontsize": 8.0,
    "xtick.labelsize": 8.0,
    "ytick.labelsize": 8.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#DDDDDD",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "lines.linewidth": 1.6,
    "lines.markersize": 4.5,
    "legend.frameon": False,
    "mathtext.fontset": "dejavusans",
    "axes.prop_cycle": None,  # filled in by style(): the Okabe–Ito order
    "savefig.dpi": 200,
    "svg.hashsalt": "kdcore",  # SVG element ids from a fixed salt: byte-identical files
    "svg.fonttype": "path",
    "pdf.fonttype": 42,
    "image.cmap": "cividis",  # perceptually uniform and colour-blind-safe
}

#: The file formats :func:`save_figure` and :func:`~kdcore.figures.write_all` write.
FORMATS = ("png", "svg", "pdf")

# Metadata that would make two runs differ (timestamps) or tie a file to a version: dropped.
_METADATA = {
    "png": {"Software": None},
    "svg": {"Date": None, "Creator": None},
    "pdf": {"CreationDate": None, "Creator": None, "Producer": None},
}


def _matplotlib():
    """Import matplotlib (lazily: only the figures modules need it) and return it."""
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError(
            "kdcore.figures needs matplotlib, which is not installed: pip install 'kdcore[plot]'"
        ) from error
    return matplotlib


@contextlib.contextmanager
def style() -> Iterator[None]:
    """Draw inside kdcore's house style: :data:`STYLE` with the Okabe–Ito colour cycle.

    A ``matplotlib.rc_context``: the rcParams in force before are restored on exit, even after an error,
    so the caller's own settings are never changed.

    Examples
    --------
    >>> import matplotlib
    >>> from kdcore.figures import style
    >>> before = matplotlib.rcParams["font.size"]
    >>> with style():
    ...     matplotlib.rcParams["font.size"]
    9.0
    >>> matplotlib.rcParams["font.size"] == before
    True
    """
    matplotlib = _matplotlib()
    from cycler import cycler  # a matplotlib dependency

    params = dict(STYLE)
    params["axes.prop_cycle"] = cycler(color=[OKABE_ITO[name] for name in _TEMPERATURE_COLOURS])
    with matplotlib.rc_context(params):
        yield


def _styled(draw):
    """Run a figure-drawing function inside :func:`style`."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with style():
            return draw(*args, **kwargs)

    return wrapper


def new_figure(width: float, height: float) -> Figure:
    """A new figure of ``width`` × ``height`` inches on its own Agg canvas, outside pyplot.

    No pyplot figure manager holds it (no global state, no "too many figures" warning, nothing to close),
    and the backend in use is not touched. Create it inside :func:`style` for the house look.

    Examples
    --------
    >>> from kdcore.figures import new_figure
    >>> new_figure(4.0, 3.0).get_size_inches().tolist()
    [4.0, 3.0]
    """
    _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def temperature_colour(index: int) -> str:
    """The colour of the ``index``-th temperature (or other ordered setting): cool first, then warm.

    Examples
    --------
    >>> from kdcore.figures import temperature_colour
    >>> temperature_colour(0), temperature_colour(4)
    ('#0072B2', '#D55E00')
    """
    return OKABE_ITO[_TEMPERATURE_COLOURS[index % len(_TEMPERATURE_COLOURS)]]


def _marker(index: int) -> str:
    return MARKERS[index % len(MARKERS)]


def _percent(decimals: int | None = None):
    """A tick formatter showing fractions in [0, 1] as percentages."""
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(xmax=1.0, decimals=decimals)


def _percent_shortest():
    """A tick formatter showing fractions as percentages with as few digits as each needs: 97.75 % stays
    "97.75%" and 98 % is "98%" (a fixed number of decimals either rounds ticks or pads them with zeros)."""
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda value, _: f"{100 * value:.6g}%")


def _format_number(value: float) -> str:
    """2.0 -> "2", 0.5 -> "0.5": temperatures and weights as a reader writes them."""
    return f"{value:g}"


def save_figure(figure: Figure, path: str | os.PathLike, fmt: str | None = None) -> Path:
    """Save ``figure`` to ``path`` deterministically: the same figure gives a byte-identical file.

    Parameters
    ----------
    figure : matplotlib.figure.Figure
        Any figure (not only kdcore's).
    path : str or os.PathLike
        The file to write; its directory must exist.
    fmt : {"png", "svg", "pdf"}, optional
        Default: the suffix of ``path``.

    Returns
    -------
    pathlib.Path
        ``path``.

    Notes
    -----
    matplotlib stamps files with the time and its version; both are removed here (see the module
    docstring), and SVG ids are drawn from the fixed salt ``svg.hashsalt = "kdcore"``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from kdcore.figures import new_figure, save_figure, style
    >>> with style():
    ...     figure = new_figure(3.0, 2.0)
    ...     _ = figure.subplots().plot([1, 2, 3], [1, 4, 9])
    >>> with tempfile.TemporaryDirectory() as directory:
    ...     first = save_figure(figure, pathlib.Path(directory) / "a.png").read_bytes()
    ...     second = save_figure(figure, pathlib.Path(directory) / "b.png").read_bytes()
    >>> first == second  # no timestamp: the same figure, the same bytes
    True
    """
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() if fmt is None else fmt
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(map(repr, FORMATS))}, got fmt={_describe(fmt)}")
    matplotlib = _matplotlib()
    with matplotlib.rc_context({"svg.hashsalt": STYLE["svg.hashsalt"], "svg.fonttype": "path"}):
        figure.savefig(path, format=fmt, dpi=STYLE["savefig.dpi"], metadata=_METADATA[fmt])
    return path
