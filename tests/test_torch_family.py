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


def torch_reverse_kl(z, v, t):
    return F.kl_div(
        F.log_softmax(v / t, -1), F.log_softmax(z / t, -1), reduction="batchmean", log_target=True
    )


def torch_jsd(beta):
    def loss(z, v, t):  # trl's GKDTrainer.generalized_jsd_loss, 0 < beta < 1
        log_p, log_q = F.log_softmax(z / t, -1), F.log_softmax(v / t, -1)
        b = torch.tensor(beta, dtype=log_p.dtype)
        log_m = torch.logsumexp(torch.stack([log_p + torch.log(1 - b), log_q + torch.log(b)]), dim=0)
        kl_teacher = F.kl_div(log_m, log_q, reduction="none", log_target=True)
        kl_student = F.kl_div(log_m, log_p, reduction="none", log_target=True)
        return (beta * kl_teacher + (1 - beta) * kl_student).sum() / z.shape[0]

    return loss


def torch_skew(alpha, reverse):
    def loss(z, v, t):  # DistiLLM's skewed_forward_kl / skewed_reverse_kl (no masking, batch mean)
        p, q = F.softmax(z / t, -1), F.softmax(v / t, -1)
        if reverse:
            mixed = alpha * p + (1 - alpha) * q
            return (p * (torch.log(p) - torch.log(mixed))).sum(-1).mean()
        mixed = alpha * q + (1 - alpha) * p
        return (q * (torch.log(q) - torch.log(mixed))).sum(-1).mean()

    return loss


def torch_dkd(labels, alpha, beta):
    def loss(z, v, t):  # mdistiller's dkd_loss; its teacher side in log space (mdistiller detaches the
        # teacher, and a target probability of exactly 0 would give NaN teacher gradients in autograd)
        gt = F.one_hot(torch.tensor(labels), z.shape[-1]).bool()
        p, q = F.softmax(z / t, -1), F.softmax(v / t, -1)
        bp = torch.stack([(p * gt).sum(-1), (p * ~gt).sum(-1)], -1)
        bq = torch.stack([(q * gt).sum(-1), (q * ~gt).sum(-1)], -1)
        tckd = F.kl_div(torch.log(bp), torch.log(bq), reduction="sum", log_target=True) * t**2 / z.shape[0]
        log_q_rest = F.log_softmax(v / t - 1000.0 * gt, -1)
        log_p_rest = F.log_softmax(z / t - 1000.0 * gt, -1)
        nckd = F.kl_div(log_p_rest, log_q_rest, reduction="sum", log_target=True) * t**2 / z.shape[0]
        return alpha * tckd + beta * nckd

    return loss


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
