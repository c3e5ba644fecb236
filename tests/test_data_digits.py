"""Tests of kdcore.data.digits: scikit-learn's digits and their fixed stratified split."""

import re
import sys

import numpy as np
import pytest

from kdcore.data import load


@pytest.fixture(scope="module")
def digits():
    """Both splits of digits, loaded once."""
    pytest.importorskip("sklearn")
    return {split: load("digits", split) for split in ("train", "test")}


class TestDigits:
    # Per class, the round-half-up of 25 % of its size (class sizes 178, 182, 177, 183, 181, 182, 181, 179,
    # 174, 180 in scikit-learn's copy of the UCI data).
    TEST_PER_CLASS = (45, 46, 44, 46, 45, 46, 45, 45, 44, 45)

    def test_shapes_dtypes_range(self, digits):
        for split, n in (("train", 1346), ("test", 451)):
            x, labels = digits[split]
            assert x.shape == (n, 64)
            assert labels.shape == (n,)
            assert x.dtype == np.float32
            assert labels.dtype == np.int64
            assert x.min() == 0.0
            assert x.max() == 1.0

    def test_pixels_are_sixteenths(self, digits):
        x, _ = digits["train"]
        np.testing.assert_array_equal(x * 16, np.round(x * 16))

    def test_stratified(self, digits):
        test_counts = np.bincount(digits["test"][1], minlength=10)
        train_counts = np.bincount(digits["train"][1], minlength=10)
        assert tuple(test_counts.tolist()) == self.TEST_PER_CLASS
        assert (train_counts + test_counts).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]

    def test_train_and_test_partition_the_data_set(self, digits):
        from sklearn.datasets import load_digits

        full = load_digits()
        rows = [(x * 16).astype(np.int64) for x, _ in digits.values()]
        labels = [labels for _, labels in digits.values()]
        ours = np.column_stack([np.concatenate(rows), np.concatenate(labels)])
        theirs = np.column_stack([full.data.astype(np.int64), full.target])
        # the same multiset of (pixels, label) rows: sort both lexicographically and compare
        np.testing.assert_array_equal(ours[np.lexsort(ours.T)], theirs[np.lexsort(theirs.T)])

    def test_deterministic_and_independent_of_seed(self, digits):
        for seed in (0, 1, 12345):
            x, labels = load("digits", "test", seed=seed)
            np.testing.assert_array_equal(x, digits["test"][0])
            np.testing.assert_array_equal(labels, digits["test"][1])

    def test_split_is_pinned(self, digits):
        # Regression values, recorded from this implementation when it was written: they pin the split
        # against changes in NumPy's permutation or scikit-learn's copy of the data.
        x, labels = digits["test"]
        assert labels[:12].tolist() == [5, 8, 6, 3, 8, 9, 5, 0, 7, 1, 7, 3]
        assert int(np.sum(x * 16, dtype=np.float64)) == 141360

    def test_without_scikit_learn(self, monkeypatch):
        monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # makes the import fail
        with pytest.raises(ImportError, match=re.escape("pip install 'kdcore[data]'")):
            load("digits")
