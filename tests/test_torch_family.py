"""The divergences of docs/divergences.md against PyTorch autograd (run by `make test-frameworks`).

Each loss is written the way its best-known implementation writes it (trl's generalized_jsd_loss, DistiLLM's
skew KLs, mdistiller's dkd_loss, the logit-standardisation code's normalize), in float64, and every
derivative kdcore computes is compared with autograd's.
"""

import numpy as np
import pytest

import kdcore

torch = pytest.importorskip("torch")
F = torch.nn.functional
pytestmark = pytest.mark.frameworks


def autograd(loss_fn, student, teacher, T):
    """(loss, ∂/∂student, ∂/∂teacher, ∂/∂T) of a torch loss of (z, v, t)."""
    z = torch.tensor(student, requires_grad=True)
    v = torch.tensor(teacher, requires_grad=True)
    t = torch.tensor(T, dtype=z.dtype, requires_grad=True)
    loss = loss_fn(z, v, t)
    grads = torch.autograd.grad(loss, (z, v, t))
    return (loss.item(), *(g.numpy() for g in grads))


# Per-position losses (one value per row of (..., V) logits), written as their implementations write them;
# ``batch_mean`` turns one into the batch mean that the 2-D tests compare.


def reverse_kl_rows(z, v, t):
    return F.kl_div(
        F.log_softmax(v / t, -1), F.log_softmax(z / t, -1), reduction="none", log_target=True
    ).sum(-1)


def jsd_rows(beta):
    def loss(z, v, t):  # trl's GKDTrainer.generalized_jsd_loss, 0 < beta < 1
        log_p, log_q = F.log_softmax(z / t, -1), F.log_softmax(v / t, -1)
        b = torch.tensor(beta, dtype=log_p.dtype)
        log_m = torch.logsumexp(torch.stack([log_p + torch.log(1 - b), log_q + torch.log(b)]), dim=0)
        kl_teacher = F.kl_div(log_m, log_q, reduction="none", log_target=True)
        kl_student = F.kl_div(log_m, log_p, reduction="none", log_target=True)
        return (beta * kl_teacher + (1 - beta) * kl_student).sum(-1)

    return loss


def skew_rows(alpha, reverse):
    def loss(z, v, t):  # DistiLLM's skewed_forward_kl / skewed_reverse_kl
        p, q = F.softmax(z / t, -1), F.softmax(v / t, -1)
        if reverse:
            mixed = alpha * p + (1 - alpha) * q
            return (p * (torch.log(p) - torch.log(mixed))).sum(-1)
        mixed = alpha * q + (1 - alpha) * p
        return (q * (torch.log(q) - torch.log(mixed))).sum(-1)

    return loss


def dkd_rows(labels, alpha, beta):
    def loss(z, v, t):  # mdistiller's dkd_loss per sample; its teacher side in log space (mdistiller detaches
        # the teacher, and a target probability of exactly 0 would give NaN teacher gradients in autograd)
        gt = F.one_hot(torch.tensor(labels), z.shape[-1]).bool()
        p, q = F.softmax(z / t, -1), F.softmax(v / t, -1)
        bp = torch.stack([(p * gt).sum(-1), (p * ~gt).sum(-1)], -1)
        bq = torch.stack([(q * gt).sum(-1), (q * ~gt).sum(-1)], -1)
        tckd = F.kl_div(torch.log(bp), torch.log(bq), reduction="none", log_target=True).sum(-1) * t**2
        log_q_rest = F.log_softmax(v / t - 1000.0 * gt, -1)
        log_p_rest = F.log_softmax(z / t - 1000.0 * gt, -1)
        nckd = F.kl_div(log_p_rest, log_q_rest, reduction="none", log_target=True).sum(-1) * t**2
        return alpha * tckd + beta * nckd

    return loss


def batch_mean(rows):
    return lambda z, v, t: rows(z, v, t).mean()


torch_reverse_kl = batch_mean(reverse_kl_rows)


def torch_jsd(beta):
    return batch_mean(jsd_rows(beta))


def torch_skew(alpha, reverse):
    return batch_mean(skew_rows(alpha, reverse))


def torch_dkd(labels, alpha, beta):
    return batch_mean(dkd_rows(labels, alpha, beta))


