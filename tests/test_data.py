"""Tests of kdcore.data's package: ``load``'s arguments, its imports, and the real data sets read end to end.

The real data sets are read where they already are (Debian's Fashion-MNIST, ../shared/data/mnist); nothing
is copied into the repository. The parts have their own files: test_data_idx.py, test_data_locate.py,
test_data_archives.py, test_data_digits.py, test_data_synthetic.py.
"""

import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import DEBIAN_FASHION_MNIST, SHARED_MNIST
from idx_files import IDX_STEMS, error_names, requires

from kdcore.data import archives, load, locate, read_idx

FASHION_FILES = tuple(archives._ARCHIVES["fashion-mnist"])


# ------------------------------------------------------------------------------------------------ module


def test_import_needs_numpy_only():
    """scikit-learn and tqdm are optional extras: importing kdcore.data must not pull them in."""
    code = "import sys, kdcore.data; print(sorted({'sklearn', 'tqdm'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# -------------------------------------------------------------------------------------- load: arguments


class TestLoadArguments:
    # kdcore's one error rule (kdcore/_arrays.py): a wrong value is a ValueError, a wrong type a TypeError.
    @pytest.mark.parametrize(
        ("name", "error"),
        [("MNIST", ValueError), ("cifar10", ValueError), ("", ValueError), (None, TypeError), (3, TypeError)],
    )
    def test_unknown_name(self, name, error):
        with pytest.raises(error, match=re.escape(f"name={name!r}")):
            load(name)

    @pytest.mark.parametrize(
        ("split", "error"), [("val", ValueError), ("Train", ValueError), ("", ValueError), (None, TypeError)]
    )
    def test_unknown_split(self, split, error):
        with pytest.raises(error, match=re.escape(f"split={split!r}")):
            load("synthetic", split)

    @pytest.mark.parametrize(("seed", "error"), [(-1, ValueError), (1.5, TypeError), (True, TypeError)])
    def test_bad_seed(self, seed, error):
        with pytest.raises(error, match="seed"):
            load("synthetic", seed=seed)

    def test_numpy_integer_seed(self):
        np.testing.assert_array_equal(load("synthetic", seed=np.int64(3))[0], load("synthetic", seed=3)[0])


# ------------------------------------------------------------------------------------------------ digits


@pytest.fixture(scope="module")
def fashion():
    """Both splits of Debian's Fashion-MNIST, loaded once."""
    if not all((DEBIAN_FASHION_MNIST / f).is_file() for f in FASHION_FILES):
        pytest.skip(f"Debian's Fashion-MNIST is not installed in {DEBIAN_FASHION_MNIST}")
    return {split: load("fashion-mnist", split, data_dir=DEBIAN_FASHION_MNIST) for split in IDX_STEMS}


@pytest.mark.data
class TestRealFashionMnist:
    @pytest.mark.parametrize(("split", "n"), [("train", 60000), ("test", 10000)])
    def test_shapes_dtypes_range_balance(self, fashion, split, n):
        x, labels = fashion[split]
        assert x.shape == (n, 784)
        assert x.dtype == np.float32
        assert labels.shape == (n,)
        assert labels.dtype == np.int64
        assert x.min() == 0.0
        assert x.max() == 1.0
        assert np.bincount(labels).tolist() == [n // 10] * 10

    def test_known_values(self, fashion):
        # The first labels of each split (ankle boot, T-shirt, T-shirt, dress, ...), and the mean pixel of
        # the training set, 0.2860, the normalisation constant quoted everywhere for Fashion-MNIST.
        assert fashion["train"][1][:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
        assert fashion["test"][1][:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
        assert abs(float(np.mean(fashion["train"][0], dtype=np.float64)) - 0.2860) < 5e-5

    def test_found_by_the_look_up_in_usr_share_datasets(self, fashion, isolated, monkeypatch):
        monkeypatch.setattr(locate, "_SYSTEM_DATA_DIR", DEBIAN_FASHION_MNIST.parent)
        x, labels = load("fashion-mnist", "test")
        np.testing.assert_array_equal(x, fashion["test"][0])
        np.testing.assert_array_equal(labels, fashion["test"][1])


@pytest.mark.data
class TestRealMnist:
    @requires(SHARED_MNIST / "t10k-images-idx3-ubyte.gz", SHARED_MNIST / "t10k-labels-idx1-ubyte.gz")
    def test_test_split(self):
        x, labels = load("mnist", "test", data_dir=SHARED_MNIST)
        assert x.shape == (10000, 784)
        assert x.dtype == np.float32
        assert labels.dtype == np.int64
        assert x.min() == 0.0
        assert x.max() == 1.0
        # the well-known class counts and first labels of the MNIST test set; mean pixel 0.1325
        assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
        assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
        assert abs(float(np.mean(x, dtype=np.float64)) - 0.1325) < 5e-5

    @requires(SHARED_MNIST / "train-labels-idx1-ubyte.gz")
    def test_training_labels(self):
        labels = read_idx(SHARED_MNIST / "train-labels-idx1-ubyte.gz")
        assert labels.dtype == np.uint8
        assert np.bincount(labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]

    @requires(SHARED_MNIST / "train-labels-idx1-ubyte.gz")
    def test_missing_training_images_say_what_to_do(self):
        if (SHARED_MNIST / "train-images-idx3-ubyte.gz").is_file():
            pytest.skip("the training images are present here")
        with pytest.raises(FileNotFoundError) as info:
            load("mnist", "train", data_dir=SHARED_MNIST)
        message = str(info.value)
        assert "train-images-idx3-ubyte.gz" in message
        assert f"Put them in {SHARED_MNIST}" in message
        assert "kdcore data download mnist" in message
        assert f"{SHARED_MNIST}  (missing train-images-idx3-ubyte(.gz))" in message

    @requires(SHARED_MNIST / "t10k-images-idx3-ubyte.gz")
    def test_truncated_real_archive(self, tmp_path):
        damaged = tmp_path / "t10k-images-idx3-ubyte.gz"
        damaged.write_bytes((SHARED_MNIST / damaged.name).read_bytes()[:-1000])
        with pytest.raises(ValueError, match=error_names(damaged)):
            read_idx(damaged)
