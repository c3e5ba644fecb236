"""kdcore.figures.style: the house style as a context, reproducible files, no process-wide change."""

import hashlib
import subprocess
import sys

import pytest

pytest.importorskip("matplotlib")

from kdcore import figures


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


# What matplotlib would otherwise write into each format: a timestamp, or its name and version.
STAMPS = {
    "png": [b"Software", b"atplotlib"],
    "svg": [b"<dc:date>", b"atplotlib v"],
    "pdf": [b"CreationDate", b"Producer", b"atplotlib"],
}


class TestDeterminism:
    @pytest.mark.parametrize("fmt", ["png", "svg", "pdf"])
    def test_same_figure_twice_gives_identical_bytes(self, tmp_path, fmt):
        first = figures.save_figure(figures.high_temperature_limit(), tmp_path / f"a.{fmt}")
        second = figures.save_figure(figures.high_temperature_limit(), tmp_path / f"b.{fmt}")
        assert sha256(first) == sha256(second)
        content = first.read_bytes()
        assert not [stamp for stamp in STAMPS[fmt] if stamp in content]

    def test_format_from_suffix_and_bad_format(self, tmp_path):
        figure = figures.new_figure(1.0, 1.0)
        assert figures.save_figure(figure, tmp_path / "g.svg").read_text().startswith("<?xml")
        with pytest.raises(ValueError, match="fmt"):
            figures.save_figure(figure, tmp_path / "g.jpg")


class TestStyle:
    def test_caller_rcparams_untouched(self):
        import matplotlib

        before = dict(matplotlib.rcParams)
        figures.temperature_softmax()
        assert dict(matplotlib.rcParams) == before

    def test_style_applies_inside_and_restores_after_an_error(self):
        import matplotlib

        before = dict(matplotlib.rcParams)
        with pytest.raises(RuntimeError), figures.style():
            assert matplotlib.rcParams["font.size"] == figures.STYLE["font.size"]
            colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
            assert colours[:2] == [figures.temperature_colour(0), figures.temperature_colour(1)]
            raise RuntimeError
        assert dict(matplotlib.rcParams) == before

    @pytest.mark.parametrize(
        "draw",
        [
            figures.temperature_softmax,
            figures.entropy_vs_temperature,
            figures.gradient_scale,
            figures.high_temperature_limit,
        ],
    )
    def test_every_figure_is_drawn_in_the_house_style(self, draw):
        # Regression: a figure function that lost its style decorator draws with matplotlib's defaults.
        for ax in draw().axes:
            assert not ax.spines["top"].get_visible()
            assert ax.title.get_fontsize() == figures.STYLE["axes.titlesize"]

    def test_new_figure_is_outside_pyplot(self):
        import matplotlib

        backend = matplotlib.get_backend()
        figure = figures.new_figure(2.0, 1.0)
        assert figure.canvas.get_renderer() is not None  # its own Agg canvas
        assert matplotlib.get_backend() == backend
        if "matplotlib.pyplot" in sys.modules:
            assert figure not in [manager.canvas.figure for manager in _pyplot_managers()]

    def test_palette_is_okabe_ito(self):
        assert figures.OKABE_ITO["vermillion"] == "#D55E00" and len(figures.OKABE_ITO) == 8
        assert len(figures.MARKERS) == len(set(figures.MARKERS))


def _pyplot_managers():
    from matplotlib._pylab_helpers import Gcf

    return Gcf.get_all_fig_managers()


def test_only_the_figures_package_imports_matplotlib():
    modules = (
        "kdcore, kdcore.train, kdcore.data, kdcore.experiment, kdcore.sweeps, kdcore.sweep_file, kdcore.cli"
    )
    code = f"import sys, {modules}; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