CASES = {
    "reverse_kl": (torch_reverse_kl, kdcore.reverse_kl_divergence, kdcore.reverse_kl_divergence_grad, {}),
    "jsd_0.5": (
        torch_jsd(0.5),
        kdcore.jensen_shannon_divergence,
        kdcore.jensen_shannon_divergence_grad,
        {"beta": 0.5},
    ),
    "jsd_0.1": (
        torch_jsd(0.1),
        kdcore.jensen_shannon_divergence,
        kdcore.jensen_shannon_divergence_grad,
        {"beta": 0.1},
    ),
    "skew_kl": (
        torch_skew(0.1, False),
        kdcore.skew_kl_divergence,
        kdcore.skew_kl_divergence_grad,
        {"skew": 0.1},
    ),
    "skew_reverse_kl": (
        torch_skew(0.1, True),
        kdcore.skew_reverse_kl_divergence,
        kdcore.skew_reverse_kl_divergence_grad,
        {"skew": 0.1},
    ),
}


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("T", [0.5, 1.0, 4.0])
def test_value_and_every_gradient(name, T, rng):
    torch_loss, value, grad, kwargs = CASES[name]
    student, teacher = rng.normal(size=(8, 10)) * 3, rng.normal(size=(8, 10)) * 3
    loss, d_student, d_teacher, d_T = autograd(torch_loss, student, teacher, T)
    assert value(student, teacher, T, **kwargs) == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(grad(student, teacher, T, **kwargs), d_student, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(
        grad(student, teacher, T, **kwargs, wrt="teacher"), d_teacher, rtol=1e-9, atol=1e-15
    )
    assert grad(student, teacher, T, **kwargs, wrt="temperature") == pytest.approx(
        float(d_T), rel=1e-8, abs=1e-14
    )


def test_reverse_kl_hessian(rng):
    z, v, T = rng.normal(size=6), rng.normal(size=6), 2.5
    vt = torch.tensor(v)

    def loss(s):
        return F.kl_div(F.log_softmax(vt / T, -1), F.log_softmax(s / T, -1), reduction="sum", log_target=True)

    hessian = torch.autograd.functional.hessian(loss, torch.tensor(z))
    np.testing.assert_allclose(
        kdcore.reverse_kl_divergence_hessian(z, v, T), hessian.numpy(), rtol=1e-10, atol=1e-16
    )


@pytest.mark.parametrize("T", [1.0, 4.0])
def test_decoupled_kd(T, rng):
    # mdistiller's "−1000" leaves e^{-1000} on the target: invisible in float64 at these logits.
    student, teacher, labels = (
        rng.normal(size=(8, 10)) * 3,
        rng.normal(size=(8, 10)) * 3,
        rng.integers(0, 10, 8),
    )
    loss, d_student, d_teacher, d_T = autograd(torch_dkd(labels, 1.0, 8.0), student, teacher, T)
    assert kdcore.decoupled_kd_loss(student, teacher, labels, T) == pytest.approx(loss, rel=1e-12)
    for wrt, expected in (("student", d_student), ("teacher", d_teacher)):
        got = kdcore.decoupled_kd_loss_grad(student, teacher, labels, T, wrt=wrt)
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-14)
    got = kdcore.decoupled_kd_loss_grad(student, teacher, labels, T, wrt="temperature")
    assert got == pytest.approx(float(d_T), rel=1e-8)


def test_logit_standardization_through_a_soft_loss(rng):
    # The official code: normalize(logit) = (logit − mean)/(1e-7 + std) with torch's unbiased std, then
    # KL at the base temperature, times τ².
    student, teacher, tau = rng.normal(size=(6, 10)) * 4 + 2, rng.normal(size=(6, 10)) * 2, 2.0

    def normalize(x):
        return (x - x.mean(-1, keepdim=True)) / (1e-7 + x.std(-1, keepdim=True))

    def loss(z, v, t):
        kl = F.kl_div(
            F.log_softmax(normalize(z) / t, -1), F.softmax(normalize(v) / t, -1), reduction="batchmean"
        )
        return kl * t**2

    value, d_student, d_teacher, _ = autograd(loss, student, teacher, tau)
    zs = kdcore.standardize_logits(student, ddof=1, eps=1e-7)
    vs = kdcore.standardize_logits(teacher, ddof=1, eps=1e-7)
    np.testing.assert_allclose(zs, normalize(torch.tensor(student)).numpy(), rtol=1e-13, atol=1e-14)
    assert tau**2 * kdcore.kl_divergence(zs, vs, tau) == pytest.approx(value, rel=1e-12)
    ours = kdcore.standardize_logits_vjp(
        student, tau**2 * kdcore.kl_divergence_grad(zs, vs, tau), ddof=1, eps=1e-7
    )
    np.testing.assert_allclose(ours, d_student, rtol=1e-9, atol=1e-15)
    upstream = tau**2 * kdcore.kl_divergence_grad(zs, vs, tau, wrt="teacher")
    np.testing.assert_allclose(
        kdcore.standardize_logits_vjp(teacher, upstream, ddof=1, eps=1e-7), d_teacher, rtol=1e-9, atol=1e-15
    )


