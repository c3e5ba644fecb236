"""Tests of kdcore.data: the IDX reader, the look-up order, download, digits, synthetic, and the real files.

The real data sets are read where they already are (Debian's Fashion-MNIST, ../shared/data/mnist); nothing
is copied into the repository. Download is tested offline: a ``file://`` mirror, or a stand-in for
``urlopen``, serves real bytes from those files.
"""

import gzip
import hashlib
import http.client
import io
import math
import re
import shutil
import subprocess
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from conftest import DEBIAN_FASHION_MNIST, SHARED_MNIST

from kdcore import data
from kdcore.data import download, load, make_synthetic, read_idx, synthetic_prototypes

IDX_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
TYPE_CODES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


# ---------------------------------------------------------------------------------------------- helpers


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """An IDX file, written from the format's definition (independently of kdcore.data)."""
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=TYPE_CODES[type_code]).tobytes()


def write_idx(path: Path, array: np.ndarray, *, type_code: int = 0x08, gz: bool = False) -> Path:
    payload = idx_bytes(array, type_code)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload) if gz else payload)
    return path


def write_split(directory: Path, split: str, labels, *, gz: bool = True, n_images: int | None = None) -> None:
    """A small, valid pair of IDX files: image i is filled with the value i (mod 256)."""
    labels = np.asarray(labels, dtype=np.uint8)
    n = labels.size if n_images is None else n_images
    images = (np.arange(n, dtype=np.uint8)[:, None, None] * np.ones((1, 28, 28), np.uint8)).astype(np.uint8)
    suffix = ".gz" if gz else ""
    images_stem, labels_stem = IDX_STEMS[split]
    write_idx(directory / f"{images_stem}{suffix}", images, gz=gz)
    write_idx(directory / f"{labels_stem}{suffix}", labels, gz=gz)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def error_names(path: Path) -> str:
    """A ``match=`` pattern: the message names this file."""
    return re.escape(str(path))


