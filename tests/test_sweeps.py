"""kdcore.sweeps: the quick teacher, the (T, α) sweep and the width sweep behind the figures."""

import json

import numpy as np
import pytest

pytest.importorskip("sklearn")  # the digits data set

from kdcore import figures, sweep_file, sweeps


class TestRunSweep:
    def test_record(self, sweep):
        assert sweep["format"] == sweep_file.SWEEP_FORMAT and sweep["format_version"] == 2
        assert sweep["evaluation"] == {"folds": 1, "images": 451}  # digits' test split
        assert (
            sweep["temperatures"] == [4.0, 1.0] and sweep["alphas"] == [0.5, 0.0] and sweep["seeds"] == [0, 1]
        )
        assert np.shape(sweep["accuracy"]) == (2, 2, 2)
        assert len(sweep["baseline_accuracy"]) == 2
        assert sweep["teacher"]["sizes"] == [64, 16, 10]
        assert sweep["student"]["sizes"] == [64, 4, 10]
        values = np.array(sweep["accuracy"])
        assert np.all((values >= 0) & (values <= 1))
        json.dumps(sweep, allow_nan=False)  # JSON-ready as it is

    def test_the_seeds_reproduce(self, teacher, sweep):
        again = sweeps.run_sweep(
            temperatures=[4.0], alphas=[0.5], seeds=[1], teacher=teacher, student_hidden=(4,), epochs=1
        )
        assert again["accuracy"][0][0][0] == sweep["accuracy"][0][0][1]
        assert again["baseline_accuracy"][0] == sweep["baseline_accuracy"][1]

    def test_cross_validation_evaluates_every_image_once(self):
        sweep = sweeps.run_sweep(
            temperatures=[4.0], alphas=[0.5], seeds=[0], folds=3, teacher_hidden=(16,), teacher_epochs=2,
            student_hidden=(4,), epochs=1,
        )  # fmt: skip
        assert sweep["evaluation"] == {"folds": 3, "images": 1797}
        # Pooled over the folds, each accuracy is a whole number of the 1,797 images.
        for value in [
            sweep["accuracy"][0][0][0],
            sweep["baseline_accuracy"][0],
            sweep["teacher"]["test_accuracy"],
        ]:
            assert value * 1797 == pytest.approx(round(value * 1797), abs=1e-9)

    def test_cross_validation_refuses_a_given_teacher(self, teacher):
        with pytest.raises(ValueError, match="teacher per fold"):
            sweeps.run_sweep(folds=2, teacher=teacher)

    # kdcore's one error rule (kdcore/_arrays.py): a wrong value is a ValueError, a wrong type a TypeError.
    @pytest.mark.parametrize(
        ("folds", "error"), [(0, ValueError), (21, ValueError), (2.0, TypeError), (True, TypeError)]
    )
    def test_bad_folds(self, folds, error):
        with pytest.raises(error, match="folds"):
            sweeps.run_sweep(folds=folds)


class TestStratifiedFolds:
    def test_a_partition_with_the_class_mix(self, rng):
        labels = rng.integers(0, 10, size=1797)
        parts = sweeps.stratified_folds(labels, 4)
        assert sorted(np.concatenate(parts).tolist()) == list(range(1797))  # every image exactly once
        sizes = [len(part) for part in parts]
        assert max(sizes) - min(sizes) <= 1
        for label in range(10):
            per_fold = [np.sum(labels[part] == label) for part in parts]
            assert max(per_fold) - min(per_fold) <= 1

    def test_fixed_by_the_seed(self):
        labels = np.arange(100) % 3
        first, second = sweeps.stratified_folds(labels, 5), sweeps.stratified_folds(labels, 5)
        assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
        assert not all(
            np.array_equal(a, b)
            for a, b in zip(first, sweeps.stratified_folds(labels, 5, seed=1), strict=True)
        )


class TestRunCapacity:
    def test_record(self, capacity):
        assert capacity["widths"] == [2, 4]
        assert np.shape(capacity["labels_only"]) == np.shape(capacity["distilled"]) == (2, 2)
        assert capacity["n_params"] == [64 * 2 + 2 + 2 * 10 + 10, 64 * 4 + 4 + 4 * 10 + 10]
        assert capacity["test_images"] == 451

    def test_bad_widths(self, teacher):
        with pytest.raises(ValueError, match="widths"):
            sweeps.run_capacity(widths=(0,), teacher=teacher)


class TestDatasetOfACheckpoint:
    """A checkpoint records no data set: it is told from the model's input size."""

    @staticmethod
    def reader_of_first_pixels():
        # A linear 784-input model whose logits are the first 10 pixels.
        from kdcore.mlp import MLP

        model = MLP([784, 10], seed=0, dtype=np.float64)
        model.params[0][...] = 0
        model.params[0][np.arange(10), np.arange(10)] = 1
        return model

    @staticmethod
    def fake_loader(right, available=("mnist", "fashion-mnist")):
        def load(name, split="train", **_):
            if name not in available:
                raise FileNotFoundError(name)
            labels = np.arange(20) % 10
            shown = labels if name == right else (labels + 1) % 10
            return np.eye(784)[shown], labels

        return load

    @pytest.mark.parametrize("right", ["mnist", "fashion-mnist"])
    def test_784_inputs_pick_the_data_set_the_model_reads(self, monkeypatch, right):
        from kdcore import data

        monkeypatch.setattr(data, "load", self.fake_loader(right))
        assert sweeps._dataset_of(self.reader_of_first_pixels(), "model.npz") == right

    def test_784_inputs_without_the_files(self, monkeypatch):
        from kdcore import data

        monkeypatch.setattr(data, "load", self.fake_loader("mnist", available=()))
        with pytest.raises(FileNotFoundError, match=r"model\.npz"):
            sweeps._dataset_of(self.reader_of_first_pixels(), "model.npz")

    def test_other_sizes(self, teacher):
        from kdcore.mlp import MLP

        assert sweeps._dataset_of(teacher, "t") == "digits"
        assert sweeps._dataset_of(MLP([20, 10]), "t") == "synthetic"
        with pytest.raises(ValueError, match="33 inputs"):
            sweeps._dataset_of(MLP([33, 10]), "t")


def test_the_names_stay_importable_from_figures():
    # Documented as kdcore.figures.<name> before the experiments moved to kdcore.sweeps.
    assert figures.run_sweep is sweeps.run_sweep
    assert figures.run_capacity is sweeps.run_capacity
    assert figures.train_teacher is sweeps.train_teacher
    assert figures.load_sweep is sweep_file.load_sweep and figures.save_sweep is sweep_file.save_sweep
    assert figures.SWEEP_FORMAT == sweep_file.SWEEP_FORMAT
