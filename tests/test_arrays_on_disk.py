"""kdcore.arrays_on_disk: every storage read lazily and exactly, every bad file refused clearly, writes atomic."""

import json
import os
import struct
import zipfile

import numpy as np
import pytest

from kdcore.arrays_on_disk import NpyRowWriter, open_array


def write_safetensors(path, tensors, dtypes=None):
    """A .safetensors file written by hand from the format's description (8-byte length, JSON, data)."""
    header, blobs, offset = {"__metadata__": {"format": "np"}}, [], 0
    for name, array in tensors.items():
        data = np.ascontiguousarray(array).tobytes()
        code = (dtypes or {}).get(name) or {"<f8": "F64", "<f4": "F32", "<i8": "I64", "|b1": "BOOL"}[
            array.dtype.str
        ]
        header[name] = {
            "dtype": code,
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    return path


def framed(header: bytes) -> bytes:
    """A .safetensors header with its length in front (and 8 bytes of data after)."""
    return struct.pack("<Q", len(header)) + header + bytes(8)


@pytest.fixture
def logits(rng):
    return rng.normal(size=(3, 4, 5)).astype(np.float32)


class TestNpy:
    def test_rows_are_the_flattened_leading_axes(self, tmp_path, logits):
        np.save(tmp_path / "a.npy", logits)
        with open_array(tmp_path / "a.npy") as array:
            assert (array.shape, array.dtype, array.n_rows, array.row_length) == (
                (3, 4, 5),
                np.float32,
                12,
                5,
            )
            assert array.storage == "npy" and array.key is None
            np.testing.assert_array_equal(array.rows(5, 9), logits.reshape(12, 5)[5:9])
            np.testing.assert_array_equal(array.read(), logits)

    def test_rows_are_a_read_only_view_of_the_file_not_a_copy(self, tmp_path, logits):
        np.save(tmp_path / "a.npy", logits)
        with open_array(tmp_path / "a.npy") as array:
            rows = array.rows(0, 12)
            assert not rows.flags.owndata and not rows.flags.writeable
            with pytest.raises(ValueError, match="read-only"):
                rows[0, 0] = 1.0

    def test_released_rows_read_again_unchanged(self, tmp_path, rng):
        big = rng.normal(size=(64, 1024))  # 512 KiB: many pages
        np.save(tmp_path / "a.npy", big)
        with open_array(tmp_path / "a.npy") as array:
            first = np.array(array.rows(0, 32))
            array.release(0, 32)
            np.testing.assert_array_equal(array.rows(0, 32), first)
            np.testing.assert_array_equal(array.rows(0, 64), big)

    def test_one_dimensional_array_is_one_row(self, tmp_path):
        np.save(tmp_path / "a.npy", np.arange(4.0))
        with open_array(tmp_path / "a.npy") as array:
            assert array.n_rows == 1
            np.testing.assert_array_equal(array.rows(0, 1), [[0.0, 1.0, 2.0, 3.0]])

    def test_rows_outside_are_clipped(self, tmp_path, logits):
        np.save(tmp_path / "a.npy", logits)
        with open_array(tmp_path / "a.npy") as array:
            assert array.rows(10, 20).shape == (2, 5)
            assert array.rows(12, 20).shape == (0, 5)


class TestNpz:
    def test_stored_member_is_memory_mapped(self, tmp_path, logits):
        np.savez(tmp_path / "b.npz", student=logits, other=np.zeros(3))
        with open_array(tmp_path / "b.npz", key="student") as array:
            assert array.storage == "npz" and array.key == "student"
            rows = array.rows(2, 7)
            assert not rows.flags.owndata
            np.testing.assert_array_equal(rows, logits.reshape(12, 5)[2:7])

    def test_deflated_member_streams_forward_and_restarts_backward(self, tmp_path, logits):
        np.savez_compressed(tmp_path / "c.npz", teacher=logits)
        flat = logits.reshape(12, 5)
        with open_array(tmp_path / "c.npz") as array:  # one member: no key needed
            assert array.storage == "npz (deflated)"
            np.testing.assert_array_equal(array.rows(0, 3), flat[0:3])
            np.testing.assert_array_equal(array.rows(6, 8), flat[6:8])  # skips forward
            np.testing.assert_array_equal(array.rows(1, 2), flat[1:2])  # goes back: decompresses again
            np.testing.assert_array_equal(array.read(), logits)

    def test_members_need_a_key_and_an_unknown_key_lists_them(self, tmp_path, logits):
        np.savez(tmp_path / "b.npz", student=logits, teacher=logits)
        with pytest.raises(ValueError, match=r"holds 2 arrays \(student, teacher\): which one"):
            open_array(tmp_path / "b.npz")
        with pytest.raises(ValueError, match=r"has no array 'labels' \(it holds: student, teacher\)"):
            open_array(tmp_path / "b.npz", key="labels")

    def test_not_a_zip_file(self, tmp_path):
        (tmp_path / "x.npz").write_bytes(b"not a zip at all")
        with pytest.raises(ValueError, match=r"not an \.npz \(zip\) file"):
            open_array(tmp_path / "x.npz")

    @staticmethod
    def claiming_more(path, logits, compression):
        """A zip whose member's .npy header claims three times the rows it holds."""
        np.save(path.with_suffix(".npy"), logits)
        data = path.with_suffix(".npy").read_bytes().replace(b"(3, 4, 5)", b"(9, 4, 5)")
        with zipfile.ZipFile(path, "w", compression) as archive:
            archive.writestr("x.npy", data)
        return path

    def test_a_stored_member_cut_short_is_reported_when_opened(self, tmp_path, logits):
        path = self.claiming_more(tmp_path / "b.npz", logits, zipfile.ZIP_STORED)
        with pytest.raises(ValueError, match=r"b\.npz\[x\] is truncated"):
            open_array(path)

    def test_a_deflated_member_cut_short_fails_when_read(self, tmp_path, logits):
        path = self.claiming_more(tmp_path / "c.npz", logits, zipfile.ZIP_DEFLATED)
        with open_array(path) as array:
            np.testing.assert_array_equal(array.rows(0, 12), logits.reshape(12, 5))
            with pytest.raises(ValueError, match="truncated"):
                array.rows(12, 36)


class TestSafetensors:
    def test_written_by_hand_from_the_format(self, tmp_path, logits):
        labels = np.arange(12).reshape(3, 4)
        path = write_safetensors(tmp_path / "x.safetensors", {"logits": logits, "labels": labels})
        with open_array(path, key="logits") as array:
            assert array.storage == "safetensors"
            assert not array.rows(0, 3).flags.owndata
            np.testing.assert_array_equal(array.read(), logits)
        with open_array(path, key="labels") as array:
            np.testing.assert_array_equal(array.read(), labels)

    @pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, np.int64, np.bool_])
    def test_agrees_with_the_safetensors_package(self, tmp_path, rng, dtype):
        safetensors_numpy = pytest.importorskip(
            "safetensors.numpy", reason="the safetensors package (in kdcore[test]) writes the reference files"
        )
        array = (rng.normal(size=(2, 3, 7)) * 4).astype(dtype)
        safetensors_numpy.save_file({"a": np.zeros(3), "b": array}, tmp_path / "p.safetensors")
        reference = safetensors_numpy.load_file(tmp_path / "p.safetensors")["b"]
        with open_array(tmp_path / "p.safetensors", key="b") as opened:
            assert opened.dtype == np.dtype(dtype)
            np.testing.assert_array_equal(opened.read(), reference)

    def test_bfloat16_is_widened_exactly(self, tmp_path, rng):
        # bfloat16 is float32's top 16 bits: values whose low 16 bits are 0 are exactly representable.
        wide = rng.normal(size=(4, 6)).astype(np.float32)
        wide = (wide.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)
        raw = (wide.view(np.uint32) >> 16).astype("<u2")
        path = write_safetensors(tmp_path / "b.safetensors", {"x": raw}, dtypes={"x": "BF16"})
        with open_array(path) as array:
            assert array.stored_dtype == "bfloat16" and array.dtype == np.float32
            np.testing.assert_array_equal(array.rows(1, 3), wide[1:3])

    def test_bfloat16_agrees_with_torch(self, tmp_path, rng):
        torch = pytest.importorskip("torch")
        safetensors_torch = pytest.importorskip("safetensors.torch")
        tensor = torch.from_numpy(rng.normal(size=(3, 5))).to(torch.bfloat16)
        safetensors_torch.save_file({"x": tensor}, tmp_path / "t.safetensors")
        with open_array(tmp_path / "t.safetensors") as array:
            np.testing.assert_array_equal(array.read(), tensor.float().numpy())

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            (b"\x01", "no valid header length"),
            (struct.pack("<Q", 10**12) + b"{}", "no valid header length"),
            (struct.pack("<Q", 4) + b"\xff\xfe{}", "not JSON"),
            (struct.pack("<Q", 2) + b"[]", "not a JSON object"),
            (framed(b'{"x": {"dtype": "F32", "shape": [2]}}'), "malformed header entry"),
            (
                framed(b'{"x": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}'),
                "malformed header entry",
            ),
            (framed(b'{"x": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}}'), "dtype F8_E4M3"),
        ],
    )
    def test_corrupt_headers(self, tmp_path, content, message):
        path = tmp_path / "x.safetensors"
        path.write_bytes(content)
        with pytest.raises(ValueError, match=message):
            open_array(path)

    def test_offsets_that_disagree_with_the_shape_or_the_file(self, tmp_path):
        path = write_safetensors(tmp_path / "x.safetensors", {"x": np.zeros((2, 3))})
        data = path.read_bytes()
        path.write_bytes(data.replace(b'"shape": [2, 3]', b'"shape": [3, 3]'))
        with pytest.raises(ValueError, match="gives 48 bytes for shape"):
            open_array(path)
        path.write_bytes(data[:-8])
        with pytest.raises(ValueError, match="truncated"):
            open_array(path)


