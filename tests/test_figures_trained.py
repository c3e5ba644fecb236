"""kdcore.figures.soft_targets and .student_accuracy: the figures drawn from trained models.

Training budgets are tiny (a teacher of 2 epochs, students of 1): these tests check the plumbing and the
plotted numbers, not accuracy.
"""

import json

import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")  # the digits data set

from kdcore import checkpoint, figures, softmax, sweep_file
from kdcore.figures.soft_targets import INVISIBLE, dark_knowledge_examples, soft_target_examples


def by_label(ax):
    return {line.get_label(): line for line in ax.get_lines()}


class TestDarkKnowledgeExamples:
    def test_the_rule(self, rng):
        logits = rng.normal(size=(400, 10)) * 4
        labels = np.argmax(logits, axis=1)
        labels[:50] = (labels[:50] + 1) % 10  # some misclassified images
        chosen = dark_knowledge_examples(logits, labels, (1.0, 4.0), n_images=5)
        low, high = softmax(logits, 1.0), softmax(logits, 4.0)
        runner_up_low, runner_up_high = np.sort(low, axis=1)[:, -2], np.sort(high, axis=1)[:, -2]
        assert len(chosen) == 5 and len({labels[i] for i in chosen}) == 5  # one per class
        for index in chosen:
            assert np.argmax(logits[index]) == labels[index]  # classified correctly
            assert runner_up_low[index] < INVISIBLE  # the look-alike is hidden at T = 1
            # ... and no other qualifying image of its class shows a bigger one at T = 4
            same_class = (np.argmax(logits, axis=1) == labels) & (labels == labels[index])
            assert runner_up_high[index] == runner_up_high[same_class & (runner_up_low < INVISIBLE)].max()
        shown = [runner_up_high[i] for i in chosen]
        assert shown == sorted(shown, reverse=True)  # the most revealing first

    def test_nothing_hidden_to_reveal(self):
        logits = np.array([[2.0, 1.5, 0.0], [0.0, 2.0, 1.8]])  # runner-ups of 34 % and 45 % at T = 1
        with pytest.raises(ValueError, match="no hidden look-alike"):
            dark_knowledge_examples(logits, np.array([0, 1]))


class TestDarkKnowledge:
    def test_rows_images_and_soft_targets(self, sure_teacher):
        from kdcore import data

        figure = figures.dark_knowledge(sure_teacher, n_images=3, temperatures=(1.0, 4.0))
        assert len(figure.axes) == 9  # three rows: image, linear axis, log axis
        x_test, labels_test = data.load("digits", "test")
        logits = sure_teacher.forward(x_test)
        shown = []
        for image_ax, linear_ax, log_ax in zip(*[iter(figure.axes)] * 3, strict=True):
            (image,) = image_ax.get_images()
            pixels = image.get_array().ravel()
            index = int(np.flatnonzero(np.all(x_test == pixels, axis=1))[0])
            shown.append(labels_test[index])
            assert (linear_ax.get_yscale(), log_ax.get_yscale()) == ("linear", "log")
            for ax in (linear_ax, log_ax):
                low, high = ax.containers
                np.testing.assert_allclose(
                    [b.get_height() for b in low], softmax(logits[index], 1.0), rtol=1e-5
                )
                np.testing.assert_allclose(
                    [b.get_height() for b in high], softmax(logits[index], 4.0), rtol=1e-5
                )
            assert np.argmax(logits[index]) == labels_test[index]  # only correctly classified images
            assert np.sort(softmax(logits[index], 1.0))[-2] < INVISIBLE  # nothing to see at T = 1 ...
            (note,) = linear_ax.texts  # ... the look-alike named where it appears at T = 4
            look_alike = int(np.argsort(softmax(logits[index], 4.0))[-2])
            assert note.get_text().startswith(f"like a {look_alike}: ")
        assert len(set(shown)) == 3  # one per class

    def test_from_a_checkpoint_and_from_its_record(self, sure_teacher, tmp_path):
        path = checkpoint.save(tmp_path / "teacher.npz", sure_teacher)
        record = soft_target_examples(sure_teacher, n_images=2)
        again = json.loads(json.dumps(record))  # as saved beside the figure by write_all
        figures_ = [figures.dark_knowledge(path, n_images=2), figures.dark_knowledge(again)]
        for a, b in zip(*[figure.axes[1::3] for figure in figures_], strict=True):
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
        with pytest.raises(ValueError, match="low < high"):
            figures.dark_knowledge(teacher, temperatures=(4.0, 1.0))
        with pytest.raises(ValueError, match="soft_target_examples"):
            figures.dark_knowledge({"temperatures": [1.0, 4.0]})


