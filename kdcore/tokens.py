r"""Token-level inputs: logits of any leading shape ``(..., V)``, and which positions a loss keeps.

Language-model distillation computes a loss per token of a ``(batch, sequence, vocab)`` array, and a batch
is padded: positions whose label is ``-100`` (the Hugging Face / PyTorch ``ignore_index`` convention) or
whose attention mask is 0 are not tokens. Every loss in kdcore takes the same two keywords:

* ``mask`` — boolean, the leading shape of the logits, True = keep the position;
* ``ignore_index`` (losses that take ``labels``) — positions whose label equals it are dropped; with
  ``mask`` the two are combined by AND.

A dropped position is never computed (its logits may be anything, NaN included, and raise no warning).
``reduction="none"`` gives the per-position values of the leading shape with exactly 0.0 at dropped
positions (PyTorch's ``CrossEntropyLoss(reduction="none")`` convention); ``"sum"`` adds the kept values;
``"mean"`` divides that sum by the number of kept positions — the mean over kept tokens. Gradients are
exactly 0 at dropped positions, and the gradient of the mean is each kept row's own gradient divided by
the number of kept positions. With no position kept, ``"mean"`` is 0.0 and its gradient 0 (PyTorch's
``sum / mask.sum()`` gives NaN there). docs/divergences.md, "Token-level inputs and reductions", says
which reduction the well-known trainers use.

For a soft loss, which has no labels, :func:`token_mask` turns the labels of a batch into its mask.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._arrays import _describe, check_int

__all__ = ["token_mask"]


def token_mask(labels: ArrayLike, ignore_index: int = -100) -> np.ndarray:
    r"""The keep-mask of a batch of token labels: True where ``labels != ignore_index``.

    Parameters
    ----------
    labels : array_like of int, shape (...)
        Token labels, e.g. shape ``(batch, sequence)``; padding and prompt positions hold ``ignore_index``.
    ignore_index : int, default -100
        The label that marks a position to drop (PyTorch's and Hugging Face's ``-100``).

    Returns
    -------
    numpy.ndarray of bool, shape (...)
        True at the positions to keep: the ``mask=`` of every kdcore loss.

    Notes
    -----
    With :math:`K = \sum_{b,s} m_{bs}` kept positions, ``reduction="mean"`` of a per-token loss
    :math:`\ell_{bs}` is :math:`\frac1K\sum_{b,s} m_{bs}\,\ell_{bs}` (0 when :math:`K = 0`).

    Examples
    --------
    >>> import numpy as np
    >>> import kdcore
    >>> labels = np.array([[5, 2, -100], [7, -100, -100]])
    >>> mask = kdcore.token_mask(labels)
    >>> mask
    array([[ True,  True, False],
           [ True, False, False]])
    >>> rng = np.random.default_rng(0)
    >>> z, v = rng.normal(size=(2, 3, 8)), rng.normal(size=(2, 3, 8))
    >>> per_token = kdcore.kl_divergence(z, v, reduction="none", mask=mask)
    >>> per_token[mask].round(4), per_token[~mask]
    (array([0.6867, 0.936 , 0.5995]), array([0., 0., 0.]))
    >>> bool(np.isclose(kdcore.kl_divergence(z, v, mask=mask), per_token.sum() / mask.sum()))
    True
    """
    array = np.asarray(labels)
    if array.dtype.kind not in "iu":
        raise TypeError(f"labels must be integer token labels, got dtype {array.dtype} ({_describe(labels)})")
    return array != check_int(ignore_index, "ignore_index")
