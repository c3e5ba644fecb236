"""The core functions against PyTorch, an independent implementation (run by `make test-frameworks`)."""

import numpy as np
import pytest

import kdcore

torch = pytest.importorskip("torch")
F = torch.nn.functional
pytestmark = pytest.mark.frameworks


def torch_soft_losses(student, teacher, T):
    """The two usual PyTorch spellings, with autograd gradients w.r.t. student, teacher and T."""
    z = torch.tensor(student, requires_grad=True)
    v = torch.tensor(teacher, requires_grad=True)
    t = torch.tensor(T, dtype=z.dtype, requires_grad=True)
    log_p = F.log_softmax(z / t, dim=-1)
    kl = F.kl_div(log_p, F.log_softmax(v / t, dim=-1), reduction="batchmean", log_target=True)
    ce = -(F.softmax(v / t, dim=-1) * log_p).sum(-1).mean()
    results = {}
    for name, loss in (("kl", kl), ("soft_ce", ce)):
        grads = torch.autograd.grad(loss, (z, v, t), retain_graph=True)
        results[name] = (loss.item(), *(g.numpy() for g in grads))
    return results


@pytest.mark.parametrize("T", [0.5, 1.0, 4.0, 20.0])
def test_soft_losses_and_all_gradients(T, rng):
    student, teacher = rng.normal(size=(8, 10)) * 3, rng.normal(size=(8, 10)) * 3
    expected = torch_soft_losses(student, teacher, T)
    for name, value, grad in (
        ("kl", kdcore.kl_divergence, kdcore.kl_divergence_grad),
        ("soft_ce", kdcore.soft_cross_entropy, kdcore.soft_cross_entropy_grad),
    ):
        loss, d_student, d_teacher, d_T = expected[name]
        assert value(student, teacher, T) == pytest.approx(loss, rel=1e-12)
        np.testing.assert_allclose(grad(student, teacher, T), d_student, rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(grad(student, teacher, T, wrt="teacher"), d_teacher, rtol=1e-8, atol=1e-14)
        assert grad(student, teacher, T, wrt="temperature") == pytest.approx(float(d_T), rel=1e-8, abs=1e-14)


def test_softmax_family(rng):
    z = rng.normal(size=(4, 7)) * 5
    zt = torch.tensor(z)
    np.testing.assert_allclose(kdcore.softmax(z, 3.0), F.softmax(zt / 3.0, dim=-1).numpy(), rtol=1e-13)
    np.testing.assert_allclose(
        kdcore.log_softmax(z, 3.0), F.log_softmax(zt / 3.0, dim=-1).numpy(), rtol=1e-13
    )
    np.testing.assert_allclose(
        kdcore.logsumexp(z, 3.0), torch.logsumexp(zt / 3.0, dim=-1).numpy(), rtol=1e-13
    )


def test_hard_cross_entropy(rng):
    z, y = rng.normal(size=(6, 5)), rng.integers(0, 5, size=6)
    zt = torch.tensor(z, requires_grad=True)
    loss = F.cross_entropy(zt, torch.tensor(y))
    (grad,) = torch.autograd.grad(loss, zt)
    assert kdcore.cross_entropy(z, y) == pytest.approx(loss.item(), rel=1e-13)
    np.testing.assert_allclose(kdcore.cross_entropy_grad(z, y), grad.numpy(), rtol=1e-10, atol=1e-16)


def test_hessian_against_autograd(rng):
    z, v, T = rng.normal(size=6), rng.normal(size=6), 2.5
    vt = torch.tensor(v)

    def loss(s):
        return F.kl_div(F.log_softmax(s / T, -1), F.softmax(vt / T, -1), reduction="sum")

    hessian = torch.autograd.functional.hessian(loss, torch.tensor(z))
    np.testing.assert_allclose(kdcore.kl_divergence_hessian(z, v, T), hessian.numpy(), rtol=1e-10, atol=1e-16)


def test_distillation_loss_and_grad(rng):
    z, v, y, T, alpha = rng.normal(size=(5, 4)), rng.normal(size=(5, 4)), rng.integers(0, 4, 5), 3.0, 0.25
    zt = torch.tensor(z, requires_grad=True)
    soft = F.kl_div(F.log_softmax(zt / T, -1), F.softmax(torch.tensor(v) / T, -1), reduction="batchmean")
    loss = alpha * F.cross_entropy(zt, torch.tensor(y)) + (1 - alpha) * T**2 * soft
    (grad,) = torch.autograd.grad(loss, zt)
    assert kdcore.distillation_loss(z, v, y, T, alpha, soft="kl") == pytest.approx(loss.item(), rel=1e-12)
    np.testing.assert_allclose(
        kdcore.distillation_loss_grad(z, v, y, T, alpha), grad.numpy(), rtol=1e-9, atol=1e-15
    )


def test_float32_matches_torch_float32(rng):
    z, v = (
        (rng.normal(size=(16, 100)) * 4).astype(np.float32),
        (rng.normal(size=(16, 100)) * 4).astype(np.float32),
    )
    zt = torch.tensor(z, requires_grad=True)
    loss = F.kl_div(
        F.log_softmax(zt / 2.0, -1),
        F.log_softmax(torch.tensor(v) / 2.0, -1),
        reduction="batchmean",
        log_target=True,
    )
    (grad,) = torch.autograd.grad(loss, zt)
    ours = kdcore.kl_divergence_grad(z, v, 2.0)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, grad.numpy(), rtol=2e-4, atol=1e-8)
    assert kdcore.kl_divergence(z, v, 2.0) == pytest.approx(loss.item(), rel=1e-4)
