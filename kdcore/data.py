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
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import math
import numbers
import os
import secrets
import struct
import sys
import urllib.request
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from kdcore._arrays import check_choice, check_int

__all__ = [
    "DATASETS",
    "download",
    "load",
    "make_synthetic",
    "read_idx",
    "synthetic_prototypes",
]

DATASETS = ("digits", "mnist", "fashion-mnist", "synthetic")
SPLITS = ("train", "test")
IDX_DATASETS = ("mnist", "fashion-mnist")

# The file stems of one split: (images, labels). "t10k" is the original name of the test files.
_IDX_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IMAGE_SHAPE = (28, 28)
_N_CLASSES_IDX = 10

# Tests point this at a temporary directory, so that what is installed on the machine cannot leak in.
_SYSTEM_DATA_DIR = Path("/usr/share/datasets")


class _Archive(NamedTuple):
    """What a canonical ``.gz`` archive must be: its size in bytes, SHA-256 and MD5 (both hex)."""

    size: int
    sha256: str
    md5: str


# How each digest was established (nothing here was copied on trust alone):
#
# * MNIST: the t10k images, t10k labels and train labels were hashed from local copies whose MD5s equal the
#   published ones (torchvision's resource list). The train images were not available offline: their
#   SHA-256 is the published one (TensorFlow Datasets' checksum list and many projects agree, next to the
#   three digests verified here), and their published MD5 is checked as well, as an independent second pin.
# * Fashion-MNIST: Debian's dataset-fashion-mnist re-wraps the archives (gzip header without the file name,
#   new mtime; the deflate stream is untouched). Putting back the original header (FNAME, mtime
#   1504176606 / 1504176627, XFL 0, OS 3) rebuilds files whose size and MD5 equal those in the
#   Fashion-MNIST README; their SHA-256 are these (and agree with the published ones).
#   tests/test_data.py rebuilds them and checks again.
#
# The MD5 is checked next to the SHA-256 for every file: it costs nothing in the same pass and ties each
# file to the digest its maintainers published.
_ARCHIVES: dict[str, dict[str, _Archive]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": _Archive(
            9912422,
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        ),
        "train-labels-idx1-ubyte.gz": _Archive(
            28881,
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "d53e105ee54ea40749a09fcbcd1e9432",
        ),
        "t10k-images-idx3-ubyte.gz": _Archive(
            1648877,
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "9fb629c4189551a2d022fa330f9573f3",
        ),
        "t10k-labels-idx1-ubyte.gz": _Archive(
            4542,
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            "ec29112dd5afa0611ce80d1b7f02629c",
        ),
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": _Archive(
            26421880,
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        ),
        "train-labels-idx1-ubyte.gz": _Archive(
            29515,
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "25c81989df183df01b3e8a0aad5dffbe",
        ),
        "t10k-images-idx3-ubyte.gz": _Archive(
            4422102,
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "bef4ecab320f06d8554ea6380940ec79",
        ),
        "t10k-labels-idx1-ubyte.gz": _Archive(
            5148,
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
            "bb300cfdad3c16e7a12a480ee83cd310",
        ),
    },
}

# Base URLs, tried in order. yann.lecun.com is left out: it has answered 403 to scripts for years.
_MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion-mnist": (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
}
_TIMEOUT_SECONDS = 60
_CHUNK_BYTES = 1 << 20

# Sizes of the fixed "digits" split and of the "synthetic" data set as served by ``load``.
_DIGITS_TEST_FRACTION = 0.25
_DIGITS_SPLIT_SEED = 1797  # any fixed number; it is the size of the data set, to make it memorable
_SYNTHETIC_SIZES = {"train": 5000, "test": 1000}
_SYNTHETIC_STREAMS = {"structure": 0, "train": 1, "test": 2}

_DATA_EXTRA = "pip install 'kdcore[data]'"


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


def _check_seed(seed: object) -> int:
    return check_int(seed, "seed", 0)


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


def _search_dirs(name: str, data_dir: str | os.PathLike[str] | None) -> list[Path]:
    """The directories searched for ``name``, in order (see the module docstring)."""
    if data_dir is not None:
        base = Path(data_dir).expanduser()
        return [base, base / name]
    dirs = []
    env = os.environ.get("KDCORE_DATA", "")
    if env:
        base = Path(env).expanduser()
        dirs += [base, base / name]
    dirs += [_default_cache_dir(name), _SYSTEM_DATA_DIR / name]
    return dirs


def _default_cache_dir(name: str) -> Path:
    return Path.home() / ".cache" / "kdcore" / name


