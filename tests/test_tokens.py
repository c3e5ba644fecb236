"""Token-level inputs (kdcore/tokens.py, the reduction layer of kdcore/_arrays.py) on every public loss.

The one property everything follows from: a mask equals slicing the kept rows. For every loss, value and
derivative, reduction and fused function, the masked result at the kept positions is bit for bit the
result of the sliced rows, and exactly 0 at the dropped ones, whose logits are NaN here (pytest runs with
``filterwarnings = error``: computing them would fail the test). Then ignore_index, the all-dropped batch,
the errors, finite differences of the masked mean and hypothesis properties.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import kdcore
from kdcore import gradcheck

REDUCTIONS = ("none", "sum", "mean")
WRT = ("student", "teacher", "temperature")
T = 2.0
# name: keyword options; every soft loss is name(z, v, T, reduction, ..., mask=) with name_grad(..., wrt).
SOFT = {
    "kl_divergence": {},
    "soft_cross_entropy": {},
    "reverse_kl_divergence": {},
    "skew_kl_divergence": {"skew": 0.2},
    "skew_reverse_kl_divergence": {"skew": 0.2},
    "jensen_shannon_divergence": {"beta": 0.3},
}
LABELLED = {  # name(z, v, labels, T, reduction, ..., mask=, ignore_index=)
    "target_class_kl_divergence": {},
    "non_target_class_kl_divergence": {},
    "decoupled_kd_loss": {"alpha": 1.5, "beta": 4.0},
}
HESSIANS = {
    "kl_divergence_hessian": {},
    "reverse_kl_divergence_hessian": {},
    "skew_kl_divergence_hessian": {"skew": 0.2},
    "skew_reverse_kl_divergence_hessian": {"skew": 0.2},
    "jensen_shannon_divergence_hessian": {"beta": 0.3},
}


def _calls():
    """(label, kind, call(z, v, labels, reduction, **mask_keywords)) for every public loss and derivative.

    kind: "value" (a loss or a temperature derivative: the loss's shape) or "grad" (the logits' shape).
    """
    calls = []

    def call(name, options, labelled, suffix="", **fixed):
        """name + suffix called as name(z, v, [labels,] T, ..., reduction=r, **fixed, **mask keywords)."""

        def run(z, v, y, r, **k):
            head = (z, v, y, T) if labelled else (z, v, T)
            return getattr(kdcore, name + suffix)(*head, reduction=r, **options, **fixed, **k)

        return run

    for losses, labelled in ((SOFT, False), (LABELLED, True)):
        for name, options in losses.items():
            calls.append((name, "value", call(name, options, labelled)))
            for wrt in WRT:
                kind = "value" if wrt == "temperature" else "grad"
                calls.append((f"{name}_grad[{wrt}]", kind, call(name, options, labelled, "_grad", wrt=wrt)))
            if not labelled:
                for index, kind in enumerate(("value", "grad")):
                    fused = call(name, options, labelled, "_and_grad")
                    calls.append(
                        (f"{name}_and_grad[{index}]", kind, lambda *a, f=fused, i=index, **k: f(*a, **k)[i])
                    )
    for index, kind in enumerate(("value", "grad")):
        calls.append(
            (
                f"decoupled_kd_loss_and_grad[{index}]",
                kind,
                lambda z, v, y, r, i=index, **k: kdcore.decoupled_kd_loss_and_grad(
                    z, v, y, T, 1.5, 4.0, r, **k
                )[i],
            )
        )
        calls.append(
            (
                f"distillation_loss_and_grad[{index}]",
                kind,
                lambda z, v, y, r, i=index, **k: kdcore.distillation_loss_and_grad(
                    z, v, y, T, 0.3, reduction=r, **k
                )[i],
            )
        )
        calls.append(
            (
                f"cross_entropy_and_grad[{index}]",
                kind,
                lambda z, v, y, r, i=index, **k: kdcore.cross_entropy_and_grad(z, y, r, **k)[i],
            )
        )
        calls.append(
            (
                f"logit_mse_and_grad[{index}]",
                kind,
                lambda z, v, y, r, i=index, **k: kdcore.logit_mse_and_grad(z, v, reduction=r, **k)[i],
            )
        )
    calls += [
        (
            "distillation_loss",
            "value",
            lambda z, v, y, r, **k: kdcore.distillation_loss(z, v, y, T, 0.3, reduction=r, **k),
        ),
        (
            "distillation_loss_grad",
            "grad",
            lambda z, v, y, r, **k: kdcore.distillation_loss_grad(z, v, y, T, 0.3, reduction=r, **k),
        ),
        ("cross_entropy", "value", lambda z, v, y, r, **k: kdcore.cross_entropy(z, y, r, **k)),
        ("cross_entropy_grad", "grad", lambda z, v, y, r, **k: kdcore.cross_entropy_grad(z, y, r, **k)),
        ("logit_mse", "value", lambda z, v, y, r, **k: kdcore.logit_mse(z, v, reduction=r, **k)),
        ("logit_mse_grad", "grad", lambda z, v, y, r, **k: kdcore.logit_mse_grad(z, v, reduction=r, **k)),
    ]
    return calls


CALLS = _calls()
IDS = [label for label, _, _ in CALLS]
# Which calls take labels (and so ignore_index): the others get only mask=.
TAKES_LABELS = ("target_class", "non_target", "decoupled", "distillation", "cross_entropy")


def takes_labels(label: str) -> bool:
    return label.startswith(TAKES_LABELS)


def batch(rng, shape=(2, 5), n=7):
    """(B, S, V) logits with NaN at the dropped positions, labels with -100 at some, the keep-mask, and
    ``kept``: the positions that survive mask AND labels != -100."""
    z, v = rng.normal(size=(*shape, n)) * 3, rng.normal(size=(*shape, n)) * 3
    labels = rng.integers(0, n, size=shape)
    mask = np.ones(shape, dtype=bool)
    mask[0, -2:] = False  # right padding of the first sequence
    mask[1, 0] = False  # a prompt token of the second
    labels[1, -2] = -100  # dropped through the labels only
    kept = mask & (labels != -100)
    z[~kept] = np.nan
    v[~kept] = np.nan
    return z, v, labels, mask, kept


def masked_call(label, call, z, v, labels, mask, reduction):
    if takes_labels(label):
        return call(z, v, labels, reduction, mask=mask)  # ignore_index=-100: the default
    return call(z, v, labels, reduction, mask=mask & (labels != -100))


class TestMaskIsSlicing:
    @pytest.mark.parametrize("reduction", REDUCTIONS)
    @pytest.mark.parametrize(("label", "kind", "call"), CALLS, ids=IDS)
    def test_kept_positions_bit_for_bit_and_zero_elsewhere(self, label, kind, call, reduction, rng):
        z, v, labels, mask, kept = batch(rng)
        got = masked_call(label, call, z, v, labels, mask, reduction)
        sliced = call(z[kept], v[kept], labels[kept], reduction)
        if kind == "value" and reduction != "none":
            assert np.shape(got) == ()
            np.testing.assert_array_equal(got, sliced)
            return
        assert got.shape == (z.shape if kind == "grad" else z.shape[:-1])
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got[kept], sliced)
        assert np.all(got[~kept] == 0)

    @pytest.mark.parametrize("name", HESSIANS)
    def test_hessians(self, name, rng):
        z, v, _, _, kept = batch(rng)
        got = getattr(kdcore, name)(z, v, T, **HESSIANS[name], mask=kept)
        assert got.shape == z.shape + z.shape[-1:]
        np.testing.assert_array_equal(got[kept], getattr(kdcore, name)(z[kept], v[kept], T, **HESSIANS[name]))
        assert np.all(got[~kept] == 0)

    def test_dkd_hessian_with_ignore_index(self, rng):
        z, v, labels, mask, kept = batch(rng)
        got = kdcore.decoupled_kd_loss_hessian(z, v, labels, T, mask=mask)
        np.testing.assert_array_equal(
            got[kept], kdcore.decoupled_kd_loss_hessian(z[kept], v[kept], labels[kept], T)
        )
        assert np.all(got[~kept] == 0)

    @pytest.mark.parametrize(("label", "kind", "call"), CALLS, ids=IDS)
    def test_a_mask_keeping_everything_is_no_mask(self, label, kind, call, rng):
        z, v, labels, _, _ = batch(rng)
        z, v, labels = np.nan_to_num(z), np.nan_to_num(v), np.maximum(labels, 0)
        everything = np.ones(z.shape[:-1], dtype=bool)
        np.testing.assert_array_equal(call(z, v, labels, "none", mask=everything), call(z, v, labels, "none"))


class TestIgnoreIndex:
    @pytest.mark.parametrize(
        ("label", "kind", "call"),
        [c for c in CALLS if takes_labels(c[0])],
        ids=[i for i in IDS if takes_labels(i)],
    )
    def test_labels_alone_equal_the_mask(self, label, kind, call, rng):
        z, v, labels, _, _ = batch(rng)
        z, v = np.nan_to_num(z), np.nan_to_num(v)
        dropped = labels.copy()
        dropped[0, -2:] = -100
        mask = dropped != -100
        safe = np.where(mask, labels, 0)
        np.testing.assert_array_equal(call(z, v, dropped, "mean"), call(z, v, safe, "mean", mask=mask))

    def test_another_ignore_index(self, rng):
        z, v, labels, _, _ = batch(rng)
        z, v = np.nan_to_num(z), np.nan_to_num(v)
        labels = np.where(labels == -100, -1, labels)
        got = kdcore.cross_entropy(z, labels, ignore_index=-1)
        keep = labels != -1
        assert got == kdcore.cross_entropy(z[keep], labels[keep])
        with pytest.raises(
            ValueError, match=r"got a label -1 \(a label equal to ignore_index=-100 is dropped\)"
        ):
            kdcore.cross_entropy(z, labels)

    def test_token_mask(self):
        labels = np.array([[3, -100], [-100, 0]])
        np.testing.assert_array_equal(kdcore.token_mask(labels), [[True, False], [False, True]])
        np.testing.assert_array_equal(kdcore.token_mask(labels, ignore_index=0), labels != 0)
        with pytest.raises(TypeError, match="labels must be integer token labels, got dtype float64"):
            kdcore.token_mask(np.zeros(2))
        with pytest.raises(TypeError, match=r"ignore_index must be an integer, got ignore_index=-100\.0"):
            kdcore.token_mask(labels, ignore_index=-100.0)


class TestNothingKept:
    @pytest.mark.parametrize(("label", "kind", "call"), CALLS, ids=IDS)
    def test_mean_is_zero_with_a_zero_gradient(self, label, kind, call, rng):
        z, v, labels, _, _ = batch(rng)
        nothing = np.zeros(z.shape[:-1], dtype=bool)
        for reduction in REDUCTIONS:
            got = call(np.full_like(z, np.nan), np.full_like(v, np.nan), labels, reduction, mask=nothing)
            assert np.all(got == 0) and got.dtype == np.float64
            if kind == "grad" or reduction == "none":
                assert got.shape == (z.shape if kind == "grad" else z.shape[:-1])

    @pytest.mark.parametrize("leading", [(0,), (2, 0)])
    @pytest.mark.parametrize(("label", "kind", "call"), CALLS, ids=IDS)
    def test_an_empty_batch_is_nothing_kept(self, label, kind, call, leading):
        # A batch of zero positions (no mask at all) once reached the kernels and failed in np.min/np.max,
        # which have no identity for an empty array; it takes the nothing-kept path now.
        z = v = np.zeros((*leading, 7))
        labels = np.zeros(leading, dtype=int)
        for reduction in REDUCTIONS:
            got = call(z, v, labels, reduction)
            assert np.all(got == 0) and got.dtype == np.float64
            if kind == "grad" or reduction == "none":
                assert got.shape == (z.shape if kind == "grad" else leading)


class TestShapesAndDtypes:
    @pytest.mark.parametrize("shape", [(), (4,), (2, 3), (2, 2, 3)])
    def test_any_leading_shape(self, shape, rng):
        z, v = rng.normal(size=(*shape, 5)), rng.normal(size=(*shape, 5))
        mask = rng.random(shape) < 0.6
        per_position = kdcore.jensen_shannon_divergence(z, v, reduction="none", mask=mask)
        assert per_position.shape == shape
        grad = kdcore.jensen_shannon_divergence_grad(z, v, mask=mask)
        assert grad.shape == z.shape
        kept = int(np.sum(mask))
        expected = per_position.sum() / kept if kept else 0.0
        assert kdcore.jensen_shannon_divergence(z, v, mask=mask) == pytest.approx(expected, rel=1e-14)

    def test_float32_stays_float32(self, rng):
        z, v, labels, mask, kept = batch(rng)
        z32, v32 = z.astype(np.float32), v.astype(np.float32)
        assert kdcore.kl_divergence(z32, v32, reduction="none", mask=kept).dtype == np.float32
        assert kdcore.decoupled_kd_loss_grad(z32, v32, labels, mask=mask).dtype == np.float32
        value, grad = kdcore.skew_kl_divergence_and_grad(z32, v32, mask=kept)
        assert value.dtype == grad.dtype == np.float32


class TestErrors:
    def test_mask_dtype(self, rng):
        z = rng.normal(size=(2, 3, 4))
        with pytest.raises(TypeError, match=r"mask must be a boolean array \(True = keep\), got dtype int64"):
            kdcore.kl_divergence(z, z, mask=np.ones((2, 3), dtype=np.int64))

    def test_mask_shape(self, rng):
        z = rng.normal(size=(2, 3, 4))
        with pytest.raises(
            ValueError, match=r"mask must have the logits' leading shape \(2, 3\).*got shape \(2, 3, 4\)"
        ):
            kdcore.reverse_kl_divergence_grad(z, z, mask=np.ones((2, 3, 4), dtype=bool))

    def test_ignore_index_type(self, rng):
        z = rng.normal(size=(2, 4))
        with pytest.raises(TypeError, match="ignore_index must be an integer, got ignore_index='x'"):
            kdcore.decoupled_kd_loss(z, z, [0, 1], ignore_index="x")

    def test_kept_labels_are_still_checked(self, rng):
        z = rng.normal(size=(2, 4))
        with pytest.raises(ValueError, match=r"labels must be in \[0, 4\), got a label 7"):
            kdcore.distillation_loss(z, z, [7, -100], T=2.0, alpha=0.5)
        # ... but not where the mask drops them
        assert np.isfinite(
            kdcore.distillation_loss(z, z, [1, 7], T=2.0, alpha=0.5, mask=np.array([True, False]))
        )


class TestFiniteDifferences:
    @pytest.mark.parametrize(
        ("label", "kind", "call"),
        [c for c in CALLS if c[1] == "grad" and "teacher" not in c[0]],
        ids=[i for i, k, _ in CALLS if k == "grad" and "teacher" not in i],
    )
    def test_gradient_of_the_masked_mean(self, label, kind, call, rng):
        z, v, labels, mask, _ = batch(rng, shape=(2, 3), n=4)
        z, v = np.nan_to_num(z, nan=0.7), np.nan_to_num(v, nan=-0.3)  # finite, but dropped
        value = next(c for lab, k, c in CALLS if lab == _value_of(label))
        report = gradcheck.check_gradient(
            lambda x: float(masked_call(label, value, x, v, labels, mask, "mean")),
            lambda x: masked_call(label, call, x, v, labels, mask, "mean"),
            z,
            name=label,
        )
        assert report.passed, str(report)


def _value_of(grad_label: str) -> str:
    """The value call whose student gradient ``grad_label`` is."""
    if grad_label.endswith("_and_grad[1]"):
        return grad_label[: -len("[1]")] + "[0]"
    return grad_label.replace("_grad[student]", "").replace("_grad", "")


class TestProperties:
    @given(
        mask=hnp.arrays(bool, hnp.array_shapes(min_dims=1, max_dims=3, max_side=4)),
        seed=st.integers(0, 2**16),
    )
    def test_mean_sum_and_none_agree(self, mask, seed):
        rng = np.random.default_rng(seed)
        z, v = rng.normal(size=(*mask.shape, 3)), rng.normal(size=(*mask.shape, 3))
        z[~mask] = np.nan
        none = kdcore.skew_reverse_kl_divergence(z, v, reduction="none", mask=mask)
        total = kdcore.skew_reverse_kl_divergence(z, v, reduction="sum", mask=mask)
        mean = kdcore.skew_reverse_kl_divergence(z, v, reduction="mean", mask=mask)
        assert np.all(none[~mask] == 0) and total == pytest.approx(none.sum(), rel=1e-13, abs=1e-300)
        kept = int(mask.sum())
        assert mean == (pytest.approx(total / kept, rel=1e-15) if kept else 0.0)
        grad = kdcore.skew_reverse_kl_divergence_grad(z, v, mask=mask)
        grad_sum = kdcore.skew_reverse_kl_divergence_grad(z, v, reduction="sum", mask=mask)
        np.testing.assert_allclose(grad * max(kept, 1), grad_sum, rtol=1e-14, atol=1e-300)
        assert np.all(grad[~mask] == 0)


# fused name: (value function, gradient function, positional arguments after the logits, keywords)
FUSED = {
    "kl_divergence_and_grad": ("kl_divergence", "kl_divergence_grad", (T,), {}),
    "soft_cross_entropy_and_grad": ("soft_cross_entropy", "soft_cross_entropy_grad", (T,), {}),
    "reverse_kl_divergence_and_grad": ("reverse_kl_divergence", "reverse_kl_divergence_grad", (T,), {}),
    "skew_kl_divergence_and_grad": ("skew_kl_divergence", "skew_kl_divergence_grad", (T,), {"skew": 0.2}),
    "skew_reverse_kl_divergence_and_grad": (
        "skew_reverse_kl_divergence",
        "skew_reverse_kl_divergence_grad",
        (T,),
        {"skew": 0.2},
    ),
    "jensen_shannon_divergence_and_grad": (
        "jensen_shannon_divergence",
        "jensen_shannon_divergence_grad",
        (T,),
        {"beta": 0.3},
    ),
    "decoupled_kd_loss_and_grad": (
        "decoupled_kd_loss",
        "decoupled_kd_loss_grad",
        ("labels", T),
        {"beta": 4.0},
    ),
    "distillation_loss_and_grad": ("distillation_loss", "distillation_loss_grad", ("labels", T, 0.3), {}),
}


class TestFusedEqualsSeparate:
    @pytest.mark.parametrize("masked", [False, True])
    @pytest.mark.parametrize("reduction", REDUCTIONS)
    @pytest.mark.parametrize("name", FUSED)
    def test_bit_for_bit(self, name, reduction, masked, rng):
        z, v, labels, mask, kept = batch(rng)
        if not masked:
            z, v, labels = np.nan_to_num(z), np.nan_to_num(v), np.maximum(labels, 0)
        value, grad, arguments, options = FUSED[name]
        arguments = tuple(labels if a == "labels" else a for a in arguments)
        keywords = {**options, "reduction": reduction}
        if masked:
            keywords["mask"] = mask if "labels" in FUSED[name][2] else kept
        fused_value, fused_grad = getattr(kdcore, name)(z, v, *arguments, **keywords)
        np.testing.assert_array_equal(fused_value, getattr(kdcore, value)(z, v, *arguments, **keywords))
        np.testing.assert_array_equal(fused_grad, getattr(kdcore, grad)(z, v, *arguments, **keywords))
