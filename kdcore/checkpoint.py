r"""Checkpoints: a model, its optimiser and the training metadata in one ``.npz`` file, safely.

The format is NumPy's own ``.npz`` (a zip of ``.npy`` files) holding numeric arrays only:

* ``param0, param1, …`` — the model's parameters, in :attr:`MLP.params <kdcore.mlp.MLP.params>` order;
* ``optimizer_step, optimizer_velocity0, …`` — the optimiser's :meth:`state_dict` arrays, prefixed;
* ``metadata`` — a uint8 array of UTF-8 JSON: the format name and version, ``kdcore.__version__``, the
  model's constructor arguments and dropout-generator state, the optimiser's hyperparameters, the
  training configuration, the epoch, the history so far, and the name of the data set the model was trained
  on (``dataset``: one of :data:`kdcore.data.DATASETS` or a user's own name; null when not given, and for
  checkpoints written before the field existed).

Two promises, both tested:

**Nothing is ever unpickled.** A ``.npy`` member whose dtype holds Python objects is refused by reading
its header, before any data is read, and the arrays are then read with ``allow_pickle=False``. Loading a
checkpoint from an untrusted source cannot run code.

**Saving is atomic.** The file is written under a temporary name in the same directory, flushed to disk
(``fsync``), and only then renamed over the old one with :func:`os.replace`, which is atomic on POSIX and
Windows. A crash or Ctrl-C during a save leaves the previous checkpoint as it was, and no temporary file.
"""

from __future__ import annotations

import contextlib
import json
import numbers
import os
import secrets
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .arrays_on_disk import read_npy_header
from .mlp import MLP
from .optim import SGD, Adam, from_config

__all__ = ["FORMAT", "FORMAT_VERSION", "Checkpoint", "load", "save"]

#: The ``format`` entry of every kdcore checkpoint's metadata.
FORMAT = "kdcore-checkpoint"
#: Bumped when the layout changes incompatibly; :func:`load` refuses newer versions.
FORMAT_VERSION = 1

_REQUIRED_METADATA = ("format", "format_version", "kdcore_version", "model", "optimizer", "config", "epoch")
_REQUIRED_MODEL = ("sizes", "activation", "dropout", "seed", "dtype", "dropout_rng_state")
_OPTIMIZER_PREFIX = "optimizer_"


@dataclass
class Checkpoint:
    """What :func:`load` returns.

    Attributes
    ----------
    model : MLP
        The model, with the saved parameters and dropout-generator state.
    optimizer : SGD or Adam or None
        The optimiser rebuilt from its hyperparameters, with its saved state loaded (None if none was saved).
    metadata : dict
        The whole JSON metadata (see the module docstring).
    """

    model: MLP
    optimizer: SGD | Adam | None
    metadata: dict

    @property
    def epoch(self) -> int | None:
        """The number of completed epochs when the checkpoint was saved (None if not given)."""
        return self.metadata["epoch"]

    @property
    def dataset(self) -> str | None:
        """The data set the model was trained on, as given to :func:`save` (None: not recorded)."""
        return self.metadata.get("dataset")

    @property
    def config(self) -> dict:
        """The training configuration passed to :func:`save`."""
        return self.metadata["config"]

    @property
    def optimizer_state(self) -> dict[str, np.ndarray]:
        """The optimiser's state arrays (empty without an optimiser)."""
        return {} if self.optimizer is None else self.optimizer.state_dict()


