"""Tests of kdcore.data.synthetic: the prototypes and the samples of the synthetic data set."""

import math

import numpy as np
import pytest

from kdcore.data import load, make_synthetic, synthetic_prototypes

# --------------------------------------------------------------------------------------------- synthetic


def standard_normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


class TestSyntheticPrototypes:
    @pytest.mark.parametrize(
        ("n_classes", "n_groups", "n_features"), [(10, None, 20), (7, 3, 12), (4, 1, 5), (6, 6, 12)]
    )
    def test_distance_matrix_has_the_closed_form(self, n_classes, n_groups, n_features):
        class_distance, group_distance = 0.3, 0.7
        prototypes, groups = synthetic_prototypes(
            n_classes=n_classes,
            n_groups=n_groups,
            n_features=n_features,
            class_distance=class_distance,
            group_distance=group_distance,
            seed=5,
        )
        sizes = np.bincount(groups)
        a2 = class_distance**2 / 2
        expected = np.sqrt(
            group_distance**2 + a2 * (2 - 1 / sizes[groups][:, None] - 1 / sizes[groups][None])
        )
        same = groups[:, None] == groups[None]
        expected[same] = class_distance
        np.fill_diagonal(expected, 0.0)
        distances = np.linalg.norm(prototypes[:, None] - prototypes[None], axis=-1)
        # Gram–Schmidt in float64 keeps orthonormality to ~1e-15; distances of order 1 to ~1e-14.
        np.testing.assert_allclose(distances, expected, rtol=0, atol=1e-12)

    def test_groups_are_consecutive_blocks(self):
        assert synthetic_prototypes()[1].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
        assert synthetic_prototypes(n_classes=7, n_groups=3)[1].tolist() == [0, 0, 0, 1, 1, 2, 2]

    def test_default_prototypes_lie_in_the_unit_cube(self):
        for seed in range(20):
            prototypes, _ = synthetic_prototypes(seed=seed)
            assert 0.0 < prototypes.min() and prototypes.max() < 1.0

    def test_seed_changes_orientation_not_distances(self):
        first, _ = synthetic_prototypes(seed=0)
        second, _ = synthetic_prototypes(seed=1)
        assert not np.allclose(first, second)
        d_first = np.linalg.norm(first[:, None] - first[None], axis=-1)
        d_second = np.linalg.norm(second[:, None] - second[None], axis=-1)
        np.testing.assert_allclose(d_first, d_second, rtol=0, atol=1e-12)

    @pytest.mark.parametrize(
        ("kwargs", "error", "pattern"),
        [
            ({"n_classes": 1}, ValueError, "n_classes"),
            ({"n_classes": 2.0}, TypeError, "n_classes"),
            ({"n_groups": 11}, ValueError, "n_groups"),
            ({"n_groups": 0}, ValueError, "n_groups"),
            ({"n_features": 14}, ValueError, "n_features must be at least n_classes"),
            ({"class_distance": 0.0}, ValueError, "class_distance"),
            ({"class_distance": float("nan")}, ValueError, "class_distance"),
            ({"group_distance": -1.0}, ValueError, "group_distance"),
            ({"group_distance": True}, ValueError, "group_distance"),
            ({"seed": -3}, ValueError, "seed"),
        ],
    )
    def test_bad_arguments(self, kwargs, error, pattern):
        with pytest.raises(error, match=pattern):
            synthetic_prototypes(**kwargs)