def requires(*paths: Path):
    missing = [str(p) for p in paths if not p.is_file()]
    return pytest.mark.skipif(bool(missing), reason=f"real data files absent: {', '.join(missing)}")


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No $KDCORE_DATA, an empty home, and an empty stand-in for /usr/share/datasets."""
    home, system = tmp_path / "home", tmp_path / "system"
    home.mkdir()
    system.mkdir()
    monkeypatch.delenv("KDCORE_DATA", raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(data, "_SYSTEM_DATA_DIR", system)
    return {"home": home, "cache": home / ".cache" / "kdcore", "system": system, "tmp": tmp_path}


# ------------------------------------------------------------------------------------------------ module


def test_import_needs_numpy_only():
    """scikit-learn and tqdm are optional extras: importing kdcore.data must not pull them in."""
    code = "import sys, kdcore.data; print(sorted({'sklearn', 'tqdm'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------- read_idx


class TestReadIdx:
    @pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
    def test_reads_a_3d_ubyte_array(self, tmp_path, rng, gz):
        images = rng.integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
        array = read_idx(write_idx(tmp_path / "images-idx3-ubyte", images, gz=gz))
        assert array.dtype == np.uint8
        np.testing.assert_array_equal(array, images)

    @pytest.mark.parametrize("type_code", sorted(TYPE_CODES), ids=lambda c: f"0x{c:02X}")
    def test_every_type_code_round_trips_in_native_byte_order(self, tmp_path, type_code):
        dtype = TYPE_CODES[type_code]
        values = np.array([[0, 1, 2], [3, 100, 127]])
        if dtype.kind in "if":
            values = -values  # negative values catch a wrong sign or byte order
        if dtype.kind == "f":
            values = values + 0.25  # exactly representable, so the comparison is exact
        array = read_idx(write_idx(tmp_path / "a-idx2", values.astype(dtype), type_code=type_code))
        assert array.dtype == dtype.newbyteorder("=")
        assert array.dtype.isnative
        assert array.shape == (2, 3)
        np.testing.assert_array_equal(array, values.astype(dtype))

    def test_result_is_a_writable_copy(self, tmp_path):
        array = read_idx(write_idx(tmp_path / "a-idx1-ubyte", np.arange(4, dtype=np.uint8)))
        assert array.flags.writeable
        array[0] = 9  # would raise on a read-only view of the file's bytes

    def test_gzip_is_recognised_by_content_not_by_name(self, tmp_path):
        labels = np.array([3, 1, 4], dtype=np.uint8)
        gz_without_suffix = tmp_path / "labels-idx1-ubyte"
        gz_without_suffix.write_bytes(gzip.compress(idx_bytes(labels)))
        raw_with_suffix = tmp_path / "labels-idx1-ubyte.gz"
        raw_with_suffix.write_bytes(idx_bytes(labels))
        np.testing.assert_array_equal(read_idx(gz_without_suffix), labels)
        np.testing.assert_array_equal(read_idx(raw_with_suffix), labels)

    def test_empty_dimension(self, tmp_path):
        array = read_idx(write_idx(tmp_path / "empty-idx3-ubyte", np.zeros((0, 28, 28), np.uint8)))
        assert array.shape == (0, 28, 28)

    def test_missing_file_is_file_not_found(self, tmp_path):
        with pytest.raises(FileNotFoundError):
            read_idx(tmp_path / "nothing-here")


class TestReadIdxErrors:
    """Every kind of damage is a ValueError that names the file."""

    GOOD = idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4))  # header 12 bytes + 12 data bytes

    @pytest.mark.parametrize(
        ("content", "reason"),
        [
            (b"", "too short"),
            (b"\x00\x00\x08", "too short"),
            (b"\x01\x00\x08\x01" + bytes(8), "magic number"),
            (b"\x00\x01\x08\x01" + bytes(8), "magic number"),
            (b"\x00\x00\x07\x01" + (4).to_bytes(4, "big") + bytes(4), "type code 0x07"),
            (b"\x00\x00\x0a\x01" + (4).to_bytes(4, "big") + bytes(4), "type code 0x0A"),
            (b"\x00\x00\x08\x00", "0 dimensions"),
            (b"\x00\x00\x08\x03" + (4).to_bytes(4, "big"), "truncated"),
            (GOOD[:-1], "truncated"),
            (GOOD[:12], "truncated"),
            (GOOD + b"\x00", "1 extra bytes"),
            (GOOD + GOOD, "extra bytes"),
        ],
        ids=[
            "empty",
            "3 bytes",
            "magic byte 0",
            "magic byte 1",
            "type 0x07",
            "type 0x0A",
            "ndim 0",
            "short header",
            "one byte short",
            "no payload",
            "one byte extra",
            "two files glued",
        ],
    )
    @pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
    def test_invalid_idx(self, tmp_path, content, reason, gz):
        path = tmp_path / "damaged-idx2-ubyte"
        path.write_bytes(gzip.compress(content) if gz else content)
        with pytest.raises(ValueError, match=error_names(path)) as info:
            read_idx(path)
        assert reason in str(info.value)

    def test_truncated_payload_says_how_much_is_missing(self, tmp_path):
        path = tmp_path / "short-idx2-ubyte"
        path.write_bytes(self.GOOD[:-5])
        with pytest.raises(ValueError, match=r"needs 12 data bytes, found 7"):
            read_idx(path)

    def test_bad_gzip_crc(self, tmp_path):
        packed = bytearray(gzip.compress(self.GOOD))
        packed[-8] ^= 0xFF  # the CRC-32 of the trailer; the deflate stream itself is intact
        path = tmp_path / "crc.gz"
        path.write_bytes(bytes(packed))
        with pytest.raises(ValueError, match=error_names(path)) as info:
            read_idx(path)
        assert "gzip" in str(info.value)

    def test_bad_gzip_length(self, tmp_path):
        packed = bytearray(gzip.compress(self.GOOD))
        packed[-1] ^= 0x01  # ISIZE, the length modulo 2**32
        path = tmp_path / "isize.gz"
        path.write_bytes(bytes(packed))
        with pytest.raises(ValueError, match=error_names(path)):
            read_idx(path)

    def test_truncated_gzip(self, tmp_path, rng):
        payload = idx_bytes(rng.integers(0, 256, size=(50, 28, 28), dtype=np.uint8))
        path = tmp_path / "half.gz"
        path.write_bytes(gzip.compress(payload)[: len(gzip.compress(payload)) // 2])
        with pytest.raises(ValueError, match=error_names(path)) as info:
            read_idx(path)
        assert "gzip" in str(info.value)

    def test_corrupted_deflate_stream(self, tmp_path, rng):
        payload = idx_bytes(rng.integers(0, 256, size=(50, 28, 28), dtype=np.uint8))
        packed = bytearray(gzip.compress(payload))
        for i in range(20, 40):  # scramble the compressed data just after the 10-byte header
            packed[i] ^= 0x5A
        path = tmp_path / "scrambled.gz"
        path.write_bytes(bytes(packed))
        with pytest.raises(ValueError, match=error_names(path)):
            read_idx(path)

    def test_gzip_header_only(self, tmp_path):
        path = tmp_path / "header-only.gz"
        path.write_bytes(gzip.compress(self.GOOD)[:10])
        with pytest.raises(ValueError, match=error_names(path)):
            read_idx(path)


# ------------------------------------------------------------------------------------- load: IDX checks


class TestLoadIdxFiles:
    @pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
    @pytest.mark.parametrize("split", ["train", "test"])
    def test_images_are_scaled_flattened_float32(self, tmp_path, split, gz):
        labels = [0, 9, 3, 3, 7]
        write_split(tmp_path, split, labels, gz=gz)
        x, got_labels = load("mnist", split, data_dir=tmp_path)
        assert x.shape == (5, 784)
        assert x.dtype == np.float32
        assert got_labels.dtype == np.int64
        np.testing.assert_array_equal(got_labels, labels)
        # image i is filled with i: pixels / 255 exactly, in float32
        np.testing.assert_array_equal(
            x, np.repeat(np.arange(5, dtype=np.float32)[:, None] / 255, 784, axis=1)
        )

    def test_full_pixel_range_maps_to_0_and_1(self, tmp_path):
        images = np.zeros((2, 28, 28), np.uint8)
        images[1] = 255
        write_idx(tmp_path / "t10k-images-idx3-ubyte", images)
        write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([0, 1], np.uint8))
        x, _ = load("fashion-mnist", "test", data_dir=tmp_path)
        assert x[0].max() == 0.0
        assert x[1].min() == 1.0

    def test_gz_is_preferred_when_both_exist(self, tmp_path):
        write_split(tmp_path, "test", [1, 2], gz=True)
        write_split(tmp_path, "test", [5, 6], gz=False)
        _, labels = load("mnist", "test", data_dir=tmp_path)
        np.testing.assert_array_equal(labels, [1, 2])

    def test_count_mismatch_names_both_files(self, tmp_path):
        write_split(tmp_path, "train", [1, 2, 3], n_images=4)
        with pytest.raises(ValueError, match="4 images") as info:
            load("mnist", "train", data_dir=tmp_path)
        assert str(tmp_path / "train-images-idx3-ubyte.gz") in str(info.value)
        assert str(tmp_path / "train-labels-idx1-ubyte.gz") in str(info.value)

    @pytest.mark.parametrize("bad_label", [10, 255])
    def test_label_out_of_range_names_the_labels_file(self, tmp_path, bad_label):
        write_split(tmp_path, "test", [0, bad_label, 1])
        with pytest.raises(ValueError, match=error_names(tmp_path / "t10k-labels-idx1-ubyte.gz")) as info:
            load("mnist", "test", data_dir=tmp_path)
        assert f"[0, 10), found a label {bad_label}" in str(info.value)

    def test_images_of_the_wrong_size(self, tmp_path):
        write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((2, 27, 28), np.uint8))
        write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(2, np.uint8))
        with pytest.raises(ValueError, match=error_names(tmp_path / "t10k-images-idx3-ubyte")):
            load("mnist", "test", data_dir=tmp_path)

    def test_labels_of_the_wrong_type(self, tmp_path):
        write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((2, 28, 28), np.uint8))
        write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(2, np.int32), type_code=0x0C)
        with pytest.raises(ValueError, match=error_names(tmp_path / "t10k-labels-idx1-ubyte")):
            load("mnist", "test", data_dir=tmp_path)

    def test_swapped_files(self, tmp_path):
        """Labels where the images should be: caught by the shape check, naming the file."""
        write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros(2, np.uint8))
        write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros((2, 28, 28), np.uint8))
        with pytest.raises(ValueError, match=error_names(tmp_path / "t10k-images-idx3-ubyte")):
            load("mnist", "test", data_dir=tmp_path)

    def test_a_corrupt_file_found_by_look_up_is_an_error_not_skipped(self, isolated):
        (isolated["cache"] / "mnist").mkdir(parents=True)
        write_split(isolated["cache"] / "mnist", "test", [1, 2])
        bad = isolated["cache"] / "mnist" / "t10k-labels-idx1-ubyte.gz"
        bad.write_bytes(bad.read_bytes()[:-3])
        write_split(isolated["system"] / "mnist", "test", [3, 4])
        with pytest.raises(ValueError, match=error_names(bad)):
            load("mnist", "test")


# ------------------------------------------------------------------------------------- load: look-up


class TestLookUpOrder:
    """Each candidate directory gets different labels, so the labels tell which one was read."""

    def candidates(self, isolated, monkeypatch):
        env = isolated["tmp"] / "env"
        monkeypatch.setenv("KDCORE_DATA", str(env))
        return {
            "env": env,
            "env/name": env / "mnist",
            "cache": isolated["cache"] / "mnist",
            "system": isolated["system"] / "mnist",
        }

    def test_order_env_then_env_name_then_cache_then_system(self, isolated, monkeypatch):
        dirs = self.candidates(isolated, monkeypatch)
        for label, directory in enumerate(dirs.values()):
            write_split(directory, "test", [label])
        for label, directory in enumerate(dirs.values()):
            _, labels = load("mnist", "test")
            assert labels.tolist() == [label], f"expected the copy in {directory}"
            for stem in IDX_STEMS["test"]:  # remove this copy: the next one in line must be found
                (directory / f"{stem}.gz").unlink()
        with pytest.raises(FileNotFoundError):
            load("mnist", "test")

    def test_system_directory_is_debians(self):
        assert Path("/usr/share/datasets") == data._SYSTEM_DATA_DIR

    def test_data_dir_comes_first(self, isolated, monkeypatch):
        dirs = self.candidates(isolated, monkeypatch)
        for label, directory in enumerate(dirs.values()):
            write_split(directory, "test", [label])
        explicit = isolated["tmp"] / "explicit"
        write_split(explicit, "test", [9])
        assert load("mnist", "test", data_dir=explicit)[1].tolist() == [9]
        assert load("mnist", "test", data_dir=str(explicit))[1].tolist() == [9]

    def test_data_dir_name_subdirectory(self, isolated):
        explicit = isolated["tmp"] / "datasets"
        write_split(explicit / "mnist", "test", [8])
        write_split(explicit / "fashion-mnist", "test", [7])
        assert load("mnist", "test", data_dir=explicit)[1].tolist() == [8]
        assert load("fashion-mnist", "test", data_dir=explicit)[1].tolist() == [7]

    def test_data_dir_is_exclusive(self, isolated):
        """An explicit path with nothing in it fails, even though a copy sits in the cache."""
        write_split(isolated["cache"] / "mnist", "test", [1])
        empty = isolated["tmp"] / "typo"
        with pytest.raises(FileNotFoundError, match=re.escape(str(empty))) as info:
            load("mnist", "test", data_dir=empty)
        assert str(isolated["cache"] / "mnist") not in str(info.value).split("Searched")[1]

    def test_data_dir_expands_tilde(self, isolated):
        write_split(isolated["home"] / "my-data", "test", [4])
        assert load("mnist", "test", data_dir="~/my-data")[1].tolist() == [4]

    def test_env_expands_tilde_and_ignores_empty(self, isolated, monkeypatch):
        write_split(isolated["home"] / "env-data", "test", [5])
        write_split(isolated["system"] / "mnist", "test", [6])
        monkeypatch.setenv("KDCORE_DATA", "~/env-data")
        assert load("mnist", "test")[1].tolist() == [5]
        monkeypatch.setenv("KDCORE_DATA", "")
        assert load("mnist", "test")[1].tolist() == [6]

    def test_one_directory_must_hold_both_files_of_a_split(self, isolated, monkeypatch):
        env = isolated["tmp"] / "env"
        monkeypatch.setenv("KDCORE_DATA", str(env))
        write_split(env, "test", [1])
        (env / "t10k-labels-idx1-ubyte.gz").unlink()
        write_split(isolated["cache"] / "mnist", "test", [2])
        assert load("mnist", "test")[1].tolist() == [2]  # env has images only: skipped

    def test_splits_are_found_independently(self, isolated, monkeypatch):
        write_split(isolated["cache"] / "mnist", "test", [1])
        write_split(isolated["system"] / "mnist", "train", [2])
        assert load("mnist", "test")[1].tolist() == [1]
        assert load("mnist", "train")[1].tolist() == [2]

    def test_data_sets_do_not_mix(self, isolated):
        write_split(isolated["cache"] / "fashion-mnist", "test", [1])
        with pytest.raises(FileNotFoundError):
            load("mnist", "test")


class TestNotFoundMessage:
    def test_says_which_files_to_put_where(self, isolated):
        with pytest.raises(FileNotFoundError) as info:
            load("mnist", "train")
        message = str(info.value)
        assert "train-images-idx3-ubyte.gz" in message
        assert "train-labels-idx1-ubyte.gz" in message
        assert "t10k" not in message  # only the split that was asked for
        assert f"Put them in {isolated['cache'] / 'mnist'}" in message
        assert "$KDCORE_DATA" in message
        assert "kdcore data download mnist" in message
        assert str(isolated["system"] / "mnist") in message  # every searched directory is listed

    def test_lists_what_each_directory_lacks(self, isolated):
        write_split(isolated["cache"] / "mnist", "test", [1])
        (isolated["cache"] / "mnist" / "t10k-images-idx3-ubyte.gz").unlink()
        with pytest.raises(FileNotFoundError) as info:
            load("mnist", "test")
        lines = str(info.value).splitlines()
        assert f"    {isolated['cache'] / 'mnist'}  (missing t10k-images-idx3-ubyte(.gz))" in lines
        assert f"    {isolated['system'] / 'mnist'}  (no such directory)" in lines

    def test_fashion_mnist_mentions_the_debian_package(self, isolated):
        with pytest.raises(FileNotFoundError, match="kdcore data download fashion-mnist") as info:
            load("fashion-mnist", "test")
        assert "dataset-fashion-mnist" in str(info.value)


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

FASHION_FILES = tuple(data._ARCHIVES["fashion-mnist"])


def rewrap_debian_archive(debian_file: Path) -> bytes:
    """Debian's dataset-fashion-mnist archive with the original gzip header put back.

    Debian's packaging dropped the file name from the gzip header and reset its mtime; the deflate stream
    and the CRC trailer are untouched. The original header is ``1f 8b 08``, flags ``08`` (FNAME), the mtime
    (found by searching for the one that reproduces the MD5 in Fashion-MNIST's README), XFL 0, OS 3 (Unix),
    the file name without ".gz", and a NUL.
    """
    mtimes = {"train": 1504176606, "t10k": 1504176627}  # 2017-08-31
    packed = debian_file.read_bytes()
    assert packed[:4] == b"\x1f\x8b\x08\x00", "expected a gzip header without optional fields"
    name = debian_file.name.removesuffix(".gz")
    mtime = mtimes[name.split("-")[0]]
    header = b"\x1f\x8b\x08\x08" + mtime.to_bytes(4, "little") + b"\x00\x03" + name.encode() + b"\x00"
    return header + packed[10:]


@pytest.fixture(scope="module")
def fashion_mirror(tmp_path_factory):
    """A directory holding the four canonical Fashion-MNIST archives, rebuilt from Debian's files."""
    paths = [DEBIAN_FASHION_MNIST / f for f in FASHION_FILES]
    if not all(p.is_file() for p in paths):
        pytest.skip(f"Debian's Fashion-MNIST is not installed in {DEBIAN_FASHION_MNIST}")
    mirror = tmp_path_factory.mktemp("fashion-mirror")
    for path in paths:
        (mirror / path.name).write_bytes(rewrap_debian_archive(path))
    return mirror


@pytest.fixture
def mnist_mirror(tmp_path):
    """A directory with the three real MNIST archives available offline."""
    files = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz")
    if not all((SHARED_MNIST / f).is_file() for f in files):
        pytest.skip(f"the real MNIST files are not in {SHARED_MNIST}")
    mirror = tmp_path / "mnist-mirror"
    mirror.mkdir()
    for f in files:
        shutil.copyfile(SHARED_MNIST / f, mirror / f)
    return mirror


def leftovers(directory: Path) -> list[str]:
    """Temporary files a download might have left (hidden *.part files)."""
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".part"))


