"""kdcore.figures.experiment: the learning curves and confusion matrix of kdcore.experiment.run.

The drawing moved here from kdcore.experiment, which used to call ``matplotlib.use("Agg")`` and pyplot:
``run()`` switched the caller's backend. The last test pins that it no longer does.
"""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from kdcore import figures


def results_with(histories_baseline, histories_distilled, teacher_accuracy=0.9):
    return {
        "dataset": "digits",
        "T": 4.0,
        "teacher": {"test_accuracy": teacher_accuracy},
        "student_baseline": {"sizes": [64, 10, 10], "histories": histories_baseline},
        "student_distilled": {"sizes": [64, 10, 10], "histories": histories_distilled},
    }


class TestLearningCurves:
    def test_means_over_seeds_in_percent(self):
        baseline = [[0.2, 0.6, 0.8], [0.4, 0.7, 0.9]]
        distilled = [[0.3, 0.8, 0.9], [0.5, 0.9, 0.95]]
        (ax,) = figures.learning_curves(results_with(baseline, distilled)).axes
        labels_only, kd, teacher = ax.get_lines()
        np.testing.assert_allclose(labels_only.get_ydata(), np.mean(baseline, axis=0) * 100)
        np.testing.assert_allclose(kd.get_ydata(), np.mean(distilled, axis=0) * 100)
        np.testing.assert_allclose(teacher.get_ydata(), 90.0)
        np.testing.assert_allclose(labels_only.get_xdata(), [1, 2, 3])
        assert kd.get_label() == "distilled ($T = 4$)"
        assert len(ax.collections) == 2  # the seeds' ranges

    def test_zooms_on_the_later_epochs(self):
        # The first third of the epochs climbs from chance: it is not allowed to squash the rest.
        curves = [[0.1, 0.5, 0.95, 0.96, 0.97, 0.97]]
        (ax,) = figures.learning_curves(results_with(curves, curves)).axes
        assert ax.get_ylim() == (93.0, 100.0)

    def test_no_history(self):
        with pytest.raises(ValueError, match="histories"):
            figures.learning_curves(results_with([[]], [[]]))


class TestConfusionMatrix:
    def test_counts(self):
        labels = np.array([0, 0, 1, 2, 2, 2])
        predicted = np.array([0, 1, 1, 2, 0, 2])
        (ax, _colour_bar) = figures.confusion_matrix(labels, predicted).axes
        counts = ax.get_images()[0].get_array()
        np.testing.assert_array_equal(counts, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
        assert counts.sum() == labels.size
        # The non-zero counts are written in their cells (a lone mistake is invisible in colour alone).
        written = {(text.get_position(), text.get_text()) for text in ax.texts}
        assert written == {((0, 0), "1"), ((1, 0), "1"), ((1, 1), "1"), ((0, 2), "1"), ((2, 2), "2")}

    @pytest.mark.parametrize(
        ("labels", "predicted"),
        [([0, 1], [0]), ([0.5, 1.0], [0, 1]), ([-1, 0], [0, 0]), ([], [])],
    )
    def test_bad_input(self, labels, predicted):
        with pytest.raises(ValueError, match=r"labels|predicted"):
            figures.confusion_matrix(np.asarray(labels), np.asarray(predicted))


def test_run_leaves_the_callers_backend_and_rcparams_alone(tmp_path):
    """A caller on another backend (here: svg) keeps it after ``experiment.run`` wrote its figures."""
    pytest.importorskip("sklearn")
    code = textwrap.dedent(
        f"""
        import json, sys
        from dataclasses import replace
        import matplotlib
        matplotlib.use("svg")
        before = {{key: str(value) for key, value in matplotlib.rcParams.items()}}
        from kdcore.experiment import DEMO, run
        quick = replace(DEMO, teacher_hidden=(16,), teacher_epochs=1, student_epochs=1, seeds=(0,),
                        omit_class=None)
        run(quick, {str(tmp_path)!r}, progress=False)
        after = {{key: str(value) for key, value in matplotlib.rcParams.items()}}
        changed = sorted(key for key in before if before[key] != after[key])
        print(json.dumps({{"backend": matplotlib.get_backend(), "changed": changed,
                           "pyplot": "matplotlib.pyplot" in sys.modules}}))
        """
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report == {"backend": "svg", "changed": [], "pyplot": False}
    assert (tmp_path / "learning_curves.png").stat().st_size > 10_000
    assert (tmp_path / "confusion.png").stat().st_size > 10_000
