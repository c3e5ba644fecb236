"""Functions with known derivatives for the tests of kdcore.gradcheck, written here (not taken from kdcore)
so that the checker is tested on its own."""

import numpy as np


def softmax(logits):
    shifted = logits - np.max(logits, axis=-1, keepdims=True)
    exps = np.exp(shifted)
    return exps / np.sum(exps, axis=-1, keepdims=True)


def log_softmax(logits):
    shifted = logits - np.max(logits, axis=-1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def log_sum_exp(logits):
    largest = np.max(logits)
    return largest + np.log(np.sum(np.exp(logits - largest)))


def soft_cross_entropy(student_logits, teacher_probs, T):
    """-Σ teacher_probs · log softmax(student_logits / T), summed over samples."""
    return -np.sum(teacher_probs * log_softmax(student_logits / T))


def soft_cross_entropy_grad(student_logits, teacher_probs, T):
    """(softmax(z / T) − teacher_probs) / T per sample (the teacher's rows sum to 1)."""
    return (softmax(student_logits / T) - teacher_probs) / T


def soft_cross_entropy_hessian_blocks(student_logits, T):
    """(diag(s) − s sᵀ) / T² for each sample: shape student_logits.shape + (N,)."""
    student_probs = softmax(student_logits / T)
    diagonal = np.einsum("...i,ij->...ij", student_probs, np.eye(student_logits.shape[-1]))
    return (diagonal - student_probs[..., :, None] * student_probs[..., None, :]) / T**2


def block_diagonal(blocks):
    """Per-sample blocks of shape (B, N, N) as the full Hessian of shape (B, N, B, N)."""
    n_samples, n_classes = blocks.shape[:2]
    full = np.zeros((n_samples, n_classes, n_samples, n_classes))
    for sample in range(n_samples):
        full[sample, :, sample, :] = blocks[sample]
    return full


def kd_problem(rng, shape=(3, 4), T=2.0):
    """Student logits, teacher probabilities, and the loss, gradient and Hessian blocks as closures."""
    student_logits = rng.normal(scale=2.0, size=shape)
    teacher_probs = softmax(rng.normal(scale=2.0, size=shape))
    return (
        student_logits,
        lambda z: soft_cross_entropy(z, teacher_probs, T),
        lambda z: soft_cross_entropy_grad(z, teacher_probs, T),
        lambda z: soft_cross_entropy_hessian_blocks(z, T),
    )


def sum_of_squares(x):
    return np.sum(x**2)


def sum_of_squares_grad(x):
    return 2 * x


def sum_of_sines(x):
    return np.sum(np.sin(x))


class Spy:
    """Wraps a function; records whether the arrays it was given were the caller's own, and scribbles on
    them afterwards, so that any sharing of memory between the checker and the function shows up."""

    def __init__(self, function, watched):
        self.function = function
        self.watched = watched
        self.saw_caller_array = False

    def __call__(self, *arrays):
        self.saw_caller_array |= any(np.shares_memory(array, self.watched) for array in arrays)
        result = self.function(*(array.copy() for array in arrays))
        for array in arrays:
            array[...] = 1e300  # a function that writes into its input
        return result