class FakeResponse(io.BytesIO):
    """What urlopen returns, as far as download uses it."""

    def __init__(self, payload: bytes, *, fail_after: int | None = None):
        super().__init__(payload)
        self.headers = {"Content-Length": str(len(payload))}
        self.fail_after = fail_after

    def read(self, size=-1):
        if self.fail_after is not None and self.tell() >= self.fail_after:
            raise http.client.IncompleteRead(b"", len(self.getvalue()) - self.tell())
        return super().read(size if self.fail_after is None else min(size, self.fail_after - self.tell()))


class TestChecksums:
    """The SHA-256 constants are the real ones: recomputed here from the files on this machine."""

    @pytest.mark.data
    def test_fashion_mnist_constants_match_the_rewrapped_debian_archives(self, fashion_mirror):
        for filename, archive in data._ARCHIVES["fashion-mnist"].items():
            path = fashion_mirror / filename
            assert path.stat().st_size == archive.size
            assert hashlib.md5(path.read_bytes()).hexdigest() == archive.md5  # as in Zalando's README
            assert sha256(path) == archive.sha256

    @pytest.mark.data
    def test_rewrapping_keeps_the_content(self, fashion_mirror):
        for filename in ("t10k-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz"):
            ours = gzip.decompress((fashion_mirror / filename).read_bytes())
            assert ours == gzip.decompress((DEBIAN_FASHION_MNIST / filename).read_bytes())

    @pytest.mark.data
    @requires(SHARED_MNIST / "t10k-images-idx3-ubyte.gz")
    def test_mnist_constants_match_the_local_files(self):
        checked = 0
        for filename, archive in data._ARCHIVES["mnist"].items():
            path = SHARED_MNIST / filename
            if not path.is_file():  # the training images are not available offline
                continue
            assert path.stat().st_size == archive.size
            assert hashlib.md5(path.read_bytes()).hexdigest() == archive.md5
            assert sha256(path) == archive.sha256
            checked += 1
        assert checked >= 3

    def test_constants_are_well_formed(self):
        for archives in data._ARCHIVES.values():
            assert sorted(archives) == sorted(f"{stem}.gz" for stems in IDX_STEMS.values() for stem in stems)
            for archive in archives.values():
                assert re.fullmatch(r"[0-9a-f]{64}", archive.sha256)
                assert re.fullmatch(r"[0-9a-f]{32}", archive.md5)
                assert archive.size > 0


