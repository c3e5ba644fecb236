"""kdcore.figures.soft_targets and .student_accuracy: the figures drawn from trained models.

Training budgets are tiny (a teacher of 2 epochs, students of 1): these tests check the plumbing and the
plotted numbers, not accuracy.
"""

import json

import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")  # the digits data set

from kdcore import checkpoint, figures, softmax


def by_label(ax):
    return {line.get_label(): line for line in ax.get_lines()}


class TestDarkKnowledge:
    def test_rows_images_and_soft_targets(self, teacher):
        from kdcore import data

        figure = figures.dark_knowledge(teacher, n_images=3, temperatures=(1.0, 4.0))
        assert len(figure.axes) == 6
        x_test, labels_test = data.load("digits", "test")
        logits = teacher.forward(x_test)
        shown = []
        for image_ax, bars_ax in zip(figure.axes[::2], figure.axes[1::2], strict=True):
            (image,) = image_ax.get_images()
            pixels = image.get_array().ravel()
            index = int(np.flatnonzero(np.all(x_test == pixels, axis=1))[0])
            shown.append(labels_test[index])
            low, high = bars_ax.containers
            np.testing.assert_allclose([b.get_height() for b in low], softmax(logits[index], 1.0), rtol=1e-5)
            np.testing.assert_allclose([b.get_height() for b in high], softmax(logits[index], 4.0), rtol=1e-5)
            assert np.argmax(logits[index]) == labels_test[index]  # only correctly classified images
        assert len(set(shown)) == 3  # one per class

    def test_from_a_checkpoint(self, teacher, tmp_path):
        path = checkpoint.save(tmp_path / "teacher.npz", teacher)
        from_file = figures.dark_knowledge(path, n_images=2)
        in_memory = figures.dark_knowledge(teacher, n_images=2)
        for a, b in zip(from_file.axes[1::2], in_memory.axes[1::2], strict=True):
            assert [bar.get_height() for bar in a.containers[1]] == [
                bar.get_height() for bar in b.containers[1]
            ]

    def test_bad_inputs(self, teacher):
        with pytest.raises(ValueError, match="n_images"):
            figures.dark_knowledge(teacher, n_images=0)
        with pytest.raises(ValueError, match="does not fit"):
            figures.dark_knowledge(teacher, dataset="synthetic")
        with pytest.raises(TypeError, match="teacher"):
            figures.dark_knowledge(teacher=3)


class TestTemperatureSweep:
    def test_lines_and_heat_map(self, sweep, tmp_path):
        figure = figures.temperature_sweep(figures.save_sweep(sweep, tmp_path / "s.json"))
        line_ax, heat_ax = figure.axes[:2]
        lines = by_label(line_ax)
        accuracy = np.array(sweep["accuracy"])[::-1, ::-1]  # sorted by T and by alpha for plotting
        np.testing.assert_allclose(lines[r"distilled, $\alpha = 0$"].get_xdata(), [1.0, 4.0])
        np.testing.assert_allclose(lines[r"distilled, $\alpha = 0$"].get_ydata(), accuracy[:, 0].mean(axis=1))
        np.testing.assert_allclose(
            lines[r"distilled, $\alpha = 0.5$"].get_ydata(), accuracy[:, 1].mean(axis=1)
        )
        np.testing.assert_allclose(lines["labels only"].get_ydata(), np.mean(sweep["baseline_accuracy"]))
        np.testing.assert_allclose(lines["teacher"].get_ydata(), sweep["teacher"]["test_accuracy"])
        (image,) = heat_ax.get_images()
        np.testing.assert_allclose(image.get_array(), accuracy.mean(axis=2).T)
        assert line_ax.get_xscale() == "log"
        assert len(figure.legends) == 1

    def test_equal_seeds_draw(self, sweep):
        # Regression: three equal accuracies have a mean an ulp away from them; error bars must not go negative.
        record = json.loads(json.dumps(sweep))
        record["seeds"] = [0, 1, 2]
        record["baseline_accuracy"] = [0.1, 0.1, 0.1]
        record["accuracy"] = [[[0.1, 0.1, 0.1] for _ in row] for row in record["accuracy"]]
        assert np.mean([0.1, 0.1, 0.1]) != 0.1
        figures.temperature_sweep(record)

    def test_one_seed_has_no_error_bars(self, sweep):
        record = json.loads(json.dumps(sweep))
        record["seeds"] = [0]
        record["baseline_accuracy"] = record["baseline_accuracy"][:1]
        record["accuracy"] = [[cell[:1] for cell in row] for row in record["accuracy"]]
        line_ax = figures.temperature_sweep(record).axes[0]
        assert len(line_ax.collections) == 0  # no error bars, no baseline band
        assert "one seed" in line_ax.figure.get_suptitle()

    def test_invalid_record(self):
        with pytest.raises(ValueError, match="the sweep"):
            figures.temperature_sweep({"format": "kdcore-sweep"})


class TestCapacityCurve:
    def test_plotted_means(self, capacity):
        (ax,) = figures.capacity_curve(capacity).axes
        labels_only, distilled, teacher_line = ax.get_lines()
        np.testing.assert_allclose(labels_only.get_ydata(), np.mean(capacity["labels_only"], axis=1))
        np.testing.assert_allclose(distilled.get_ydata(), np.mean(capacity["distilled"], axis=1))
        np.testing.assert_allclose(teacher_line.get_ydata(), capacity["teacher_accuracy"])
        assert distilled.get_label() == r"distilled ($T = 4$, $\alpha = 0.5$)"
        assert ax.get_xscale() == "log"
        assert len(ax.collections) == 2  # the seeds' ranges

    def test_result_or_options(self, capacity):
        with pytest.raises(TypeError, match="either"):
            figures.capacity_curve(capacity, widths=(2,))
