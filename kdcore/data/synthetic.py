r"""A synthetic ten-class data set generated from a seed: five pairs of look-alike classes, for fast examples."""

from __future__ import annotations

import math
import numbers

import numpy as np

from kdcore._arrays import check_choice, check_int

from .locate import SPLITS

_SYNTHETIC_STREAMS = {"structure": 0, "train": 1, "test": 2}


def _check_seed(seed: object) -> int:
    return check_int(seed, "seed", 0)


# ---------------------------------------------------------------------------------------------- synthetic


def synthetic_prototypes(
    *,
    n_classes: int = 10,
    n_features: int = 20,
    n_groups: int | None = None,
    class_distance: float = 0.35,
    group_distance: float = 0.8,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    r"""The class prototypes of :func:`make_synthetic`, and the group of each class.

    Parameters
    ----------
    n_classes : int, default 10
        At least 2.
    n_features : int, default 20
        At least ``n_classes + n_groups`` (each class and each group gets its own direction).
    n_groups : int, optional
        Number of groups of look-alike classes, in [1, n_classes]. Default ``n_classes // 2``: the classes
        come in pairs ({0, 1}, {2, 3}, …).
    class_distance : float, default 0.35
        Distance between two prototypes of the same group.
    group_distance : float, default 0.8
        Distance between the centres of two groups.
    seed : int, default 0
        Fixes the random orientation of the whole structure; the distances do not depend on it.

    Returns
    -------
    prototypes : ndarray, shape (n_classes, n_features), float64
        One point per class; inside [0, 1] for the default parameters.
    groups : ndarray, shape (n_classes,), int64
        ``groups[c]`` is the group of class ``c``: consecutive blocks, ``c * n_groups // n_classes``.

    Notes
    -----
    Take orthonormal directions :math:`f_1 … f_G` (one per group) and :math:`e_1 … e_C` (one per class),
    all orthogonal to each other, in a random orientation (Gram–Schmidt on Gaussian vectors). With
    :math:`b = \text{group\_distance}/\sqrt 2` and :math:`a = \text{class\_distance}/\sqrt 2`, the prototype
    of class :math:`c` in group :math:`g` (of :math:`k_g` classes) is

    .. math::

        \mu_c = \tfrac12 \mathbf 1 + b\,(f_g - \bar f) + a\,(e_c - \bar e_g),

    where :math:`\bar f` is the mean of all :math:`f` and :math:`\bar e_g` the mean of the :math:`e` of
    group :math:`g` — centring moves no point relative to another. So the distance matrix is known exactly:

    .. math::

        \lVert \mu_c - \mu_d \rVert =
        \begin{cases}
            \text{class\_distance} & g(c) = g(d), \\
            \sqrt{\text{group\_distance}^2 + a^2 \left(2 - 1/k_{g(c)} - 1/k_{g(d)}\right)} & \text{otherwise,}
        \end{cases}

    which for the defaults is 0.35 within a pair and :math:`\sqrt{0.8^2 + 0.35^2/2} \approx 0.837`
    across pairs.

    Examples
    --------
    >>> prototypes, groups = synthetic_prototypes()
    >>> groups.tolist()
    [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    >>> distances = np.linalg.norm(prototypes[:, None] - prototypes[None], axis=-1)
    >>> distances[:4, :4].round(3)
    array([[0.   , 0.35 , 0.837, 0.837],
           [0.35 , 0.   , 0.837, 0.837],
           [0.837, 0.837, 0.   , 0.35 ],
           [0.837, 0.837, 0.35 , 0.   ]])
    """
    n_classes = _check_count(n_classes, "n_classes", 2)
    n_features = _check_count(n_features, "n_features", 1)
    n_groups = max(1, n_classes // 2) if n_groups is None else _check_count(n_groups, "n_groups", 1)
    if n_groups > n_classes:
        raise ValueError(f"n_groups must be at most n_classes={n_classes}, got n_groups={n_groups}")
    if n_features < n_classes + n_groups:
        raise ValueError(
            f"n_features must be at least n_classes + n_groups = {n_classes + n_groups} (one direction "
            f"per class and per group), got n_features={n_features}"
        )
    for value, name in ((class_distance, "class_distance"), (group_distance, "group_distance")):
        if not (_is_real(value) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive finite number, got {name}={value!r}")
    seed = _check_seed(seed)
    groups = (np.arange(n_classes) * n_groups) // n_classes
    rng = np.random.default_rng([seed, _SYNTHETIC_STREAMS["structure"]])
    directions = _orthonormal_rows(rng.standard_normal((n_groups + n_classes, n_features)))
    group_directions, class_directions = directions[:n_groups], directions[n_groups:]
    centres = 0.5 + group_distance / math.sqrt(2.0) * (group_directions - group_directions.mean(axis=0))
    prototypes = np.empty((n_classes, n_features))
    for group in range(n_groups):
        members = np.flatnonzero(groups == group)
        offsets = class_directions[members] - class_directions[members].mean(axis=0)
        prototypes[members] = centres[group] + class_distance / math.sqrt(2.0) * offsets
    return prototypes, groups.astype(np.int64)


def _orthonormal_rows(vectors: np.ndarray) -> np.ndarray:
    """Modified Gram–Schmidt on the rows (written out, so the result does not depend on the LAPACK build)."""
    basis = np.array(vectors, dtype=np.float64)
    for i in range(basis.shape[0]):
        for j in range(i):
            basis[i] -= (basis[i] @ basis[j]) * basis[j]
        basis[i] /= np.linalg.norm(basis[i])
    return basis


def make_synthetic(
    n_samples: int,
    *,
    n_classes: int = 10,
    n_features: int = 20,
    n_groups: int | None = None,
    class_distance: float = 0.35,
    group_distance: float = 0.8,
    noise: float = 0.1,
    seed: int = 0,
    split: str = "train",
) -> tuple[np.ndarray, np.ndarray]:
    r"""Samples from a seeded mixture whose classes come in groups of look-alikes.

    A teacher trained on this data is unsure *only* between classes of one group, so its soft targets
    carry "dark knowledge" whose shape is known in advance: the mass on the wrong classes sits on the
    classes of the same group.

    Parameters
    ----------
    n_samples : int
        Number of samples, spread over the classes as evenly as possible, in random order.
    n_classes, n_features, n_groups, class_distance, group_distance
        The structure, as in :func:`synthetic_prototypes` (called with the same ``seed``).
    noise : float, default 0.1
        Standard deviation of the isotropic Gaussian noise added to the prototype of each sample.
    seed : int, default 0
        Fixes the prototypes and the samples. The same seed gives the same data, bit for bit.
    split : {"train", "test"}, default "train"
        Independent samples of one distribution: the splits share the prototypes, not the noise.

    Returns
    -------
    x : ndarray, shape (n_samples, n_features), float32
        ``clip(prototypes[labels] + noise · ε, 0, 1)``, with ε standard normal.
    labels : ndarray, shape (n_samples,), int64

    Notes
    -----
    Two classes of one group are ``class_distance`` apart, so the Bayes error between them is
    :math:`\Phi(-\text{class\_distance} / (2\,\text{noise}))` = :math:`\Phi(-1.75) \approx 4\,\%` for the
    defaults: nearest-prototype classification is right about 96 % of the time, and its mistakes fall
    within a group. Clipping to [0, 1] touches under 1 % of the features for the defaults.

    Examples
    --------
    >>> x, labels = make_synthetic(1000, seed=1)
    >>> x.shape, x.dtype, np.bincount(labels).tolist()
    ((1000, 20), dtype('float32'), [100, 100, 100, 100, 100, 100, 100, 100, 100, 100])
    >>> prototypes, groups = synthetic_prototypes(seed=1)
    >>> nearest = np.argmin(((x[:, None] - prototypes[None]) ** 2).sum(-1), axis=1)
    >>> bool(np.mean(nearest == labels) > 0.9)  # the classes are separable ...
    True
    >>> wrong = nearest != labels
    >>> bool(np.mean(groups[nearest[wrong]] == groups[labels[wrong]]) > 0.9)  # ... confused within a group
    True
    """
    n_samples = _check_count(n_samples, "n_samples", 1)
    check_choice(split, "split", SPLITS)
    if not (_is_real(noise) and math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a non-negative finite number, got noise={noise!r}")
    prototypes, _ = synthetic_prototypes(
        n_classes=n_classes,
        n_features=n_features,
        n_groups=n_groups,
        class_distance=class_distance,
        group_distance=group_distance,
        seed=seed,
    )
    rng = np.random.default_rng([_check_seed(seed), _SYNTHETIC_STREAMS[split]])
    labels = rng.permutation(np.arange(n_samples) % prototypes.shape[0])
    x = prototypes[labels] + noise * rng.standard_normal((n_samples, prototypes.shape[1]))
    return np.clip(x, 0.0, 1.0).astype(np.float32), labels.astype(np.int64)


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_count(value: object, name: str, minimum: int) -> int:
    return check_int(value, name, minimum)