# ---------------------------------------------------------------------------------------------------------
# Token level: a (batch, sequence, vocab) batch with -100 labels on padding, the mean over kept tokens
# (sum(loss·mask)/mask.sum(), as trl and Hugging Face write it). Torch gets finite logits at the padding
# (autograd would turn NaN·0 into NaN); kdcore gets NaN there, and must never look at them.


def kl_rows(z, v, t):
    return F.kl_div(
        F.log_softmax(z / t, -1), F.log_softmax(v / t, -1), reduction="none", log_target=True
    ).sum(-1)


def soft_cross_entropy_rows(z, v, t):
    return -(F.softmax(v / t, -1) * F.log_softmax(z / t, -1)).sum(-1)


def token_batch(rng, n_classes=11):
    labels = rng.integers(0, n_classes, size=(3, 5))
    labels[0, 3:] = -100  # right padding
    labels[2, :2] = -100  # a prompt
    keep = labels != -100
    z, v = rng.normal(size=(3, 5, n_classes)) * 3, rng.normal(size=(3, 5, n_classes)) * 3
    return z, v, labels, keep


def nan_padded(x, keep):
    x = x.copy()
    x[~keep] = np.nan
    return x


TOKEN_CASES = {  # name: (torch per-token loss given clean labels, kdcore value name, its keywords, labelled)
    "kl_divergence": (lambda y: kl_rows, {}, False),
    "soft_cross_entropy": (lambda y: soft_cross_entropy_rows, {}, False),
    "reverse_kl_divergence": (lambda y: reverse_kl_rows, {}, False),
    "jensen_shannon_divergence": (lambda y: jsd_rows(0.3), {"beta": 0.3}, False),
    "skew_kl_divergence": (lambda y: skew_rows(0.1, False), {"skew": 0.1}, False),
    "skew_reverse_kl_divergence": (lambda y: skew_rows(0.1, True), {"skew": 0.1}, False),
    "decoupled_kd_loss": (lambda y: dkd_rows(y, 1.0, 8.0), {"alpha": 1.0, "beta": 8.0}, True),
}


