r"""The IDX file format (LeCun's MNIST format), gzipped or not, and one split of MNIST or Fashion-MNIST read from it."""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from .locate import _locate_split

_IMAGE_SHAPE = (28, 28)
_N_CLASSES_IDX = 10

# ---------------------------------------------------------------------------------------------- IDX files

# IDX type codes (the third byte of the magic number) and the big-endian dtypes they stand for.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    r"""Read an IDX file (the format of MNIST), gzipped or not, into an array.

    Parameters
    ----------
    path : str or path-like
        The file. Gzip is recognised by its content (the bytes ``1f 8b``), not by the file name.

    Returns
    -------
    ndarray
        The array, with the file's dimensions and element type, in native byte order.

    Raises
    ------
    ValueError
        Naming the file, when it is not exactly a valid IDX file: corrupted or truncated gzip data (a failed
        CRC included), a magic number not of the form ``00 00 <type> <ndim>``, an unknown type code, or a
        payload whose length differs from the one the dimensions promise (too short or too long).

    Notes
    -----
    An IDX file is a 4-byte magic number — two zero bytes, a type code (``0x08`` unsigned byte, ``0x09``
    signed byte, ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32, ``0x0E`` float64) and the number of
    dimensions ``ndim`` — then ``ndim`` big-endian uint32 sizes, then the data, big-endian, in C order.
    The payload must be exactly :math:`\prod_i d_i` times the item size, so that a truncated download, or
    two files glued together, cannot pass.

    References
    ----------
    Y. LeCun, C. Cortes, C. J. C. Burges, "The MNIST database of handwritten digits" (the IDX format is
    described at the end of the page).

    Examples
    --------
    A 2×3 unsigned-byte array, written by hand:

    >>> import tempfile
    >>> from pathlib import Path
    >>> header = bytes([0, 0, 0x08, 2]) + (2).to_bytes(4, "big") + (3).to_bytes(4, "big")
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = Path(tmp) / "tiny-idx2-ubyte"
    ...     _ = path.write_bytes(header + bytes(range(6)))
    ...     array = read_idx(path)
    >>> array
    array([[0, 1, 2],
           [3, 4, 5]], dtype=uint8)

    One byte too few is an error that names the file:

    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = Path(tmp) / "short-idx2-ubyte"
    ...     _ = path.write_bytes(header + bytes(range(5)))
    ...     read_idx(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: .../short-idx2-ubyte is not a valid IDX file: truncated: ...
    """
    path = Path(path)
    data = path.read_bytes()
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        # BadGzipFile (an OSError) for a bad header or CRC, EOFError when the stream stops early,
        # zlib.error for a damaged deflate stream.
        except (OSError, EOFError, zlib.error) as error:
            raise ValueError(
                f"{path} is not a valid IDX file: corrupted or truncated gzip data ({error})"
            ) from None
    return _parse_idx(data, path)


def _parse_idx(data: bytes, path: Path) -> np.ndarray:
    def invalid(reason: str) -> ValueError:
        return ValueError(f"{path} is not a valid IDX file: {reason}")

    if len(data) < 4:
        raise invalid(f"{len(data)} bytes is too short for the 4-byte magic number")
    if data[0] != 0 or data[1] != 0:
        raise invalid(f"bad magic number {data[:4].hex(' ')}: an IDX file starts with two zero bytes")
    type_code, ndim = data[2], data[3]
    if type_code not in _IDX_DTYPES:
        known = ", ".join(f"0x{code:02X}" for code in _IDX_DTYPES)
        raise invalid(f"unknown type code 0x{type_code:02X} in the magic number (known: {known})")
    if ndim == 0:
        raise invalid("the magic number declares 0 dimensions")
    header_bytes = 4 + 4 * ndim
    if len(data) < header_bytes:
        raise invalid(
            f"truncated: {ndim} dimensions need a {header_bytes}-byte header, the file has {len(data)}"
        )
    shape = struct.unpack(f">{ndim}I", data[4:header_bytes])
    dtype = _IDX_DTYPES[type_code]
    expected = math.prod(shape) * dtype.itemsize
    actual = len(data) - header_bytes
    if actual < expected:
        raise invalid(f"truncated: shape {shape} of {dtype.name} needs {expected} data bytes, found {actual}")
    if actual > expected:
        raise invalid(f"{actual - expected} extra bytes after the {expected} data bytes of shape {shape}")
    array = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=header_bytes)
    # astype copies: the result is writable, in native byte order, and does not pin ``data``.
    return array.astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def _load_idx_split(
    name: str, split: str, data_dir: str | os.PathLike[str] | None
) -> tuple[np.ndarray, np.ndarray]:
    images_path, labels_path = _locate_split(name, split, data_dir)
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != _IMAGE_SHAPE:
        raise ValueError(
            f"{images_path}: expected 28×28 unsigned-byte images, "
            f"got a {images.dtype} array of shape {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(
            f"{labels_path}: expected a 1-D unsigned-byte array of labels, "
            f"got a {labels.dtype} array of shape {labels.shape}"
        )
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{images_path} holds {images.shape[0]} images but {labels_path} holds {labels.shape[0]} labels"
        )
    if labels.size and int(labels.max()) >= _N_CLASSES_IDX:
        raise ValueError(
            f"{labels_path}: labels must be in [0, {_N_CLASSES_IDX}), found a label {int(labels.max())}"
        )
    x = images.reshape(images.shape[0], -1).astype(np.float32)
    x /= np.float32(255)
    return x, labels.astype(np.int64)
