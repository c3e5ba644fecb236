r"""scikit-learn's bundled 8×8 digits, with a fixed stratified train/test split (offline, needs scikit-learn)."""

from __future__ import annotations

import math

import numpy as np

from .archives import _DATA_EXTRA

# Sizes of the fixed "digits" split and of the "synthetic" data set as served by ``load``.
_DIGITS_TEST_FRACTION = 0.25
_DIGITS_SPLIT_SEED = 1797  # any fixed number; it is the size of the data set, to make it memorable
# ------------------------------------------------------------------------------------------------- digits


def _load_digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise ImportError(
            f"the 'digits' data set is the copy bundled with scikit-learn, which is not installed: "
            f"{_DATA_EXTRA}"
        ) from error
    bunch = load_digits()
    x = (np.asarray(bunch.data, dtype=np.float64) / 16.0).astype(np.float32)  # pixels are 0..16
    labels = np.asarray(bunch.target).astype(np.int64)
    test = _stratified_test_mask(labels, _DIGITS_TEST_FRACTION, _DIGITS_SPLIT_SEED)
    keep = test if split == "test" else ~test
    return x[keep], labels[keep]


def _stratified_test_mask(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A boolean mask of the test samples: per class, a seeded choice of round-half-up(fraction · count).

    Written with NumPy alone (not ``train_test_split``), so the split cannot change with scikit-learn's
    version; samples keep their original order in both parts.
    """
    rng = np.random.default_rng(seed)
    mask = np.zeros(labels.shape, dtype=bool)
    for label in np.unique(labels):  # sorted, so the draws happen in a fixed order
        members = np.flatnonzero(labels == label)
        n_test = math.floor(fraction * members.size + 0.5)
        mask[rng.permutation(members)[:n_test]] = True
    return mask