def save(
    path: str | os.PathLike,
    model: MLP,
    optimizer: SGD | Adam | None = None,
    config: Mapping | None = None,
    *,
    epoch: int | None = None,
    history: Mapping | None = None,
    dataset: str | None = None,
) -> Path:
    r"""Write a checkpoint atomically: either the new file is complete, or the old one is untouched.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write, used as given (no ``.npz`` is appended). Its directory must exist.
    model : MLP
        The model to save: constructor arguments, parameters and dropout-generator state.
    optimizer : SGD or Adam, optional
        Saved as its ``config()`` (in the metadata) and ``state_dict()`` (as arrays).
    config : mapping, optional
        Training configuration to keep with the model (learning rate, T, α, …); must be JSON-serialisable.
    epoch : int, optional
        The number of completed epochs.
    history : mapping, optional
        The training history so far, JSON-serialisable (``History.to_dict()`` from :mod:`kdcore.train`).
    dataset : str, optional
        The name of the data set the model was trained on — one of :data:`kdcore.data.DATASETS`
        (``kdcore.data.load``'s names) or a user's own, non-empty. Read back as :attr:`Checkpoint.dataset`,
        so a checkpoint's user (``kdcore figures --checkpoint``) need not guess it from the input width.

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> from kdcore.mlp import MLP
    >>> from kdcore import checkpoint
    >>> model = MLP([4, 8, 3], seed=0)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = pathlib.Path(tmp) / "model.npz"
    ...     _ = checkpoint.save(path, model, config={"T": 4.0}, epoch=3, dataset="digits")
    ...     loaded = checkpoint.load(path)
    >>> loaded.epoch, loaded.config, loaded.dataset
    (3, {'T': 4.0}, 'digits')
    >>> all(np.array_equal(a, b) for a, b in zip(loaded.model.params, model.params))
    True
    """
    from ._version import __version__

    if not isinstance(model, MLP):
        raise TypeError(f"model must be a kdcore.mlp.MLP, got {type(model).__name__}")
    if epoch is not None and (
        isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0
    ):
        raise ValueError(f"epoch must be a non-negative integer or None, got epoch={epoch!r}")
    problem = _dataset_problem(dataset)
    if problem:
        raise ValueError(f"dataset must be {problem}, got dataset={dataset!r}")
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kdcore_version": __version__,
        "model": {**model.config(), "dropout_rng_state": model.dropout_rng.bit_generator.state},
        "optimizer": None if optimizer is None else optimizer.config(),
        "config": {} if config is None else dict(config),
        "epoch": None if epoch is None else int(epoch),
        "history": None if history is None else dict(history),
        "dataset": dataset,
    }
    try:
        text = json.dumps(metadata)
    except (TypeError, ValueError) as error:  # before any file is touched
        raise ValueError(f"config and history must be JSON-serialisable: {error}") from None

    arrays = {"metadata": np.frombuffer(text.encode("utf-8"), dtype=np.uint8)}
    for k, param in enumerate(model.params):
        arrays[f"param{k}"] = param
    if optimizer is not None:
        for key, value in optimizer.state_dict().items():
            arrays[_OPTIMIZER_PREFIX + key] = value
    path = Path(path)
    _atomic_write(path, arrays)
    return path


def _dataset_problem(dataset: object) -> str | None:
    """What is wrong with a ``dataset`` entry (None if nothing): None or a short non-empty name."""
    if dataset is None:
        return None
    if not isinstance(dataset, str) or not dataset.strip() or len(dataset) > 200 or not dataset.isprintable():
        return "None or a non-empty printable name of at most 200 characters"
    return None


def _write_npz(file, arrays: Mapping[str, np.ndarray]) -> None:
    """The step that writes the bytes (a seam for tests that simulate a crash mid-write)."""
    np.savez(file, **arrays)


