"""Tests of kdcore.data.archives: download, offline — a ``file://`` mirror, or a stand-in for ``urlopen``,
serves real bytes from the files already on the machine — and the digests pinned for each archive."""

import gzip
import hashlib
import http.client
import io
import re
import shutil
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from conftest import DEBIAN_FASHION_MNIST, SHARED_MNIST
from idx_files import IDX_STEMS, requires, sha256

from kdcore.data import archives, download, load

FASHION_FILES = tuple(archives._ARCHIVES["fashion-mnist"])


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
        for filename, archive in archives._ARCHIVES["fashion-mnist"].items():
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
        for filename, archive in archives._ARCHIVES["mnist"].items():
            path = SHARED_MNIST / filename
            if not path.is_file():  # the training images are not available offline
                continue
            assert path.stat().st_size == archive.size
            assert hashlib.md5(path.read_bytes()).hexdigest() == archive.md5
            assert sha256(path) == archive.sha256
            checked += 1
        assert checked >= 3

    def test_constants_are_well_formed(self):
        for per_file in archives._ARCHIVES.values():
            assert sorted(per_file) == sorted(f"{stem}.gz" for stems in IDX_STEMS.values() for stem in stems)
            for archive in per_file.values():
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
            assert sha256(dest / filename) == archives._ARCHIVES["fashion-mnist"][filename].sha256
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
        first, second = archives._MIRRORS["fashion-mnist"]
        requested = []

        def fake_urlopen(url, timeout):
            requested.append(url)
            assert timeout > 0
            if url.startswith(first):
                raise urllib.error.URLError("simulated outage")
            return FakeResponse((fashion_mirror / url.removeprefix(second)).read_bytes())

        monkeypatch.setattr(archives.urllib.request, "urlopen", fake_urlopen)
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
        assert archives._ARCHIVES["fashion-mnist"]["train-images-idx3-ubyte.gz"].sha256 in message
        assert sha256(DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz") in message
        assert list(dest.iterdir()) == []

    def test_a_bad_existing_file_is_replaced(self, fashion_mirror, tmp_path):
        stale = tmp_path / "t10k-labels-idx1-ubyte.gz"
        shutil.copyfile(DEBIAN_FASHION_MNIST / stale.name, stale)
        download("fashion-mnist", tmp_path, progress=False, mirrors=[fashion_mirror.as_uri()])
        assert sha256(stale) == archives._ARCHIVES["fashion-mnist"][stale.name].sha256

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
        for filename, archive in archives._ARCHIVES["mnist"].items():
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
            archives.urllib.request, "urlopen", lambda url, timeout: FakeResponse(payload, fail_after=100_000)
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