def _find_file(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    return None


def _locate_split(name: str, split: str, data_dir: str | os.PathLike[str] | None) -> tuple[Path, Path]:
    """Paths of the images and labels of one split, from the first directory holding both."""
    stems = _IDX_STEMS[split]
    searched = _search_dirs(name, data_dir)
    for directory in searched:
        found = [_find_file(directory, stem) for stem in stems]
        if found[0] is not None and found[1] is not None:
            return found[0], found[1]
    files = "\n".join(f"    {stem}.gz" for stem in stems)
    where = "\n".join(f"    {directory}  ({_what_is_missing(directory, stems)})" for directory in searched)
    cache = _default_cache_dir(name)
    if data_dir is not None:
        put = (
            f"Put them in {Path(data_dir).expanduser()}, or run `kdcore data download {name}` to fetch "
            f"and verify them into {cache} (where load looks when data_dir is not given)."
        )
    else:
        put = (
            f"Put them in {cache} (or in the directory named by $KDCORE_DATA), "
            f"or run `kdcore data download {name}` to fetch and verify them there."
        )
    debian = (
        "\nOn Debian and Ubuntu, `apt install dataset-fashion-mnist` also provides them."
        if name == "fashion-mnist"
        else ""
    )
    raise FileNotFoundError(
        f"{name} ({split} split) was not found. It needs these two files, gzipped or not:\n{files}\n"
        f"{put}{debian}\n"
        f"Searched, in order:\n{where}"
    )


def _what_is_missing(directory: Path, stems: tuple[str, str]) -> str:
    if not directory.is_dir():
        return "no such directory"
    missing = [f"{stem}(.gz)" for stem in stems if _find_file(directory, stem) is None]
    return "missing " + " and ".join(missing)


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


# ----------------------------------------------------------------------------------------------- download


def download(
    name: str,
    dest: str | os.PathLike[str] | None = None,
    *,
    progress: bool = True,
    mirrors: Sequence[str] | None = None,
) -> Path:
    r"""Download the four IDX archives of ``"mnist"`` or ``"fashion-mnist"`` and verify them.

    Parameters
    ----------
    name : {"mnist", "fashion-mnist"}
        Which data set. ``"digits"`` ships with scikit-learn and ``"synthetic"`` is generated: neither is
        downloaded.
    dest : str or path-like, optional
        Directory to put the files in (created if needed). Default ``~/.cache/kdcore/<name>``, where
        :func:`load` looks.
    progress : bool, default True
        Show a progress bar per file (when tqdm is installed: ``pip install 'kdcore[data]'``).
    mirrors : sequence of str, optional
        Base URLs, tried in order for each file. Default: the canonical hosts (MNIST: PyTorch's
        ``ossci-datasets`` bucket, then the CVDF bucket TensorFlow uses; Fashion-MNIST: Zalando's S3
        website, then its GitHub repository). Any scheme urllib opens works, ``file://`` included.

    Returns
    -------
    pathlib.Path
        ``dest``, now holding the four ``.gz`` files.

    Raises
    ------
    ValueError
        For an unknown ``name``, or when no mirror served a file with the published size and digests;
        nothing is left behind for that file.
    ConnectionError
        When no mirror could be reached; the message lists the files to fetch by other means and where to
        put them.

    Notes
    -----
    A file already in ``dest`` with the published SHA-256 (and MD5) is kept, so a second run downloads
    nothing. Each file is written to a temporary file in ``dest``, checked, and only then moved into place
    with :func:`os.replace` — atomic, so ``load`` never sees a half-written archive. The SHA-256 and MD5
    constants, and how each was established, are in this module's source.

    Examples
    --------
    Without network the error says what to do by hand:

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:  # doctest: +ELLIPSIS
    ...     download("mnist", tmp, progress=False, mirrors=["file:///nonexistent/"])
    Traceback (most recent call last):
    ...
    ConnectionError: could not download train-images-idx3-ubyte.gz for mnist ...
    """
    if name in ("digits", "synthetic"):
        raise ValueError(f"name={name!r} needs no download (only {', '.join(IDX_DATASETS)} do)")
    check_choice(name, "name", IDX_DATASETS)
    dest = Path(dest).expanduser() if dest is not None else _default_cache_dir(name)
    bases = tuple(mirrors) if mirrors is not None else _MIRRORS[name]
    if not bases:
        raise ValueError("mirrors must name at least one base URL, got an empty sequence")
    dest.mkdir(parents=True, exist_ok=True)
    for filename, archive in _ARCHIVES[name].items():
        target = dest / filename
        if target.is_file() and _digests(target) == archive:
            continue
        _fetch(name, filename, archive, bases, dest, progress)
    return dest


def _digests(path: Path) -> _Archive:
    sha256 = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False)  # a published checksum, not a security measure
    size = 0
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK_BYTES):
            sha256.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    return _Archive(size, sha256.hexdigest(), md5.hexdigest())


