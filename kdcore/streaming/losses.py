"""The losses :func:`~kdcore.streaming.stream_loss` computes: each function, its gradient, the arrays it takes."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from dataclasses import dataclass

from .. import decoupled, distillation, divergences, mixtures, reverse_kl, topk
from ..cross_entropy import cross_entropy, cross_entropy_grad

__all__ = ["LOSSES"]


@dataclass(frozen=True)
class _Loss:
    """A loss, its gradient (and fused value-and-gradient, where it exists), and the arrays it takes."""

    function: Callable
    grad: Callable
    inputs: tuple[str, ...]  # which of "student", "teacher", "labels", in the function's order
    # The function is called on 1/pieces of a chunk at a time. Most losses cut their input into pieces of a
    # few rows themselves (kdcore/_chunks.py), so their temporaries do not grow with the chunk. The top-k
    # losses and logit_mse do not: they hold arrays the size of their whole input (the top-k "tail"
    # convention several of them, logit_mse two; benchmarks/bench_vocab.py measures it), so streaming cuts
    # the chunk for them; and for the mixture family, see _losses().
    pieces: int = 1

    @property
    def name(self) -> str:
        return self.function.__name__

    @property
    def and_grad(self) -> Callable | None:
        # Looked up at call time, so a fused version added to a module later is used without an edit here.
        return getattr(sys.modules[self.function.__module__], f"{self.name}_and_grad", None)


def _losses() -> dict[str, _Loss]:
    soft, labelled = ("student", "teacher"), ("student", "teacher", "labels")
    top_k = ("student", "teacher_values", "teacher_indices")
    entries = [
        (divergences.kl_divergence, divergences.kl_divergence_grad, soft),
        (divergences.soft_cross_entropy, divergences.soft_cross_entropy_grad, soft),
        (reverse_kl.reverse_kl_divergence, reverse_kl.reverse_kl_divergence_grad, soft),
        (mixtures.jensen_shannon_divergence, mixtures.jensen_shannon_divergence_grad, soft),
        (mixtures.skew_kl_divergence, mixtures.skew_kl_divergence_grad, soft),
        (mixtures.skew_reverse_kl_divergence, mixtures.skew_reverse_kl_divergence_grad, soft),
        (distillation.logit_mse, distillation.logit_mse_grad, soft),
        (distillation.distillation_loss, distillation.distillation_loss_grad, labelled),
        (decoupled.decoupled_kd_loss, decoupled.decoupled_kd_loss_grad, labelled),
        (decoupled.target_class_kl_divergence, decoupled.target_class_kl_divergence_grad, labelled),
        (decoupled.non_target_class_kl_divergence, decoupled.non_target_class_kl_divergence_grad, labelled),
        (cross_entropy, cross_entropy_grad, ("student", "labels")),
        (topk.topk_kl_divergence, topk.topk_kl_divergence_grad, top_k),
        (topk.topk_soft_cross_entropy, topk.topk_soft_cross_entropy_grad, top_k),
    ]
    losses = {function.__name__: _Loss(function, grad, inputs) for function, grad, inputs in entries}
    pieces = {"topk_kl_divergence": 8, "topk_soft_cross_entropy": 8, "logit_mse": 4}
    # The mixture family's careful kernel holds a few dozen float64 arrays the length of a row per row in
    # work, per thread, and cuts its input (kdcore/_chunks.py map_rows) into pieces of up to 2^18 elements:
    # two rows at 128 000 classes when called on a whole chunk. On a quarter of a chunk it works one row at
    # a time, which halves its memory (57 → 28 MiB per thread at 128 000 classes) at no cost in time.
    for name in ("jensen_shannon_divergence", "skew_kl_divergence", "skew_reverse_kl_divergence"):
        pieces[name] = 4
    for name, count in pieces.items():
        losses[name] = dataclasses.replace(losses[name], pieces=count)
    return losses


#: The losses :func:`stream_loss` computes, by the name of their kdcore function.
LOSSES: dict[str, _Loss] = _losses()
