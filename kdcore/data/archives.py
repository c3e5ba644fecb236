r"""Downloading the canonical MNIST and Fashion-MNIST archives, verified by size, SHA-256 and MD5.

:func:`download` (and ``kdcore data download NAME``) fetches each archive from the first mirror that serves it
intact, into a hidden temporary file renamed into place only once its digests match, so that an interrupted
download never leaves a file that :func:`kdcore.data.load` would read.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import secrets
import sys
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from kdcore._arrays import check_choice

from .locate import IDX_DATASETS, _default_cache_dir


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
#   tests/test_data_archives.py rebuilds them and checks again.
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

_DATA_EXTRA = "pip install 'kdcore[data]'"

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
