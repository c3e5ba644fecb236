r"""Arrays on disk, opened lazily: ``.npy``, ``.npz`` and ``.safetensors`` files read a block of rows at a time.

Logits of a language-model batch over a large vocabulary do not fit comfortably in memory twice: 4096
positions × 128 000 classes in float32 are 2 GiB per array. :func:`open_array` reads only a file's header
(shape, dtype, where the numbers are) and hands out blocks of *rows* — the leading axes flattened, the last
axis kept — without ever holding the whole array:

===========================  ============================================================================
file                         how its rows are read
===========================  ============================================================================
``.npy``                     memory-mapped (read-only): a block of rows is a view, no copy
``.npz``, stored member      memory-mapped through the member's offset in the zip file (``np.savez``
                             stores its members uncompressed): a view, no copy
``.npz``, deflated member    decompressed in order as the rows are asked for (``np.savez_compressed``):
                             each block is read once into a new array; rows must be asked for in order
``.safetensors``             memory-mapped through the tensor's offset; ``BF16`` is widened to float32
                             one block at a time (exactly: bfloat16 is the top half of a float32)
===========================  ============================================================================

Nothing is ever unpickled: an ``.npy`` holding Python objects is refused, as ``np.load(allow_pickle=False)``
refuses it. Every header is checked against the file's size before a row is read, so a truncated file is
reported when it is opened, not half-way through a computation.

Pages of a memory-mapped file that a computation has passed are given back to the operating system
(:meth:`ArrayOnDisk.release`, ``madvise(MADV_DONTNEED)``; the file's data stays in the page cache), so the
process's resident memory does not grow by the size of the file as it is read.

The ``.safetensors`` header is read here (eight bytes of length, then JSON: dtype, shape, byte offsets),
not through the ``safetensors`` package: its NumPy reader copies every slice it returns and cannot give
bfloat16, while the header's layout (https://github.com/huggingface/safetensors, "Format") is all a memory
map needs. The tests check the two readers agree on files the package writes.

:class:`NpyRowWriter` writes an ``.npy`` block of rows by block of rows, atomically: the file appears, complete,
under its name only when the last row is written; an error or Ctrl-C leaves no file behind.
"""

from __future__ import annotations

import contextlib
import json
import math
import mmap
import os
import secrets
import struct
import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = ["ArrayOnDisk", "NpyRowWriter", "open_array"]

# safetensors' dtype names. BF16 has no NumPy dtype: it is mapped as uint16 and widened (see _widen_bf16).
_SAFETENSORS_DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "BF16": "<u2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U64": "<u8",
    "U32": "<u4",
    "U16": "<u2",
    "U8": "u1",
    "BOOL": "?",
}
_SAFETENSORS_MAX_HEADER = 100 * 2**20  # the format's own limit on the JSON header
_ZIP_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, (version … sizes), name length, extra length


