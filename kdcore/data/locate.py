r"""Where the IDX files of MNIST and Fashion-MNIST are looked for, and what to say when they are nowhere.

The look-up order is documented in :mod:`kdcore.data`; :func:`_locate_split` returns the first directory's
pair of files or raises ``FileNotFoundError`` naming the files and every directory searched.
"""

from __future__ import annotations

import os
from pathlib import Path

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
