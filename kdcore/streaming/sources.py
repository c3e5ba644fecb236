"""Where a stream's rows come from, and which of them are kept: arrays on disk or in memory, masks, labels."""

from __future__ import annotations

import itertools
import math
import os

import numpy as np

from .._arrays import check_int
from ..arrays_on_disk import ArrayOnDisk, open_array

__all__: list[str] = []


class _InMemory:
    """An array already in memory (a NumPy array, an ``np.memmap``), read through the same interface."""

    def __init__(self, value: object, name: str) -> None:
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim
        self.row_length = array.shape[-1] if array.ndim else 1
        self.n_rows = math.prod(array.shape[:-1])
        self._rows = array.reshape(self.n_rows, self.row_length)  # a view for contiguous arrays and memmaps

    def rows(self, start: int, stop: int) -> np.ndarray:
        return self._rows[start:stop]

    def read(self) -> np.ndarray:
        return self._rows.reshape(self.shape)

    def release(self, start: int, stop: int) -> None:
        pass

    def close(self) -> None:
        pass


def _source(value: object, name: str, opened: list) -> ArrayOnDisk | _InMemory:
    if isinstance(value, ArrayOnDisk):
        return value
    if isinstance(value, str | os.PathLike):
        array = open_array(value)
        opened.append(array)
        return array
    return _InMemory(value, name)


def _keep_mask(mask, labels, ignore_index, leading: tuple[int, ...], n_classes: int, needs_labels: bool):
    """The flat boolean keep-mask (None: all kept) and the flat labels (None: none given), checked."""
    keep = None
    if mask is not None:
        keep = mask.read()
        if keep.dtype != np.bool_:
            raise TypeError(f"mask must be a boolean array (True = keep), got dtype {keep.dtype}")
        if keep.shape != leading:
            raise ValueError(f"mask must have the logits' leading shape {leading}, got shape {keep.shape}")
        keep = keep.reshape(-1)
    flat_labels = None
    if labels is not None:
        flat_labels = labels.read()
        if flat_labels.dtype.kind not in "iu":
            raise TypeError(f"labels must be integer class indices, got dtype {flat_labels.dtype}")
        if flat_labels.shape != leading:
            raise ValueError(
                f"labels must have the logits' leading shape {leading} (one per position), "
                f"got shape {flat_labels.shape}"
            )
        flat_labels = flat_labels.reshape(-1)
        ignore_index = check_int(ignore_index, "ignore_index")
        kept_labels = flat_labels != ignore_index
        keep = kept_labels if keep is None else keep & kept_labels
        checked = flat_labels if keep is None else flat_labels[keep]
        if needs_labels and checked.size and (checked.min() < 0 or checked.max() >= n_classes):
            bad = int(checked.min()) if checked.min() < 0 else int(checked.max())
            raise ValueError(
                f"labels must be in [0, {n_classes}) (or ignore_index={ignore_index}: dropped), got a label {bad}"
            )
    elif needs_labels:
        raise TypeError("this loss needs labels (labels=...)")
    if keep is not None and keep.all():
        keep = None
    return keep, flat_labels


def _runs(keep: np.ndarray) -> list[tuple[bool, int]]:
    """Consecutive runs of kept / dropped rows: ``[(kept?, length), ...]``."""
    edges = np.flatnonzero(np.diff(keep.astype(np.int8))) + 1
    bounds = [0, *edges.tolist(), keep.size]
    return [(bool(keep[a]), b - a) for a, b in itertools.pairwise(bounds)]