def _atomic_write(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    directory = path.parent
    # Same directory as the target: os.replace is atomic only within one file system.
    temporary = directory / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    # os.open with mode 0o666 lets the umask decide the permissions, as a plain open() would
    # (tempfile.mkstemp would make the checkpoint readable by its owner only).
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as file:
            _write_npz(file, arrays)
            file.flush()
            os.fsync(file.fileno())  # the data is on disk before the name points at it
        os.replace(temporary, path)
    except BaseException:  # KeyboardInterrupt too: never leave a half-written file behind
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    # Make the rename itself durable. Directories cannot be opened for fsync on Windows; skip there.
    if hasattr(os, "O_DIRECTORY"):
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _malformed(path: Path, what: str) -> ValueError:
    return ValueError(f"{path} is not a valid kdcore checkpoint: {what}")


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of the npz, after checking from the headers alone that none holds Python objects."""
    if not zipfile.is_zipfile(path):
        raise _malformed(path, "not an .npz (zip) file (truncated, or another format)")
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if not member.endswith(".npy"):
                    raise _malformed(path, f"unexpected member {member!r} (only .npy arrays belong here)")
                with archive.open(member) as file:
                    try:
                        _, _, dtype = read_npy_header(file)
                    except ValueError as error:  # (the array's name is what the message adds)
                        raise _malformed(path, f"array {member[:-4]!r}: {error}") from None
                if dtype.hasobject:
                    raise _malformed(
                        path,
                        f"array {member[:-4]!r} holds Python objects (dtype {dtype}), which would have to be "
                        "unpickled; kdcore refuses to unpickle anything",
                    )
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except ValueError as error:
        if str(error).startswith(f"{path} is not a valid"):
            raise
        raise _malformed(path, str(error)) from error
    except (zipfile.BadZipFile, EOFError, OSError) as error:  # corrupt members, bad CRCs, short reads
        raise _malformed(path, f"{type(error).__name__}: {error}") from error


def _read_metadata(path: Path, arrays: Mapping[str, np.ndarray]) -> dict:
    if "metadata" not in arrays:
        raise _malformed(path, "no 'metadata' array")
    raw = arrays["metadata"]
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise _malformed(
            path, f"'metadata' must be a 1-D uint8 array, got dtype {raw.dtype}, shape {raw.shape}"
        )
    try:
        metadata = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _malformed(path, f"metadata is not valid UTF-8 JSON ({error})") from None
    if not isinstance(metadata, dict):
        raise _malformed(path, f"metadata must be a JSON object, got {type(metadata).__name__}")
    missing = [key for key in _REQUIRED_METADATA if key not in metadata]
    if missing:
        raise _malformed(path, f"metadata lacks the key(s) {', '.join(map(repr, missing))}")
    if metadata["format"] != FORMAT:
        raise _malformed(path, f"metadata 'format' is {metadata['format']!r}, expected {FORMAT!r}")
    version = metadata["format_version"]
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise _malformed(
            path, f"format_version {version!r} is not one this kdcore reads (1 to {FORMAT_VERSION})"
        )
    model = metadata["model"]
    if not isinstance(model, dict):
        raise _malformed(path, "metadata 'model' must be a JSON object")
    missing = [key for key in _REQUIRED_MODEL if key not in model]
    if missing:
        raise _malformed(path, f"metadata 'model' lacks the key(s) {', '.join(map(repr, missing))}")
    epoch = metadata["epoch"]
    if epoch is not None and (not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0):
        raise _malformed(path, f"metadata 'epoch' must be a non-negative integer or null, got {epoch!r}")
    if not isinstance(metadata["config"], dict):
        raise _malformed(path, "metadata 'config' must be a JSON object")
    # Optional: checkpoints written before the field existed have no 'dataset' (read as None).
    problem = _dataset_problem(metadata.get("dataset"))
    if problem:
        raise _malformed(path, f"metadata 'dataset' must be {problem}, got {metadata['dataset']!r}")
    return metadata


def load(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by :func:`save`, validating everything and unpickling nothing.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint file.

    Returns
    -------
    Checkpoint
        The model, the optimiser (or None) and the metadata.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        If the file is not a well-formed kdcore checkpoint: not a zip (e.g. truncated), an array holding
        Python objects, missing or unparsable metadata, a missing metadata key, a parameter whose shape or
        dtype does not match the model described in the metadata, an unexpected array. The message names
        the file and the fault.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from kdcore import checkpoint
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     bad = pathlib.Path(tmp) / "notes.npz"
    ...     _ = bad.write_text("not a checkpoint")
    ...     try:
    ...         checkpoint.load(bad)
    ...     except ValueError as error:
    ...         print(str(error).replace(tmp, "<tmp>"))
    <tmp>/notes.npz is not a valid kdcore checkpoint: not an .npz (zip) file (truncated, or another format)
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if not path.is_file():
        raise _malformed(path, "not a regular file")
    arrays = _read_arrays(path)
    metadata = _read_metadata(path, arrays)

    model_config = metadata["model"]
    try:
        model = MLP(
            model_config["sizes"],
            activation=model_config["activation"],
            dropout=model_config["dropout"],
            seed=model_config["seed"],
            dtype=model_config["dtype"],
            # Absent from checkpoints written before these options existed: their models had neither.
            input_dropout=model_config.get("input_dropout", 0.0),
            max_norm=model_config.get("max_norm"),
        )
        model.dropout_rng.bit_generator.state = model_config["dropout_rng_state"]
    except (TypeError, ValueError) as error:
        raise _malformed(path, f"metadata 'model' is invalid: {error}") from None

    expected = set()
    for k, param in enumerate(model.params):
        name = f"param{k}"
        expected.add(name)
        if name not in arrays:
            raise _malformed(path, f"no array {name!r} (the model {model!r} has {len(model.params)})")
        saved = arrays[name]
        if saved.shape != param.shape or saved.dtype != param.dtype:
            raise _malformed(
                path,
                f"{name} has shape {saved.shape} and dtype {saved.dtype}, but sizes {list(model.sizes)} and "
                f"dtype {model.dtype} need shape {param.shape} and dtype {param.dtype}",
            )
        param[...] = saved

    optimizer = None
    state = {
        key[len(_OPTIMIZER_PREFIX) :]: value
        for key, value in arrays.items()
        if key.startswith(_OPTIMIZER_PREFIX)
    }
    expected |= {_OPTIMIZER_PREFIX + key for key in state}
    if metadata["optimizer"] is None:
        if state:
            raise _malformed(path, "optimizer arrays are present but the metadata has no optimizer")
    else:
        try:
            optimizer = from_config(metadata["optimizer"])
            if not isinstance(optimizer, SGD | Adam):
                raise ValueError(f"{metadata['optimizer']['name']!r} is not an optimiser")
            optimizer.load_state_dict(state, params=model.params)
        except (TypeError, ValueError) as error:
            raise _malformed(path, f"optimizer: {error}") from None

    unexpected = sorted(set(arrays) - expected - {"metadata"})
    if unexpected:
        raise _malformed(path, f"unexpected array(s) {', '.join(map(repr, unexpected))}")
    return Checkpoint(model=model, optimizer=optimizer, metadata=metadata)