@pytest.mark.parametrize("name", TOKEN_CASES)
@pytest.mark.parametrize("T", [1.0, 3.0])
def test_masked_token_batch(name, T, rng):
    z, v, labels, keep = token_batch(rng)
    torch_rows, options, labelled = TOKEN_CASES[name]
    rows = torch_rows(np.where(keep, labels, 0))
    mask = torch.tensor(keep, dtype=torch.float64)

    def loss(zt, vt, t):
        return (rows(zt, vt, t) * mask).sum() / mask.sum()

    value, d_student, d_teacher, d_T = autograd(loss, z, v, T)
    zn, vn = nan_padded(z, keep), nan_padded(v, keep)
    # the labels' -100 drops the padding for DKD; the soft losses take the mask token_mask makes of them
    head = (zn, vn, labels, T) if labelled else (zn, vn, T)
    extra = {} if labelled else {"mask": kdcore.token_mask(labels)}
    ours = getattr(kdcore, name)(*head, **options, **extra)
    assert ours == pytest.approx(value, rel=1e-12)
    grad = getattr(kdcore, f"{name}_grad")
    np.testing.assert_allclose(grad(*head, **options, **extra), d_student, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(
        grad(*head, **options, **extra, wrt="teacher"), d_teacher, rtol=1e-9, atol=1e-15
    )
    assert grad(*head, **options, **extra, wrt="temperature") == pytest.approx(
        float(d_T), rel=1e-8, abs=1e-15
    )
    fused_value, fused_grad = getattr(kdcore, f"{name}_and_grad")(*head, **options, **extra)
    assert fused_value == pytest.approx(value, rel=1e-12)
    np.testing.assert_allclose(fused_grad, d_student, rtol=1e-9, atol=1e-15)


def test_masked_token_batch_hard_and_mixed_losses(rng):
    z, v, labels, keep = token_batch(rng)
    zn, vn = nan_padded(z, keep), nan_padded(v, keep)
    zt = torch.tensor(z, requires_grad=True)
    # Hugging Face's convention: CrossEntropyLoss(ignore_index=-100), the mean over kept tokens.
    ce = F.cross_entropy(zt.reshape(-1, z.shape[-1]), torch.tensor(labels).reshape(-1), ignore_index=-100)
    (d_ce,) = torch.autograd.grad(ce, zt)
    assert kdcore.cross_entropy(zn, labels) == pytest.approx(ce.item(), rel=1e-13)
    np.testing.assert_allclose(kdcore.cross_entropy_grad(zn, labels), d_ce.numpy(), rtol=1e-10, atol=1e-16)
    # Hinton's loss per token, the same mean.
    mask = torch.tensor(keep, dtype=torch.float64)
    T, alpha = 2.0, 0.3
    clean = torch.tensor(np.where(keep, labels, 0))
    hard = F.cross_entropy(zt.transpose(1, 2), clean, reduction="none")
    soft = soft_cross_entropy_rows(zt, torch.tensor(v), T)
    mixed = ((alpha * hard + (1 - alpha) * T**2 * soft) * mask).sum() / mask.sum()
    (d_mixed,) = torch.autograd.grad(mixed, zt)
    value, grad = kdcore.distillation_loss_and_grad(zn, vn, labels, T, alpha)
    assert value == pytest.approx(mixed.item(), rel=1e-12)
    np.testing.assert_allclose(grad, d_mixed.numpy(), rtol=1e-9, atol=1e-15)
    # logit matching per token
    centred = (zt - zt.mean(-1, keepdim=True)) - torch.tensor(v - v.mean(-1, keepdims=True))
    mse = ((centred**2).mean(-1) * mask).sum() / mask.sum()
    (d_mse,) = torch.autograd.grad(mse, zt)
    assert kdcore.logit_mse(zn, vn, mask=keep) == pytest.approx(mse.item(), rel=1e-12)
    np.testing.assert_allclose(kdcore.logit_mse_grad(zn, vn, mask=keep), d_mse.numpy(), rtol=1e-9, atol=1e-15)


HESSIAN_CASES = {  # kdcore Hessian: (torch per-row loss given labels, positional arguments after T)
    "skew_kl_divergence_hessian": (lambda y: skew_rows(0.1, False), (0.1,)),
    "skew_reverse_kl_divergence_hessian": (lambda y: skew_rows(0.1, True), (0.1,)),
    "jensen_shannon_divergence_hessian": (lambda y: jsd_rows(0.3), (0.3,)),
    "decoupled_kd_loss_hessian": (lambda y: dkd_rows(y, 1.0, 8.0), (1.0, 8.0)),
}


@pytest.mark.parametrize("name", HESSIAN_CASES)
def test_hessian_vector_products(name, rng):
    z, v = rng.normal(size=(4, 7)) * 2, rng.normal(size=(4, 7)) * 2
    labels, T = np.array([0, 3, 6, 2]), 1.7
    direction = rng.normal(size=z.shape)
    torch_rows, weights = HESSIAN_CASES[name]
    rows = torch_rows(labels)
    vt, t = torch.tensor(v), torch.tensor(T, dtype=torch.float64)
    _, product = torch.autograd.functional.hvp(
        lambda s: rows(s, vt, t).sum(), torch.tensor(z), torch.tensor(direction)
    )
    head = (z, v, labels, T) if name.startswith("decoupled") else (z, v, T)
    hessian = getattr(kdcore, name)(*head, *weights)
    np.testing.assert_allclose(
        np.einsum("rij,rj->ri", hessian, direction), product.numpy(), rtol=1e-9, atol=1e-14
    )