class TestRefused:
    def test_pickled_objects_are_never_unpickled(self, tmp_path):
        np.save(tmp_path / "o.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
        with pytest.raises(ValueError, match=r"Python objects.*never unpickles \(allow_pickle=False\)"):
            open_array(tmp_path / "o.npy")

    def test_pickled_member_of_an_npz(self, tmp_path):
        np.savez(tmp_path / "o.npz", x=np.array([object()], dtype=object))
        with pytest.raises(ValueError, match="Python objects"):
            open_array(tmp_path / "o.npz")

    def test_fortran_order(self, tmp_path, logits):
        np.save(tmp_path / "f.npy", np.asfortranarray(logits[0]))
        with pytest.raises(ValueError, match="Fortran order"):
            open_array(tmp_path / "f.npy")

    @pytest.mark.parametrize("array", [np.zeros(3, complex), np.array(["a", "b"]), np.zeros(2, "i4,f8")])
    def test_not_real_numbers(self, tmp_path, array):
        np.save(tmp_path / "x.npy", array)
        with pytest.raises(ValueError, match="does not hold real numbers"):
            open_array(tmp_path / "x.npy")

    def test_truncated_npy(self, tmp_path, logits):
        np.save(tmp_path / "a.npy", logits)
        (tmp_path / "t.npy").write_bytes((tmp_path / "a.npy").read_bytes()[:200])
        with pytest.raises(ValueError, match=r"truncated: its header announces 240 bytes of data"):
            open_array(tmp_path / "t.npy")

    def test_not_an_npy(self, tmp_path):
        (tmp_path / "x.npy").write_bytes(b"hello")
        with pytest.raises(ValueError, match=r"not a valid \.npy array"):
            open_array(tmp_path / "x.npy")

    def test_missing_directory_suffix_and_key(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="no such file"):
            open_array(tmp_path / "none.npy")
        with pytest.raises(ValueError, match="not a regular file"):
            open_array(tmp_path)
        (tmp_path / "x.pt").write_bytes(b"")
        with pytest.raises(ValueError, match=r"reads \.npy, \.npz and \.safetensors files, not \.pt"):
            open_array(tmp_path / "x.pt")
        np.save(tmp_path / "a.npy", np.zeros(2))
        with pytest.raises(ValueError, match="holds one array"):
            open_array(tmp_path / "a.npy", key="x")


class TestNpyRowWriter:
    def test_writes_an_npy_numpy_reads(self, tmp_path, logits):
        with NpyRowWriter(tmp_path / "g.npy", logits.shape, np.float32) as out:
            out.write(logits.reshape(12, 5)[:7])
            out.write(logits.reshape(12, 5)[7:])
        np.testing.assert_array_equal(np.load(tmp_path / "g.npy"), logits)
        np.testing.assert_array_equal(np.load(tmp_path / "g.npy", mmap_mode="r"), logits)

    def test_zeros_in_small_blocks(self, tmp_path):
        with NpyRowWriter(tmp_path / "z.npy", (5, 3), np.float64) as out:
            out.write(np.ones((1, 3)))
            out.write_zeros(4, block_rows=3)
        np.testing.assert_array_equal(np.load(tmp_path / "z.npy"), np.r_[np.ones((1, 3)), np.zeros((4, 3))])

    @pytest.mark.parametrize("interrupt", [KeyboardInterrupt, RuntimeError])
    def test_an_interruption_leaves_no_file_and_the_old_one_untouched(self, tmp_path, interrupt):
        np.save(tmp_path / "g.npy", np.arange(3.0))
        with pytest.raises(interrupt), NpyRowWriter(tmp_path / "g.npy", (4, 2), np.float64) as out:
            out.write(np.ones((2, 2)))
            raise interrupt
        np.testing.assert_array_equal(np.load(tmp_path / "g.npy"), np.arange(3.0))
        assert sorted(os.listdir(tmp_path)) == ["g.npy"]

    def test_too_few_or_too_many_rows(self, tmp_path):
        with pytest.raises(ValueError, match="1 of 4 rows were written; no file written"):
            with NpyRowWriter(tmp_path / "g.npy", (4, 2), np.float64) as out:
                out.write(np.ones((1, 2)))
        assert os.listdir(tmp_path) == []
        with pytest.raises(ValueError, match="not whole rows"):
            with NpyRowWriter(tmp_path / "g.npy", (1, 2), np.float64) as out:
                out.write(np.ones((2, 2)))
        assert os.listdir(tmp_path) == []