class TestMakeSynthetic:
    def test_shapes_dtypes_range_balance(self):
        x, labels = make_synthetic(1003, seed=2)
        assert x.shape == (1003, 20)
        assert x.dtype == np.float32
        assert labels.dtype == np.int64
        assert 0.0 <= x.min() and x.max() <= 1.0
        counts = np.bincount(labels, minlength=10)
        assert counts.max() - counts.min() <= 1
        assert counts.sum() == 1003

    def test_deterministic_for_a_seed(self):
        first = make_synthetic(500, seed=7)
        second = make_synthetic(500, seed=7)
        np.testing.assert_array_equal(first[0], second[0])
        np.testing.assert_array_equal(first[1], second[1])
        assert not np.array_equal(first[0], make_synthetic(500, seed=8)[0])

    def test_splits_share_prototypes_not_samples(self):
        x_train, labels_train = make_synthetic(2000, seed=3, split="train")
        x_test, labels_test = make_synthetic(2000, seed=3, split="test")
        assert not np.array_equal(x_train, x_test)
        prototypes, _ = synthetic_prototypes(seed=3)
        for x, labels in ((x_train, labels_train), (x_test, labels_test)):
            class_means = np.stack([x[labels == c].mean(axis=0) for c in range(10)])
            # 200 samples per class, noise 0.1: each mean is within a few 0.1/sqrt(200) ≈ 0.007 per feature
            np.testing.assert_allclose(class_means, prototypes, rtol=0, atol=0.04)

    def test_load_serves_make_synthetic(self):
        for split, n in (("train", 5000), ("test", 1000)):
            x, labels = load("synthetic", split, seed=4)
            expected_x, expected_labels = make_synthetic(n, seed=4, split=split)
            np.testing.assert_array_equal(x, expected_x)
            np.testing.assert_array_equal(labels, expected_labels)

    @pytest.mark.parametrize("seed", [0, 1, 2, 3])
    def test_nearest_prototype_accuracy_is_the_bayes_rate(self, seed):
        """Within a pair the error of the nearest prototype is Φ(−class_distance / (2·noise)) = Φ(−1.75)."""
        x, labels = make_synthetic(20000, seed=seed)
        prototypes, groups = synthetic_prototypes(seed=seed)
        nearest = np.argmin(((x[:, None, :] - prototypes[None]) ** 2).sum(-1), axis=1)
        accuracy = np.mean(nearest == labels)
        expected = 1.0 - standard_normal_cdf(-0.35 / (2 * 0.1))  # ≈ 0.960; cross-pair errors ~1e-5
        # binomial standard error sqrt(0.04·0.96/20000) ≈ 0.0014; clipping moves it by less than that
        assert abs(accuracy - expected) < 0.006
        wrong = nearest != labels
        assert np.mean(groups[nearest[wrong]] == groups[labels[wrong]]) > 0.99

    def test_soft_targets_carry_dark_knowledge(self):
        """The Bayes posterior (what a perfect teacher outputs) puts its doubt on the sibling class."""
        noise = 0.1
        x, labels = make_synthetic(5000, seed=0, noise=noise)
        prototypes, groups = synthetic_prototypes(seed=0)
        logits = -((x[:, None, :].astype(np.float64) - prototypes[None]) ** 2).sum(-1) / (2 * noise**2)
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        sibling = labels ^ 1  # classes come in pairs {0, 1}, {2, 3}, ...
        rows = np.arange(labels.size)
        assert np.all(groups[sibling] == groups[labels])
        wrong_mass = 1.0 - probs[rows, labels]
        sibling_mass = probs[rows, sibling]
        assert np.mean(sibling_mass) > 0.03  # real doubt, not a one-hot teacher
        assert np.sum(sibling_mass) / np.sum(wrong_mass) > 0.99  # and nearly all of it on the look-alike
        second_best = np.argsort(probs, axis=1)[:, -2]
        top = np.argmax(probs, axis=1)
        runner_up = np.where(top == labels, second_best, top)
        assert np.mean(runner_up == sibling) > 0.99

    def test_clipping_is_rare(self):
        x, _ = make_synthetic(5000, seed=0)
        assert np.mean((x == 0.0) | (x == 1.0)) < 0.01

    @pytest.mark.parametrize(
        ("args", "kwargs", "error", "pattern"),
        [
            ((0,), {}, ValueError, "n_samples"),
            ((10.0,), {}, TypeError, "n_samples"),
            ((10,), {"noise": -0.1}, ValueError, "noise"),
            ((10,), {"noise": float("inf")}, ValueError, "noise"),
            ((10,), {"split": "valid"}, ValueError, "split='valid'"),
            ((10,), {"seed": -1}, ValueError, "seed"),
        ],
    )
    def test_bad_arguments(self, args, kwargs, error, pattern):
        with pytest.raises(error, match=pattern):
            make_synthetic(*args, **kwargs)

    def test_zero_noise_gives_the_prototypes(self):
        x, labels = make_synthetic(30, seed=1, noise=0.0)
        prototypes, _ = synthetic_prototypes(seed=1)
        np.testing.assert_array_equal(x, prototypes[labels].astype(np.float32))


# ---------------------------------------------------------------------------------------------- download