class TestTemperatureSweep:
    def test_lines_and_heat_map(self, sweep, tmp_path):
        figure = figures.temperature_sweep(sweep_file.save_sweep(sweep, tmp_path / "s.json"))
        line_ax, heat_ax = figure.axes[:2]
        lines = by_label(line_ax)
        accuracy = np.array(sweep["accuracy"])[::-1, ::-1]  # sorted by T and by alpha for plotting
        baseline = np.array(sweep["baseline_accuracy"])
        np.testing.assert_allclose(lines[r"distilled, $\alpha = 0$"].get_xdata(), [1.0, 4.0])
        np.testing.assert_allclose(lines[r"distilled, $\alpha = 0$"].get_ydata(), accuracy[:, 0].mean(axis=1))
        np.testing.assert_allclose(
            lines[r"distilled, $\alpha = 0.5$"].get_ydata(), accuracy[:, 1].mean(axis=1)
        )
        np.testing.assert_allclose(lines["labels only"].get_ydata(), baseline.mean())
        np.testing.assert_allclose(lines["teacher"].get_ydata(), sweep["teacher"]["test_accuracy"])
        # (b): the gain over labels only, paired by seed, in points
        (image,) = heat_ax.get_images()
        gain = 100 * (accuracy - baseline).mean(axis=2)
        np.testing.assert_allclose(image.get_array(), gain.T, rtol=1e-12)
        lead = 100 * max(sweep["teacher"]["test_accuracy"] - baseline.mean(), np.abs(gain).max() / 100)
        assert image.get_clim() == pytest.approx((-lead, lead))  # symmetric: zero gain is the pale middle
        assert line_ax.get_xscale() == "log"
        assert len(figure.legends) == 1

    def test_error_bars_are_standard_errors_over_the_seeds(self, sweep):
        line_ax = figures.temperature_sweep(sweep).axes[0]
        accuracy = np.array(sweep["accuracy"])[::-1, ::-1]
        expected = accuracy.std(axis=2, ddof=1) / np.sqrt(accuracy.shape[2])
        bars = [c for c in line_ax.collections if c.get_segments() and len(c.get_segments()) == 2]
        lengths = sorted(
            round((segment[1][1] - segment[0][1]) / 2, 12) for c in bars for segment in c.get_segments()
        )
        assert lengths == sorted(np.round(expected.ravel(), 12))

    def test_tick_labels_say_their_value(self, sweep):
        # Regression: one fixed decimal printed the tick at 97.75 % as "97.8%", next to a real 97.8 %.
        line_ax = figures.temperature_sweep(sweep).axes[0]
        line_ax.set_ylim(0.97, 0.98)
        line_ax.set_yticks([0.9725, 0.975, 0.9775])  # where a narrow range puts them
        line_ax.figure.canvas.draw()
        for value, label in zip(line_ax.get_yticks(), line_ax.get_yticklabels(), strict=True):
            assert float(label.get_text().rstrip("%")) == pytest.approx(100 * value, abs=1e-9)

    def test_states_the_evaluation_set(self, sweep):
        assert "test split of 451 images, each once per seed: one image = 0.22 points" in (
            figures.temperature_sweep(sweep).get_suptitle()
        )
        record = dict(sweep, evaluation={"folds": 4, "images": 1797})
        assert (
            "4-fold cross-validation on all 1,797 images" in figures.temperature_sweep(record).get_suptitle()
        )
        assert "0.056 points" in figures.temperature_sweep(record).get_suptitle()
        old = dict(sweep, format_version=1)
        del old["evaluation"]
        assert "size not recorded" in figures.temperature_sweep(old).get_suptitle()

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
        assert "one seed" in line_ax.get_title(loc="left")

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
        assert f"{capacity['test_images']} test images" in ax.get_title(loc="left")

    def test_result_or_options(self, capacity):
        with pytest.raises(TypeError, match="either"):
            figures.capacity_curve(capacity, widths=(2,))
