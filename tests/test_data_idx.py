"""Tests of kdcore.data.idx: the IDX reader, its errors, and one MNIST-like split loaded from its two files."""

import gzip

import numpy as np
import pytest
from idx_files import TYPE_CODES, error_names, idx_bytes, write_idx, write_split

from kdcore.data import load, read_idx

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
