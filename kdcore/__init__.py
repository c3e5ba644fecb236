"""kdcore: knowledge-distillation math in pure NumPy — exact, checked, teachable.

Notation used throughout: student logits ``z``, teacher logits ``v``, temperature ``T``,
``student_probs = softmax(z/T)`` (p), ``teacher_probs = softmax(v/T)`` (q); class axis last.
"""

from ._version import __version__

from . import gradcheck
from ._chunks import get_num_threads
from ._chunks import num_threads
from ._chunks import set_num_threads
from .cross_entropy import cross_entropy
from .cross_entropy import cross_entropy_and_grad
from .cross_entropy import cross_entropy_grad
from .distillation import distillation_loss
from .distillation import distillation_loss_and_grad
from .distillation import distillation_loss_grad
from .distillation import logit_mse
from .distillation import logit_mse_and_grad
from .distillation import logit_mse_grad
from .divergences import kl_divergence
from .divergences import kl_divergence_and_grad
from .divergences import kl_divergence_grad
from .divergences import kl_divergence_hessian
from .divergences import soft_cross_entropy
from .divergences import soft_cross_entropy_and_grad
from .divergences import soft_cross_entropy_grad
from .reverse_kl import reverse_kl_divergence
from .reverse_kl import reverse_kl_divergence_and_grad
from .reverse_kl import reverse_kl_divergence_grad
from .reverse_kl import reverse_kl_divergence_hessian
from .mixtures import jensen_shannon_divergence
from .mixtures import jensen_shannon_divergence_and_grad
from .mixtures import jensen_shannon_divergence_grad
from .hessians import jensen_shannon_divergence_hessian
from .mixtures import skew_kl_divergence
from .mixtures import skew_kl_divergence_and_grad
from .mixtures import skew_kl_divergence_grad
from .hessians import skew_kl_divergence_hessian
from .mixtures import skew_reverse_kl_divergence
from .mixtures import skew_reverse_kl_divergence_and_grad
from .mixtures import skew_reverse_kl_divergence_grad
from .hessians import skew_reverse_kl_divergence_hessian
from .decoupled import decoupled_kd_loss
from .decoupled import decoupled_kd_loss_and_grad
from .decoupled import decoupled_kd_loss_grad
from .hessians import decoupled_kd_loss_hessian
from .decoupled import non_target_class_kl_divergence
from .decoupled import non_target_class_kl_divergence_grad
from .decoupled import target_class_kl_divergence
from .decoupled import target_class_kl_divergence_grad
from .standardize import standardize_logits
from .standardize import standardize_logits_jacobian
from .standardize import standardize_logits_vjp
from .topk import topk_kl_divergence
from .topk import topk_kl_divergence_and_grad
from .topk import topk_kl_divergence_grad
from .hessians import topk_kl_divergence_hessian
from .topk import topk_soft_cross_entropy
from .topk import topk_soft_cross_entropy_grad
from .topk import topk_teacher
from .softmax import log_softmax
from .softmax import logsumexp
from .softmax import softmax
from .softmax import softmax_jacobian
from .softmax import softmax_vjp
from .tokens import token_mask
from .mlp import MLP
from .train import fit
from . import arrays_on_disk
from . import streaming
from .arrays_on_disk import open_array
from .streaming import stream_loss

__all__ = [
    "MLP",
    "__version__",
    "arrays_on_disk",
    "cross_entropy",
    "cross_entropy_and_grad",
    "cross_entropy_grad",
    "decoupled_kd_loss",
    "decoupled_kd_loss_and_grad",
    "decoupled_kd_loss_grad",
    "decoupled_kd_loss_hessian",
    "distillation_loss",
    "distillation_loss_and_grad",
    "distillation_loss_grad",
    "fit",
    "get_num_threads",
    "gradcheck",
    "jensen_shannon_divergence",
    "jensen_shannon_divergence_and_grad",
    "jensen_shannon_divergence_grad",
    "jensen_shannon_divergence_hessian",
    "kl_divergence",
    "kl_divergence_and_grad",
    "kl_divergence_grad",
    "kl_divergence_hessian",
    "log_softmax",
    "logit_mse",
    "logit_mse_and_grad",
    "logit_mse_grad",
    "logsumexp",
    "non_target_class_kl_divergence",
    "non_target_class_kl_divergence_grad",
    "num_threads",
    "open_array",
    "reverse_kl_divergence",
    "reverse_kl_divergence_and_grad",
    "reverse_kl_divergence_grad",
    "reverse_kl_divergence_hessian",
    "set_num_threads",
    "skew_kl_divergence",
    "skew_kl_divergence_and_grad",
    "skew_kl_divergence_grad",
    "skew_kl_divergence_hessian",
    "skew_reverse_kl_divergence",
    "skew_reverse_kl_divergence_and_grad",
    "skew_reverse_kl_divergence_grad",
    "skew_reverse_kl_divergence_hessian",
    "soft_cross_entropy",
    "soft_cross_entropy_and_grad",
    "soft_cross_entropy_grad",
    "softmax",
    "softmax_jacobian",
    "softmax_vjp",
    "standardize_logits",
    "standardize_logits_jacobian",
    "standardize_logits_vjp",
    "stream_loss",
    "streaming",
    "target_class_kl_divergence",
    "target_class_kl_divergence_grad",
    "token_mask",
    "topk_kl_divergence",
    "topk_kl_divergence_and_grad",
    "topk_kl_divergence_grad",
    "topk_kl_divergence_hessian",
    "topk_soft_cross_entropy",
    "topk_soft_cross_entropy_grad",
    "topk_teacher",
]
