r"""The sweep file: one (T, α) sweep of :func:`kdcore.sweeps.run_sweep` as validated JSON.

:func:`kdcore.sweeps.run_sweep` returns (and :func:`save_sweep` writes as JSON, :func:`load_sweep` reads
and validates) one dict, format ``"kdcore-sweep"`` version 2:

.. code-block:: text

    format              "kdcore-sweep"
    format_version      2
    kdcore_version      the kdcore that wrote it, e.g. "0.1.0"
    dataset             the data set, e.g. "digits"
    evaluation          {"folds": k, "images": n}: k = 1, the data set's test split of n images;
                        k ≥ 2, k-fold cross-validation, each of the n images evaluated once per seed
    temperatures        [T_1, …, T_a]        distinct, positive, finite
    alphas              [α_1, …, α_b]        distinct, in [0, 1] (weight of the hard-label term)
    seeds               [s_1, …, s_c]        distinct integers ≥ 0 (student initialisation and shuffling)
    accuracy            a × b × c nested list: accuracy on the n evaluation images of the student
                        distilled at (temperatures[i], alphas[j]) with seeds[k], each in [0, 1]
    baseline_accuracy   c values: the same student trained on the labels alone, per seed
    teacher             {"sizes": [...], "test_accuracy": float, "epochs": int or null}
    student             {"sizes": [...], "activation": str, "epochs": int, "batch_size": int, "lr": float}

Version 1 files (kdcore 0.1: no ``evaluation``, always the test split) are still read; their
``evaluation`` is ``None``. Unknown extra keys are allowed (for forward compatibility); a missing or
malformed entry makes :func:`load_sweep` raise a ``ValueError`` that names the file and the entry.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from ._arrays import _describe

__all__ = ["SWEEP_FORMAT", "SWEEP_FORMAT_VERSION", "load_sweep", "save_sweep", "write_json"]

#: The ``format`` entry of a sweep record.
SWEEP_FORMAT = "kdcore-sweep"
#: Bumped when the record changes incompatibly; :func:`load_sweep` reads this one and the ones before.
SWEEP_FORMAT_VERSION = 2


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _validate_sweep(record: object, where: str) -> dict:
    """Check a sweep record entry by entry; raise ValueError naming ``where`` and the entry."""

    def bad(entry: str, why: str) -> ValueError:
        return ValueError(f"{where} is not a valid kdcore sweep: {entry} {why}")

    if not isinstance(record, Mapping):
        raise bad("the top level", f"must be a JSON object, got {type(record).__name__}")
    required = (
        "format",
        "format_version",
        "dataset",
        "temperatures",
        "alphas",
        "seeds",
        "accuracy",
        "baseline_accuracy",
        "teacher",
        "student",
    )
    missing = [key for key in required if key not in record]
    if missing:
        raise bad("the keys", f"{missing} are missing")
    if record["format"] != SWEEP_FORMAT:
        raise bad("'format'", f"must be {SWEEP_FORMAT!r}, got {_describe(record['format'])}")
    version = record["format_version"]
    if version not in (1, SWEEP_FORMAT_VERSION) or isinstance(version, bool):
        raise bad(
            "'format_version'",
            f"must be 1 or {SWEEP_FORMAT_VERSION} (this kdcore reads no other), got {_describe(version)}",
        )
    evaluation = record.get("evaluation")
    if version == 1:
        evaluation = None  # kdcore 0.1 always evaluated on the test split, and did not record its size
    elif not (
        isinstance(evaluation, Mapping) and all(_is_count(evaluation.get(key)) for key in ("folds", "images"))
    ):
        raise bad(
            "'evaluation'",
            f"must be an object with integers 'folds' ≥ 1 and 'images' ≥ 1, got {_describe(evaluation)}",
        )
    if not isinstance(record["dataset"], str):
        raise bad("'dataset'", f"must be a string, got {_describe(record['dataset'])}")

    def axis(key: str, check) -> list:
        values = record[key]
        if not isinstance(values, list) or not values or not all(check(v) for v in values):
            raise bad(f"{key!r}", f"must be a non-empty list of valid values, got {_describe(values)}")
        if len(set(values)) != len(values):
            raise bad(f"{key!r}", f"must not repeat a value, got {values}")
        return values

    temperatures = axis("temperatures", lambda T: _is_number(T) and T > 0)
    alphas = axis("alphas", lambda a: _is_number(a) and 0 <= a <= 1)
    seeds = axis("seeds", lambda s: isinstance(s, int) and not isinstance(s, bool) and s >= 0)

    def is_accuracy(value: object) -> bool:
        return _is_number(value) and 0 <= value <= 1

    shape = (len(temperatures), len(alphas), len(seeds))
    accuracy = record["accuracy"]
    well_formed = (
        isinstance(accuracy, list)
        and len(accuracy) == shape[0]
        and all(isinstance(row, list) and len(row) == shape[1] for row in accuracy)
        and all(isinstance(cell, list) and len(cell) == shape[2] for row in accuracy for cell in row)
    )
    if not well_formed:
        raise bad(
            "'accuracy'",
            f"must be a nested list of shape {shape} (temperatures × alphas × seeds), got {_describe(accuracy)}",
        )
    if not all(is_accuracy(value) for row in accuracy for cell in row for value in cell):
        raise bad("'accuracy'", "must hold numbers in [0, 1] only")
    baseline = record["baseline_accuracy"]
    if not isinstance(baseline, list) or len(baseline) != shape[2] or not all(map(is_accuracy, baseline)):
        raise bad(
            "'baseline_accuracy'",
            f"must be {shape[2]} numbers in [0, 1] (one per seed), got {_describe(baseline)}",
        )
    teacher, student = record["teacher"], record["student"]
    if not isinstance(teacher, Mapping) or not is_accuracy(teacher.get("test_accuracy")):
        raise bad(
            "'teacher'", f"must be an object with a 'test_accuracy' in [0, 1], got {_describe(teacher)}"
        )
    for name, entry in (("teacher", teacher), ("student", student)):
        sizes = entry.get("sizes") if isinstance(entry, Mapping) else None
        if (
            not isinstance(sizes, list)
            or len(sizes) < 2
            or not all(isinstance(s, int) and s > 0 for s in sizes)
        ):
            raise bad(
                f"'{name}'",
                f"must be an object whose 'sizes' lists ≥ 2 positive integers, got {_describe(entry)}",
            )
    return {**record, "evaluation": None if evaluation is None else dict(evaluation)}


def save_sweep(result: Mapping, path: str | os.PathLike) -> Path:
    """Write a sweep record (from :func:`run_sweep`) as JSON, validated first, atomically.

    Parameters
    ----------
    result : mapping
        The record; see the module docstring.
    path : str or os.PathLike
        The file to write. Its directory must exist.

    Returns
    -------
    pathlib.Path
        ``path``.

    Notes
    -----
    Keys are sorted and the layout fixed, so the same record gives the same bytes. The file is written
    under a temporary name and renamed into place: an interrupted save leaves the old file intact.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from kdcore.figures import load_sweep, run_sweep, save_sweep, train_teacher
    >>> teacher = train_teacher("digits", hidden=(16,), epochs=3)
    >>> sweep = run_sweep(temperatures=(1.0, 4.0), alphas=(0.5,), seeds=(0,), teacher=teacher,
    ...                   student_hidden=(4,), epochs=1)
    >>> with tempfile.TemporaryDirectory() as directory:
    ...     path = save_sweep(sweep, pathlib.Path(directory) / "sweep.json")
    ...     load_sweep(path) == sweep
    True
    """
    return write_json(_validate_sweep(result, "the sweep to save"), path)


def write_json(record: Mapping, path: str | os.PathLike) -> Path:
    """Write ``record`` as JSON with sorted keys (the same record, the same bytes), atomically.

    Also how :func:`kdcore.figures.write_all` stores the data behind its other figures.
    """
    path = Path(path)
    text = json.dumps(record, indent=1, sort_keys=True, allow_nan=False) + "\n"
    # A fresh name opened with "x" (not tempfile.mkstemp, whose files are private, mode 0600): the result
    # gets the permissions the user's umask gives any new file.
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        with open(temporary, "x", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def load_sweep(path: str | os.PathLike) -> dict:
    """Read and validate a sweep file written by :func:`save_sweep` (or ``kdcore sweep``).

    Parameters
    ----------
    path : str or os.PathLike
        The JSON file.

    Returns
    -------
    dict
        The sweep record.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ValueError
        If the file is not JSON, or not a valid sweep record (wrong format or version, a missing entry, an
        ``accuracy`` whose shape does not match the grid, a value out of range); the message names the file
        and the entry.

    Examples
    --------
    A file that is not a sweep is refused with the reason (here, one written by hand):

    >>> import tempfile, pathlib
    >>> from kdcore.figures import load_sweep
    >>> with tempfile.TemporaryDirectory() as directory:
    ...     path = pathlib.Path(directory) / "not_a_sweep.json"
    ...     _ = path.write_text('{"temperatures": [1, 2]}')
    ...     try:
    ...         load_sweep(path)
    ...     except ValueError as error:
    ...         print("refused:", "not_a_sweep.json" in str(error))
    refused: True
    """
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not a valid kdcore sweep: not UTF-8 text ({error})") from error
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not a valid kdcore sweep: not JSON ({error})") from error
    return _validate_sweep(record, str(path))
