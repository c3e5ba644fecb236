"""Two losses against a top-k (sparse) teacher, for trying ``kdcore check --kind topk`` (docs/verify.md).

    kdcore check docs/examples/topk_losses.py:sparse_kl --framework torch --kind topk
    kdcore check docs/examples/topk_losses.py:sparse_kl_tail_dropped --framework torch --kind topk

Both take what an offline-distillation pipeline stores per token — the teacher's k largest log-probabilities
and their vocabulary ids — and are written the way arcee-ai/DistillKit's ``sparse_kl_div`` is (the student's
full log-softmax gathered at the stored ids, the loss times T² over the number of kept tokens); neither is
DistillKit's code. The first renormalises the teacher over its k classes (the convention ``dense_student``);
the second uses the stored probabilities as they are, so the teacher's mass outside its top k is dropped.
``tests/test_verify_topk.py`` checks what ``kdcore check`` says about each.
"""

import torch


def sparse_kl(logits, target_ids, target_values, mask, temperature=1.0):
    """KL(teacher ‖ student) per token: the teacher renormalised over its top k, the student dense."""
    student_log_probs = torch.log_softmax(logits / temperature, dim=-1).gather(-1, target_ids)
    teacher_log_probs = torch.log_softmax(target_values / temperature, dim=-1)
    per_token = (teacher_log_probs.exp() * (teacher_log_probs - student_log_probs)).sum(-1)
    return temperature**2 * (per_token * mask).sum() / mask.sum()


def sparse_kl_tail_dropped(logits, target_ids, target_values, mask, temperature=1.0):
    """The same, with the stored probabilities used as they are: they sum to less than 1."""
    student_log_probs = torch.log_softmax(logits / temperature, dim=-1).gather(-1, target_ids)
    teacher_log_probs = target_values / temperature
    per_token = (teacher_log_probs.exp() * (teacher_log_probs - student_log_probs)).sum(-1)
    return temperature**2 * (per_token * mask).sum() / mask.sum()