def _fetch(
    name: str, filename: str, archive: _Archive, bases: tuple[str, ...], dest: Path, progress: bool
) -> None:
    """Fetch one archive from the first mirror that serves it intact, or raise saying what went wrong."""
    network_failures: list[str] = []
    mismatches: list[str] = []
    for base in bases:
        url = base.rstrip("/") + "/" + filename
        # A hidden, unique name in dest itself, so that os.replace is a rename within one file system;
        # opened with "xb" (not mkstemp) so the archive gets the user's umask, not mode 0600.
        tmp = dest / f".{filename}.{os.getpid()}.{secrets.token_hex(4)}.part"
        try:
            with tmp.open("xb") as out:  # outside the except below: a read-only dest is not "offline"
                try:
                    with urllib.request.urlopen(url, timeout=_TIMEOUT_SECONDS) as response:
                        _copy_with_progress(response, out, filename, progress)
                # URLError and timeouts are OSErrors; a connection cut mid-body raises IncompleteRead.
                except (OSError, http.client.HTTPException) as error:
                    network_failures.append(f"{url}: {error}")
                    continue
            got = _digests(tmp)
            if got != archive:
                mismatches.append(
                    f"{url}: got {got.size} bytes with sha256 {got.sha256} (md5 {got.md5}), expected "
                    f"{archive.size} bytes with sha256 {archive.sha256} (md5 {archive.md5})"
                )
                continue
            os.replace(tmp, dest / filename)
        finally:
            tmp.unlink(missing_ok=True)  # nothing to do after a successful os.replace
        return
    if mismatches:
        raise ValueError(
            f"{filename} for {name} does not match its published checksum; it was not saved to {dest}.\n"
            + "\n".join(mismatches + network_failures)
        )
    raise ConnectionError(
        f"could not download {filename} for {name} (offline?).\n"
        + "\n".join(network_failures)
        + "\n"
        + _manual_instructions(name, dest, bases)
    )


def _manual_instructions(name: str, dest: Path, bases: tuple[str, ...]) -> str:
    missing = [
        filename
        for filename, archive in _ARCHIVES[name].items()
        if not ((dest / filename).is_file() and _digests(dest / filename) == archive)
    ]
    lines = [
        f"Fetch these files some other way (from {bases[0]} or a copy you trust) and put them in {dest}:",
        *(f"    {filename}  sha256 {_ARCHIVES[name][filename].sha256}" for filename in missing),
        f"kdcore.data.load({name!r}) then finds them there (or set $KDCORE_DATA, or pass data_dir=...).",
    ]
    if name == "fashion-mnist":
        lines.append("On Debian and Ubuntu, `apt install dataset-fashion-mnist` provides them too.")
    return "\n".join(lines)


def _copy_with_progress(response, out, filename: str, progress: bool) -> None:
    length = response.headers.get("Content-Length") if response.headers is not None else None
    total = int(length) if length and length.isdigit() else None
    bar = None
    if progress:
        try:
            from tqdm import tqdm
        except ImportError:  # the bar is a nicety: without tqdm, one line per file
            print(f"downloading {filename} ...", file=sys.stderr)
        else:
            bar = tqdm(
                total=total, desc=filename, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr
            )
    try:
        while chunk := response.read(_CHUNK_BYTES):
            out.write(chunk)
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()


# ------------------------------------------------------------------------------------------------- digits


def _load_digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise ImportError(
            f"the 'digits' data set is the copy bundled with scikit-learn, which is not installed: "
            f"{_DATA_EXTRA}"
        ) from error
    bunch = load_digits()
    x = (np.asarray(bunch.data, dtype=np.float64) / 16.0).astype(np.float32)  # pixels are 0..16
    labels = np.asarray(bunch.target).astype(np.int64)
    test = _stratified_test_mask(labels, _DIGITS_TEST_FRACTION, _DIGITS_SPLIT_SEED)
    keep = test if split == "test" else ~test
    return x[keep], labels[keep]


def _stratified_test_mask(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A boolean mask of the test samples: per class, a seeded choice of round-half-up(fraction · count).

    Written with NumPy alone (not ``train_test_split``), so the split cannot change with scikit-learn's
    version; samples keep their original order in both parts.
    """
    rng = np.random.default_rng(seed)
    mask = np.zeros(labels.shape, dtype=bool)
    for label in np.unique(labels):  # sorted, so the draws happen in a fixed order
        members = np.flatnonzero(labels == label)
        n_test = math.floor(fraction * members.size + 0.5)
        mask[rng.permutation(members)[:n_test]] = True
    return mask


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
