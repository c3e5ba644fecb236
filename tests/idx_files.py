"""IDX files written from the format's definition, independently of kdcore.data, for tests/test_data*.py.

The fixture ``isolated`` (a clean look-up: no $KDCORE_DATA, an empty home and system directory) is in
tests/conftest.py, so that every one of those files can use it."""

import gzip
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

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