@pytest.mark.data
class TestDownloadFashionMnist:
    def test_downloads_verifies_and_loads(self, fashion_mirror, tmp_path):
        dest = tmp_path / "dest"
        returned = download("fashion-mnist", dest, progress=False, mirrors=[fashion_mirror.as_uri()])
        assert returned == dest
        assert sorted(p.name for p in dest.iterdir()) == sorted(FASHION_FILES)
        for filename in FASHION_FILES:
            assert sha256(dest / filename) == data._ARCHIVES["fashion-mnist"][filename].sha256
        x, labels = load("fashion-mnist", "test", data_dir=dest)
        x_debian, labels_debian = load("fashion-mnist", "test", data_dir=DEBIAN_FASHION_MNIST)
        np.testing.assert_array_equal(x, x_debian)
        np.testing.assert_array_equal(labels, labels_debian)

    def test_a_second_run_downloads_nothing(self, fashion_mirror, tmp_path):
        dest = download("fashion-mnist", tmp_path, progress=False, mirrors=[fashion_mirror.as_uri()])
        stamps = {p.name: p.stat().st_mtime_ns for p in dest.iterdir()}
        # no mirror reachable: only works because every file is present and verified
        download("fashion-mnist", dest, progress=False, mirrors=[(tmp_path / "nowhere").as_uri()])
        assert {p.name: p.stat().st_mtime_ns for p in dest.iterdir()} == stamps

    def test_default_mirrors_in_order_with_fallback(self, fashion_mirror, isolated, monkeypatch):
        """The canonical host is tried first; when it is down, the second mirror serves the files."""
        first, second = data._MIRRORS["fashion-mnist"]
        requested = []

        def fake_urlopen(url, timeout):
            requested.append(url)
            assert timeout > 0
            if url.startswith(first):
                raise urllib.error.URLError("simulated outage")
            return FakeResponse((fashion_mirror / url.removeprefix(second)).read_bytes())

        monkeypatch.setattr(data.urllib.request, "urlopen", fake_urlopen)
        dest = download("fashion-mnist", progress=False)
        assert dest == isolated["cache"] / "fashion-mnist"  # ~/.cache/kdcore/<name> by default
        assert requested == [base + f for f in FASHION_FILES for base in (first, second)]
        _, labels = load("fashion-mnist", "test")  # found in the cache, not in the (stand-in) system dir
        assert np.bincount(labels).tolist() == [1000] * 10

    @requires(*(DEBIAN_FASHION_MNIST / f for f in FASHION_FILES))
    def test_debian_archives_are_not_the_published_ones(self, tmp_path):
        """Serving Debian's re-wrapped files: same content, other bytes — rejected, nothing saved."""
        dest = tmp_path / "dest"
        with pytest.raises(ValueError, match="does not match its published checksum") as info:
            download("fashion-mnist", dest, progress=False, mirrors=[DEBIAN_FASHION_MNIST.as_uri()])
        message = str(info.value)
        assert "train-images-idx3-ubyte.gz" in message
        assert data._ARCHIVES["fashion-mnist"]["train-images-idx3-ubyte.gz"].sha256 in message
        assert sha256(DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz") in message
        assert list(dest.iterdir()) == []

    def test_a_bad_existing_file_is_replaced(self, fashion_mirror, tmp_path):
        stale = tmp_path / "t10k-labels-idx1-ubyte.gz"
        shutil.copyfile(DEBIAN_FASHION_MNIST / stale.name, stale)
        download("fashion-mnist", tmp_path, progress=False, mirrors=[fashion_mirror.as_uri()])
        assert sha256(stale) == data._ARCHIVES["fashion-mnist"][stale.name].sha256

    def test_falls_back_after_a_bad_mirror(self, fashion_mirror, tmp_path):
        dest = tmp_path / "dest"
        mirrors = [DEBIAN_FASHION_MNIST.as_uri(), fashion_mirror.as_uri()]
        download("fashion-mnist", dest, progress=False, mirrors=mirrors)
        assert sorted(p.name for p in dest.iterdir()) == sorted(FASHION_FILES)

    def test_progress_bar(self, fashion_mirror, tmp_path, capsys):
        pytest.importorskip("tqdm")
        download("fashion-mnist", tmp_path, progress=True, mirrors=[fashion_mirror.as_uri()])
        err = capsys.readouterr().err
        assert "t10k-labels-idx1-ubyte.gz" in err
        assert "5.03k" in err  # tqdm's size of the 5148-byte file, in KiB

    def test_progress_without_tqdm(self, fashion_mirror, tmp_path, capsys, monkeypatch):
        monkeypatch.setitem(sys.modules, "tqdm", None)  # makes the import fail
        download("fashion-mnist", tmp_path, progress=True, mirrors=[fashion_mirror.as_uri()])
        assert "downloading t10k-labels-idx1-ubyte.gz" in capsys.readouterr().err


class TestDownloadFailures:
    def test_offline_says_which_files_to_put_where(self, tmp_path):
        dest = tmp_path / "dest"
        nowhere = (tmp_path / "nowhere").as_uri()
        with pytest.raises(ConnectionError) as info:
            download("mnist", dest, progress=False, mirrors=[nowhere])
        message = str(info.value)
        assert message.startswith("could not download train-images-idx3-ubyte.gz for mnist")
        assert f"{nowhere}/train-images-idx3-ubyte.gz" in message  # what was tried, and why it failed
        assert f"put them in {dest}" in message
        for filename, archive in data._ARCHIVES["mnist"].items():
            assert f"{filename}  sha256 {archive.sha256}" in message
        assert list(dest.iterdir()) == []

    @pytest.mark.data
    def test_offline_lists_only_what_is_missing(self, mnist_mirror, tmp_path):
        dest = tmp_path / "dest"
        dest.mkdir()
        shutil.copyfile(mnist_mirror / "t10k-labels-idx1-ubyte.gz", dest / "t10k-labels-idx1-ubyte.gz")
        with pytest.raises(ConnectionError) as info:
            download("mnist", dest, progress=False, mirrors=[(tmp_path / "nowhere").as_uri()])
        message = str(info.value)
        assert "    train-images-idx3-ubyte.gz  sha256" in message
        assert "    t10k-labels-idx1-ubyte.gz  sha256" not in message

    @pytest.mark.data
    def test_wrong_real_file_is_rejected_and_nothing_is_left(self, mnist_mirror, tmp_path):
        """The real MNIST test images, served as the training images."""
        shutil.copyfile(
            mnist_mirror / "t10k-images-idx3-ubyte.gz", mnist_mirror / "train-images-idx3-ubyte.gz"
        )
        dest = tmp_path / "dest"
        with pytest.raises(
            ValueError, match=re.escape("train-images-idx3-ubyte.gz for mnist does not match")
        ) as info:
            download("mnist", dest, progress=False, mirrors=[mnist_mirror.as_uri()])
        assert "got 1648877 bytes" in str(info.value)
        assert "expected 9912422 bytes" in str(info.value)
        assert list(dest.iterdir()) == []

    @pytest.mark.data
    def test_connection_cut_mid_file(self, mnist_mirror, tmp_path, monkeypatch):
        payload = (mnist_mirror / "t10k-images-idx3-ubyte.gz").read_bytes()
        monkeypatch.setattr(
            data.urllib.request, "urlopen", lambda url, timeout: FakeResponse(payload, fail_after=100_000)
        )
        dest = tmp_path / "dest"
        with pytest.raises(ConnectionError, match="IncompleteRead"):
            download("mnist", dest, progress=False, mirrors=["https://example.invalid/"])
        assert list(dest.iterdir()) == []

    def test_mismatch_and_outage_are_both_reported(self, tmp_path):
        wrong = tmp_path / "wrong"
        wrong.mkdir()
        (wrong / "train-images-idx3-ubyte.gz").write_bytes(b"not the archive")
        dest = tmp_path / "dest"
        nowhere = (tmp_path / "nowhere").as_uri()
        with pytest.raises(ValueError, match="does not match") as info:
            download("mnist", dest, progress=False, mirrors=[nowhere, wrong.as_uri()])
        assert "got 15 bytes" in str(info.value)
        assert nowhere in str(info.value)
        assert leftovers(dest) == []

    @pytest.mark.parametrize("name", ["digits", "synthetic"])
    def test_bundled_data_sets_need_no_download(self, name, tmp_path):
        with pytest.raises(ValueError, match="needs no download"):
            download(name, tmp_path)

    def test_unknown_name(self, tmp_path):
        with pytest.raises(ValueError, match=re.escape("name='emnist'")):
            download("emnist", tmp_path)

    def test_no_mirrors(self, tmp_path):
        with pytest.raises(ValueError, match="mirrors"):
            download("mnist", tmp_path, mirrors=[])


# ------------------------------------------------------------------------------------------- real files


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
        monkeypatch.setattr(data, "_SYSTEM_DATA_DIR", DEBIAN_FASHION_MNIST.parent)
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