def _widen_bf16(raw: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (uint16) as float32: the same number, since bfloat16 is float32's top half."""
    return (raw.astype(np.uint32) << 16).view(np.float32)


class ArrayOnDisk:
    """One array in a file, read a block of rows at a time (see the module docstring). Made by :func:`open_array`.

    Attributes
    ----------
    path : pathlib.Path
        The file.
    key : str or None
        The array's name in an ``.npz`` or ``.safetensors`` file; ``None`` for an ``.npy``.
    shape : tuple of int
        The array's shape; its *rows* are the leading axes flattened, ``n_rows = prod(shape[:-1])``.
    dtype : numpy.dtype
        The dtype of the rows :meth:`rows` returns (float32 for a bfloat16 tensor).
    stored_dtype : str
        The dtype in the file (``"bfloat16"`` or a NumPy dtype's name).
    storage : str
        ``"npy"``, ``"npz"``, ``"npz (deflated)"`` or ``"safetensors"``.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from kdcore.arrays_on_disk import open_array
    >>> file = os.path.join(tempfile.mkdtemp(), "logits.npy")
    >>> np.save(file, np.arange(24, dtype=np.float32).reshape(2, 3, 4))  # 2 × 3 positions, 4 classes
    >>> logits = open_array(file)
    >>> logits.shape, logits.n_rows, logits.storage
    ((2, 3, 4), 6, 'npy')
    >>> logits.rows(4, 6)  # positions 4 and 5: a view of the file
    array([[16., 17., 18., 19.],
           [20., 21., 22., 23.]], dtype=float32)
    >>> logits.close(); os.remove(file)
    """

    def __init__(
        self,
        path: Path,
        key: str | None,
        shape: tuple[int, ...],
        stored: np.dtype,
        storage: str,
        *,
        offset: int | None = None,
        bfloat16: bool = False,
        zip_member: zipfile.ZipInfo | None = None,
    ) -> None:
        self.path, self.key, self.shape, self.storage = path, key, shape, storage
        self._stored, self._bfloat16, self._offset, self._member = stored, bfloat16, offset, zip_member
        self.dtype = np.dtype(np.float32) if bfloat16 else stored
        self.stored_dtype = "bfloat16" if bfloat16 else stored.name
        self.n_rows = math.prod(shape[:-1])
        self.row_length = shape[-1] if shape else 1
        self._row_bytes = self.row_length * stored.itemsize
        self._map: mmap.mmap | None = None
        self._rows: np.ndarray | None = None  # the mapped rows, (n_rows, row_length), a view of _map
        self._zip: zipfile.ZipFile | None = None
        self._stream: IO[bytes] | None = None
        self._next_row = 0  # where a deflated member's stream stands

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes of the array as stored."""
        return self.n_rows * self._row_bytes

    def describe(self) -> str:
        """``path`` (and ``[key]``) with the shape and stored dtype, for messages."""
        name = str(self.path) + (f"[{self.key}]" if self.key is not None else "")
        return f"{name} {self.shape} {self.stored_dtype}"

    def __repr__(self) -> str:
        return f"<ArrayOnDisk {self.describe()}, {self.storage}>"

    def __enter__(self) -> ArrayOnDisk:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _mapped(self) -> np.ndarray:
        if self._rows is None:
            with open(self.path, "rb") as file:
                self._map = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
            count = self.n_rows * self.row_length
            flat = np.frombuffer(self._map, dtype=self._stored, count=count, offset=self._offset)
            self._rows = flat.reshape(self.n_rows, self.row_length)
        return self._rows

    def _read_stream(self, start: int, stop: int) -> np.ndarray:
        # A deflated member is read front to back: going back means decompressing again from the start.
        if self._stream is None or start < self._next_row:
            self._close_stream()
            self._zip = zipfile.ZipFile(self.path)
            self._stream = self._zip.open(self._member)
            _npy_header(self._stream, f"{self.path}[{self.key}]")  # positions the stream at the data
            self._next_row = 0
        while self._next_row < start:  # skip forward, a block at a time
            step = min(start - self._next_row, max(1, 2**24 // max(self._row_bytes, 1)))
            self._read_exactly(step * self._row_bytes)
            self._next_row += step
        data = self._read_exactly((stop - start) * self._row_bytes)
        self._next_row = stop
        return np.frombuffer(data, dtype=self._stored).reshape(stop - start, self.row_length)

    def _read_exactly(self, size: int) -> bytes:
        assert self._stream is not None
        data = self._stream.read(size)
        if len(data) != size:
            raise ValueError(f"{self.path}[{self.key}] is truncated: its data ends before row {self.n_rows}")
        return data

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start`` to ``stop`` (leading axes flattened) as a read-only ``(stop - start, shape[-1])`` array.

        A view of the file for memory-mapped storage (no copy); a new array for a deflated ``.npz`` member
        and for bfloat16.
        """
        start, stop = max(0, start), min(stop, self.n_rows)
        if stop <= start:
            return np.empty((0, self.row_length), dtype=self.dtype)
        block = self._read_stream(start, stop) if self._member is not None else self._mapped()[start:stop]
        return _widen_bf16(block) if self._bfloat16 else block

    def read(self) -> np.ndarray:
        """The whole array, in memory, with its shape (for small arrays: labels, masks)."""
        return np.array(self.rows(0, self.n_rows)).reshape(self.shape)

    def release(self, start: int, stop: int) -> None:
        """Give back the memory pages holding rows ``start`` to ``stop`` (mapped storage; elsewhere nothing).

        The data stays in the file and the page cache: reading the rows again maps them again. Call it for
        rows a computation has finished with, so that the process's resident memory stays bounded.
        """
        if self._map is None or not hasattr(mmap, "MADV_DONTNEED") or stop <= start:
            return
        assert self._offset is not None
        first = self._offset + start * self._row_bytes
        last = min(self._offset + stop * self._row_bytes, len(self._map))
        first -= first % mmap.PAGESIZE  # madvise wants a page-aligned start
        with contextlib.suppress(OSError, ValueError):
            self._map.madvise(mmap.MADV_DONTNEED, first, last - first)

    def _close_stream(self) -> None:
        for handle in (self._stream, self._zip):
            if handle is not None:
                handle.close()
        self._stream = self._zip = None

    def close(self) -> None:
        """Unmap the file (or close the member's stream). Arrays :meth:`rows` returned keep the map alive."""
        self._close_stream()
        self._rows = None
        if self._map is not None:
            # Views handed out by rows() may still point into the map: then the garbage collector closes it.
            with contextlib.suppress(BufferError):
                self._map.close()
            self._map = None


def read_npy_header(file: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype from an ``.npy`` header (versions 1.0 and 2.0), nothing unpickled.

    The file is left at the first byte of the data. Raises ``ValueError`` for anything else.
    """
    version = np.lib.format.read_magic(file)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(file)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(file)
    raise ValueError(f"unsupported .npy version {version[0]}.{version[1]} (1.0 and 2.0 are read)")


def _npy_header(file: IO[bytes], name: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from an ``.npy`` header (the file is left at the first data byte); refuse objects."""
    try:
        shape, fortran_order, dtype = read_npy_header(file)
    except (ValueError, EOFError, SyntaxError) as error:
        raise ValueError(f"{name} is not a valid .npy array ({error})") from None
    if dtype.hasobject:
        raise ValueError(
            f"{name} holds Python objects (dtype {dtype}), which would have to be unpickled: kdcore "
            "never unpickles (allow_pickle=False); save the numbers as a numeric array"
        )
    if fortran_order and len(shape) > 1:
        raise ValueError(
            f"{name} is stored in Fortran order, so its rows are not contiguous on disk; "
            "save it in C order (np.save(path, np.ascontiguousarray(array)))"
        )
    if dtype.fields is not None or dtype.kind not in "biuf":
        raise ValueError(f"{name} does not hold real numbers (dtype {dtype})")
    return tuple(shape), dtype


def _expect_size(name: str, needed: int, available: int) -> None:
    if available < needed:
        raise ValueError(
            f"{name} is truncated: its header announces {needed} bytes of data, the file holds {available}"
        )


def _choose(name: str, key: str | None, keys: list[str], kind: str) -> str:
    if key is None:
        if len(keys) == 1:
            return keys[0]
        raise ValueError(
            f"{name} holds {len(keys)} arrays ({', '.join(keys) or 'none'}): which one? (key=...)"
        )
    if key not in keys:
        raise ValueError(f"{name} has no {kind} {key!r} (it holds: {', '.join(keys) or 'nothing'})")
    return key


def _open_npy(path: Path) -> ArrayOnDisk:
    with open(path, "rb") as file:
        shape, dtype = _npy_header(file, str(path))
        offset = file.tell()
    array = ArrayOnDisk(path, None, shape, dtype, "npy", offset=offset)
    _expect_size(str(path), array.nbytes, path.stat().st_size - offset)
    return array


def _open_npz(path: Path, key: str | None) -> ArrayOnDisk:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise ValueError(f"{path} is not an .npz (zip) file (truncated, or another format)") from None
    with archive:
        members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
        key = _choose(str(path), key, list(members), "array")
        info = members[key]
        name = f"{path}[{key}]"
        if info.flag_bits & 0x1:
            raise ValueError(f"{name} is encrypted")
        if info.compress_type != zipfile.ZIP_STORED:  # np.savez_compressed: stream it
            try:
                with archive.open(info) as stream:
                    shape, dtype = _npy_header(stream, name)
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as error:
                raise ValueError(f"{name} cannot be read: {error}") from None
            return ArrayOnDisk(path, key, shape, dtype, "npz (deflated)", zip_member=info)
    # A stored member is the .npy file's bytes, verbatim, after the member's local header in the zip.
    with open(path, "rb") as file:
        file.seek(info.header_offset)
        signature, name_length, extra_length = _ZIP_LOCAL_HEADER.unpack(file.read(_ZIP_LOCAL_HEADER.size))
        if signature != b"PK\x03\x04":
            raise ValueError(f"{name}: the zip file's directory does not match its contents (corrupt)")
        start = info.header_offset + _ZIP_LOCAL_HEADER.size + name_length + extra_length
        file.seek(start)
        shape, dtype = _npy_header(file, name)
        offset = file.tell()
    array = ArrayOnDisk(path, key, shape, dtype, "npz", offset=offset)
    _expect_size(name, array.nbytes, min(info.file_size - (offset - start), path.stat().st_size - offset))
    return array


def _open_safetensors(path: Path, key: str | None) -> ArrayOnDisk:
    size = path.stat().st_size
    with open(path, "rb") as file:
        head = file.read(8)
        length = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        if not 2 <= length <= min(_SAFETENSORS_MAX_HEADER, size - 8):
            raise ValueError(f"{path} is not a .safetensors file (no valid header length)")
        try:
            header = json.loads(file.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ValueError(f"{path} is not a .safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path} is not a .safetensors file (its header is not a JSON object)")
    tensors = {name: entry for name, entry in header.items() if name != "__metadata__"}
    key = _choose(str(path), key, list(tensors), "tensor")
    name, entry = f"{path}[{key}]", tensors[key]
    try:
        code, shape, (begin, end) = entry["dtype"], tuple(entry["shape"]), entry["data_offsets"]
        if not all(isinstance(n, int) and n >= 0 for n in (*shape, begin, end)):
            raise TypeError
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{name}: malformed header entry {entry!r}") from None
    if code not in _SAFETENSORS_DTYPES:
        raise ValueError(
            f"{name} has dtype {code}, which kdcore does not read (it reads {', '.join(_SAFETENSORS_DTYPES)})"
        )
    stored = np.dtype(_SAFETENSORS_DTYPES[code])
    array = ArrayOnDisk(
        path, key, shape, stored, "safetensors", offset=8 + length + begin, bfloat16=code == "BF16"
    )
    if end - begin != array.nbytes:
        raise ValueError(
            f"{name}: its header gives {end - begin} bytes for shape {shape} of {code} (corrupt)"
        )
    _expect_size(name, array.nbytes, size - array._offset)
    return array


def open_array(path: str | os.PathLike, key: str | None = None) -> ArrayOnDisk:
    r"""Open an array stored in a file, reading only its header; rows are read when asked for.

    Parameters
    ----------
    path : str or path-like
        An ``.npy``, ``.npz`` or ``.safetensors`` file (recognised by its suffix).
    key : str, optional
        The array's name in an ``.npz`` (``np.savez(path, logits=...)`` → ``"logits"``) or a
        ``.safetensors`` file; may be left out when the file holds one array. Not allowed for ``.npy``.

    Returns
    -------
    ArrayOnDisk
        Shape and dtype known, nothing read yet. Use it as a context manager (or call ``close()``).

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        A file that is not what its suffix says, is truncated, holds Python objects (never unpickled), is
        stored in Fortran order, or does not hold real numbers; a missing or unknown ``key`` (the message
        lists the arrays the file holds).

    Notes
    -----
    Shapes: an array of shape :math:`(d_1, \dots, d_k, N)` has :math:`d_1 \cdots d_k` rows of length
    :math:`N`; a 1-D array is one row. Dtypes are kept as stored (float32 stays float32), except bfloat16,
    which is returned as float32 (exactly).

    Examples
    --------
    >>> import numpy as np, pathlib, tempfile
    >>> from kdcore.arrays_on_disk import open_array
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = pathlib.Path(tmp) / "batch.npz"
    ...     np.savez(path, student=np.zeros((4, 3)), labels=np.array([0, 2, -100, 1]))
    ...     with open_array(path, key="labels") as labels:
    ...         print(labels.storage, labels.shape, labels.read())
    ...     try:
    ...         open_array(path)
    ...     except ValueError as error:
    ...         print(str(error).replace(tmp, "<tmp>"))
    npz (4,) [   0    2 -100    1]
    <tmp>/batch.npz holds 2 arrays (student, labels): which one? (key=...)
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if not path.is_file():
        raise ValueError(f"{path} is not a regular file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        if key is not None:
            raise ValueError(f"{path} is an .npy file, which holds one array: key={key!r} does not apply")
        return _open_npy(path)
    if suffix == ".npz":
        return _open_npz(path, key)
    if suffix == ".safetensors":
        return _open_safetensors(path, key)
    raise ValueError(
        f"{path}: kdcore reads .npy, .npz and .safetensors files, not {suffix or 'files without a suffix'}"
    )


class NpyRowWriter:
    r"""Write an ``.npy`` file block of rows by block of rows, atomically.

    The rows go to a temporary file next to ``path``; when the block holding the last row is written and
    the ``with`` block ends without an error, the file is flushed to disk and renamed over ``path``
    (:func:`os.replace`, atomic on POSIX). On an error, on Ctrl-C, or if fewer rows than ``shape`` holds
    were written, the temporary file is removed and ``path`` is untouched.

    The rows are written with ordinary sequential writes after a header from :mod:`numpy.lib.format`,
    rather than through ``np.lib.format.open_memmap``: pages written through a memory map stay in the
    process's resident memory until the map is flushed and released, while a write goes straight to the
    page cache. The file is the same ``.npy`` either way (``np.load`` reads it, memory-mapped or not).

    Parameters
    ----------
    path : str or path-like
        Where the ``.npy`` file is to appear. Its directory must exist.
    shape : tuple of int
        The array's shape; rows are its leading axes flattened.
    dtype : dtype-like
        The array's dtype.

    Examples
    --------
    Write three rows of two, in two steps, then read them back:

    >>> from pathlib import Path
    >>> from tempfile import mkdtemp
    >>> from kdcore.arrays_on_disk import NpyRowWriter
    >>> grad_file = Path(mkdtemp()) / "grad.npy"
    >>> with NpyRowWriter(grad_file, (3, 2), "float32") as out:
    ...     out.write([[1.0, 1.0], [1.0, 1.0]])  # rows 0 and 1
    ...     out.write_zeros(1)                   # row 2
    >>> import numpy
    >>> numpy.load(grad_file).tolist()
    [[1.0, 1.0], [1.0, 1.0], [0.0, 0.0]]
    >>> grad_file.unlink()
    """

    def __init__(self, path: str | os.PathLike, shape: tuple[int, ...], dtype: Any) -> None:
        self.path = Path(path)
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        self.n_rows = math.prod(self.shape[:-1])
        self.row_length = self.shape[-1] if self.shape else 1
        self.rows_written = 0
        self._file: IO[bytes] | None = None
        self._temporary: Path | None = None

    def __enter__(self) -> NpyRowWriter:
        directory = self.path.parent
        # Same directory as the target: os.replace is atomic only within one file system. The mode 0o666
        # lets the umask decide the permissions, as a plain open() would.
        self._temporary = directory / f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        fd = os.open(
            self._temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666
        )
        self._file = os.fdopen(fd, "wb")
        header = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": self.shape,
        }
        try:
            np.lib.format.write_array_header_2_0(self._file, header)
        except BaseException:
            self._discard()
            raise
        return self

    def write(self, rows: np.ndarray) -> None:
        """Append ``rows``, shape ``(k, shape[-1])`` (or any shape with that many elements), of ``dtype``."""
        assert self._file is not None, "use NpyRowWriter in a with block"
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if (
            rows.size % max(self.row_length, 1)
            or self.rows_written + rows.size // max(self.row_length, 1) > self.n_rows
        ):
            raise ValueError(
                f"{self.path}: {rows.size} values are not whole rows of {self.row_length} within the "
                f"{self.n_rows - self.rows_written} rows left"
            )
        self._file.write(memoryview(rows.reshape(-1)).cast("B"))
        self.rows_written += rows.size // max(self.row_length, 1)

    def write_zeros(self, count: int, block_rows: int = 1) -> None:
        """Append ``count`` rows of zeros, ``block_rows`` at a time (so that no large block is allocated)."""
        block = np.zeros((max(1, min(block_rows, count)), self.row_length), dtype=self.dtype)
        while count > 0:
            step = min(count, len(block))
            self.write(block[:step])
            count -= step

    def _discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._temporary is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._temporary)
            self._temporary = None

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is not None:  # KeyboardInterrupt too: never leave a half-written file behind
            self._discard()
            return
        if self.rows_written != self.n_rows:
            self._discard()
            raise ValueError(
                f"{self.path}: {self.rows_written} of {self.n_rows} rows were written; no file written"
            )
        assert self._file is not None and self._temporary is not None
        try:
            self._file.flush()
            os.fsync(self._file.fileno())  # the data is on disk before the name points at it
            self._file.close()
            self._file = None
            os.replace(self._temporary, self.path)
            self._temporary = None
        except BaseException:
            self._discard()
            raise
