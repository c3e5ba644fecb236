r"""Data sets for the examples, the demo and the tests: one ``load`` for all of them.

Every data set comes back the same way: ``x`` of shape ``(n, features)``, float32, scaled to [0, 1], and
``labels`` of shape ``(n,)``, int64.

* ``"digits"`` — scikit-learn's bundled 8×8 digits (offline): 64 features, a fixed stratified split of
  1346 train / 451 test samples;
* ``"mnist"`` and ``"fashion-mnist"`` — 28×28 images read from IDX files on disk (see below): 784
  features, 60000 train / 10000 test samples;
* ``"synthetic"`` — generated here from a seed (:func:`make_synthetic`): 20 features, 5000 train / 1000
  test samples, ten classes in five pairs of look-alikes.

Where the IDX files are looked for
----------------------------------
``"mnist"`` and ``"fashion-mnist"`` are read from the four canonical files ``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each gzipped
(``.gz``, preferred when both exist) or not. A split is taken from the first directory holding both of its
files:

1. ``data_dir`` when it is given — and then *only* ``data_dir`` and ``data_dir/<name>``: an explicit
   path with a typo must fail loudly, not fall through to another copy;
2. ``$KDCORE_DATA``, then ``$KDCORE_DATA/<name>`` (one variable can serve several data sets);
3. ``~/.cache/kdcore/<name>``, where :func:`download` (and ``kdcore data download NAME``) puts them;
4. ``/usr/share/datasets/<name>``, where Debian's ``dataset-fashion-mnist`` package installs Fashion-MNIST.

When no directory has them, ``load`` raises ``FileNotFoundError`` saying which files to put where.

Only NumPy is needed at import time. ``"digits"`` needs scikit-learn and :func:`download` shows a progress
bar when tqdm is installed; both come with ``pip install 'kdcore[data]'``.

Where each part lives
---------------------
=========================  =============================================================================
``kdcore.data.locate``     the look-up order above, and the message when nothing is found
``kdcore.data.idx``        :func:`read_idx`, and one MNIST / Fashion-MNIST split read from its two files
``kdcore.data.archives``   :func:`download`: mirrors, digests, atomic writes
``kdcore.data.digits``     the digits data set and its fixed stratified split
``kdcore.data.synthetic``  :func:`make_synthetic`, :func:`synthetic_prototypes`
=========================  =============================================================================

Every public name is importable from ``kdcore.data`` itself.
"""

from __future__ import annotations

import os

import numpy as np

from kdcore._arrays import check_choice

from .archives import download
from .digits import _load_digits
from .idx import _load_idx_split, read_idx
from .locate import IDX_DATASETS, SPLITS  # noqa: F401 (IDX_DATASETS: kdcore.data.IDX_DATASETS, as before the split)
from .synthetic import _check_seed, make_synthetic, synthetic_prototypes

__all__ = [
    "DATASETS",
    "download",
    "load",
    "make_synthetic",
    "read_idx",
    "synthetic_prototypes",
]

DATASETS = ("digits", "mnist", "fashion-mnist", "synthetic")

_SYNTHETIC_SIZES = {"train": 5000, "test": 1000}


# --------------------------------------------------------------------------------------------------- load


def load(
    name: str,
    split: str = "train",
    *,
    data_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Load one split of a data set as ``(x, labels)``.

    Parameters
    ----------
    name : {"digits", "mnist", "fashion-mnist", "synthetic"}
        Which data set (see the module docstring for what each one is).
    split : {"train", "test"}
        Which part. The splits are the published ones for MNIST and Fashion-MNIST, a fixed stratified
        25 % test split for digits, and independent samples of one distribution for synthetic.
    data_dir : str or path-like, optional
        Where the IDX files of ``"mnist"`` / ``"fashion-mnist"`` are (it and ``data_dir/<name>`` are
        searched, nothing else). Default: the look-up order in the module docstring. Ignored by the other
        data sets.
    seed : int, default 0
        Seed of ``"synthetic"`` (its class structure and its samples). The other data sets are fixed and
        ignore it: the digits split in particular never depends on it, so results stay comparable.

    Returns
    -------
    x : ndarray, shape (n, features), float32
        Features in [0, 1]: pixels / 16 for digits, pixels / 255 for the 28×28 images (flattened to 784).
    labels : ndarray, shape (n,), int64
        Class indices in [0, 10).

    Raises
    ------
    ValueError
        For an unknown ``name`` or ``split``, or IDX files that are corrupt or disagree with each other;
        the message names the parameter, or the file.
    FileNotFoundError
        When the IDX files are nowhere to be found; the message says which files to put where.
    TypeError
        For a ``seed`` that is not an integer.
    ImportError
        For ``"digits"`` without scikit-learn.

    Notes
    -----
    Sizes (train / test): digits 1346 / 451 (of 1797; per class, round-half-up of 25 % goes to test),
    MNIST and Fashion-MNIST 60000 / 10000, synthetic 5000 / 1000.

    Examples
    --------
    >>> x, labels = load("synthetic", "test", seed=0)
    >>> x.shape, x.dtype, labels.shape, labels.dtype
    ((1000, 20), dtype('float32'), (1000,), dtype('int64'))
    >>> bool(x.min() >= 0.0 and x.max() <= 1.0)
    True
    >>> x, labels = load("digits", "test")
    >>> x.shape, np.bincount(labels).tolist()
    ((451, 64), [45, 46, 44, 46, 45, 46, 45, 45, 44, 45])
    """
    check_choice(name, "name", DATASETS)
    check_choice(split, "split", SPLITS)
    seed = _check_seed(seed)
    if name == "digits":
        return _load_digits(split)
    if name == "synthetic":
        return make_synthetic(_SYNTHETIC_SIZES[split], seed=seed, split=split)
    return _load_idx_split(name, split, data_dir)
