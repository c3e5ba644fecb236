"""kdcore.verify for losses against a top-k (sparse) teacher: ``--kind topk``.

The NumPy classes build exact losses from kdcore.topk with one thing changed (and their exact gradients) and
prove that each catalogue code is named for *its* mistake, that the conventions are accepted and named, and
that the battery does what docs/verify.md says; the zoo (tests/zoo_topk.py) pins the verdict on losses
written in the styles of DistillKit, SDPO, Megatron-LM and verl — NumPy members here, PyTorch members under
the ``frameworks`` marker — and the two example files are checked from the command line.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zoo_topk

import kdcore
from kdcore.verify import check_topk_loss, run_check
from kdcore.verify.catalogue import CATALOGUE
from kdcore.verify.topk_battery import TOPK_BATTERY, topk_cases, topk_infinite_mask_probe
from kdcore.verify.topk_family import TopKHypothesis, TopKPrediction
from kdcore.verify.topk_forms import TopKForms

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "verify.md"
EXAMPLES = ROOT / "docs" / "examples" / "topk_losses.py"
TOPK_CODES = {
    "topk-not-renormalized",
    "topk-tail-clamped",
    "topk-tail-temperature",
    "topk-student-renormalized",
    "topk-convention-mismatch",
    "topk-indices-misaligned",
}


def exact(convention, *, scale=lambda T: 1.0, reverse=False, change=None, denominator="kept"):
    """A NumPy top-k loss and its exact gradient from kdcore, with at most one thing changed.

    ``change(z, a, ids, T)`` returns the arrays the loss is computed on instead (a mistake); the loss takes
    (student_logits, teacher_values, teacher_indices, mask, T).
    """

    def parts(student_logits, teacher_values, teacher_indices, mask, T):
        z, a, ids = student_logits, teacher_values, teacher_indices
        if change is not None:
            z, a, ids = change(z, a, ids, T)
        if reverse:  # KL(p̂ ‖ q̂) over K, from kdcore's reverse KL of the gathered logits
            z_k = np.take_along_axis(z, ids, axis=-1)
            values = kdcore.reverse_kl_divergence(z_k, a, T, reduction="none")
            rows_k = kdcore.reverse_kl_divergence_grad(z_k, a, T, reduction="none")
            rows = np.zeros(z.shape)
            np.put_along_axis(rows, ids, rows_k, axis=-1)
        else:
            # the renormalised conventions read log-probabilities and logits alike ("logits": no mass check)
            options = {"convention": convention, "values": "log_probs" if convention == "tail" else "logits"}
            values = kdcore.topk_kl_divergence(z, a, ids, T, "none", **options)
            rows = kdcore.topk_kl_divergence_grad(z, a, ids, T, "none", **options)
        n = {"kept": np.sum(mask), "all": mask.size}[denominator]
        value = scale(T) * np.sum(np.where(mask, values, 0.0)) / n
        return value, scale(T) * np.where(mask[..., None], rows, 0.0) / n

    def loss(student_logits, teacher_values, teacher_indices, mask, T):
        return parts(student_logits, teacher_values, teacher_indices, mask, T)[0]

    def grad(student_logits, teacher_values, teacher_indices, mask, T):
        return parts(student_logits, teacher_values, teacher_indices, mask, T)[1]

    return loss, grad


def check(loss_and_grad, **options):
    loss, grad = loss_and_grad
    return check_topk_loss(loss, "numpy", grad_fn=grad, **options)


# ------------------------------------------------------------------------------------------------------
# Conventions are accepted and named


class TestConventions:
    @pytest.mark.parametrize("convention", ["renormalized", "dense_student"])
    def test_each_convention_passes_and_is_named(self, convention):
        report = check(exact(convention, scale=lambda T: T**2))
        assert report.ok, report
        assert report.convention.startswith(f"{convention}:"), report.convention
        assert "forward KL(teacher ‖ student)" in report.convention
        assert "multiplied by T²" in report.convention and "kept positions" in report.convention

    def test_tail_passes_at_T_1_when_claimed(self):
        report = check(exact("tail"), convention="tail")
        assert report.ok, report
        assert report.convention.startswith("tail:")
        assert {case.T for case in report.cases} == {1.0}
        assert any("defined at T = 1 only" in note.message for note in report.notes)

    def test_reverse_renormalized_is_a_convention(self):
        report = check(exact("renormalized", reverse=True))
        assert report.ok, report
        assert "reverse KL(student ‖ teacher)" in report.convention and "no T²" in report.convention

    def test_a_claimed_convention_is_required(self):
        report = check(exact("renormalized"), convention="dense_student")
        assert report.codes == ("topk-student-renormalized",)
        report = check(exact("dense_student"), convention="renormalized")
        assert report.codes == ("topk-convention-mismatch",)
        assert "dense_student" in report.findings[0].evidence["fitted"] or "KL(q̂ ‖ p)" in str(report)

    def test_t2_required_on_request(self):
        assert check(exact("renormalized"), t2_scaling=True).codes == ("missing-T2-scaling",)


# ------------------------------------------------------------------------------------------------------
# Each code is named for its own mistake


def sort_indices(z, a, ids, T):
    return z, a, np.sort(ids, axis=-1)


def reverse_values(z, a, ids, T):
    return z, a[..., ::-1], ids


class TestEachCodeNamesItsMistake:
    def test_not_renormalized(self):
        def loss(student_logits, teacher_values, teacher_indices, mask, T):
            log_p = np.take_along_axis(kdcore.log_softmax(student_logits, T), teacher_indices, axis=-1)
            q = np.exp(teacher_values / T)
            per_token = np.sum(q * (teacher_values / T - log_p), axis=-1)
            return np.sum(np.where(mask, per_token, 0.0)) / np.sum(mask)

        report = check_topk_loss(loss, "numpy")  # finite differences for the gradient
        assert report.codes == ("topk-not-renormalized",), report
        # It equals m·(renormalised) + m·log m: right only where the mass m is 1 (k = V).
        right = {case.regime for case in report.cases if case.status == "ok"}
        assert right <= {"k-equals-V", "masked"}

    @pytest.mark.parametrize("change", [sort_indices, reverse_values])
    def test_misaligned_indices(self, change):
        report = check(exact("dense_student", change=change))
        assert report.codes == ("topk-indices-misaligned",), report
        k1 = [case for case in report.cases if case.regime == "k-1"]
        assert k1 and all(case.status == "ok" for case in k1)  # one class: nothing to misalign

    def test_gather_on_the_wrong_axis_is_hinted(self):
        def loss(student_logits, teacher_values, teacher_indices, mask):
            # np.take along axis -2, the positions, not the classes
            log_p = np.take(kdcore.log_softmax(student_logits), teacher_indices, axis=-2)
            return float(np.sum(log_p))

        report = check_topk_loss(loss, "numpy")
        assert report.codes == ("exception",), report
        assert "gather of the teacher's indices along the wrong axis" in report.findings[0].message

    def test_teacher_untempered(self):
        def untempered(z, a, ids, T):
            return z, a * T, ids  # softmax_K(a·T/T): the stored values used at T = 1

        report = check(exact("renormalized", change=untempered))
        assert report.codes == ("temperature-on-one-side",), report

    def test_mean_over_all_positions(self):
        report = check(exact("renormalized", denominator="all"))
        assert report.codes == ("mean-over-all-positions",), report

    def test_tail_clamped_fits_its_epsilon(self):
        forms = _forms_of(topk_cases()[-1])  # the confident row (float64 only, the last case)
        exact_tail, _, _ = forms.rows("reference", "tail", "forward")
        clamped, _, _ = forms.rows("clamped-1e-06", "tail", "forward")
        assert np.max(np.abs(clamped - exact_tail)) > 1e-9  # the clamp shows on the confident row

        def loss(student_logits, teacher_values, teacher_indices, mask, T):
            z, a, ids = (
                x.reshape(-1, x.shape[-1]) for x in (student_logits, teacher_values, teacher_indices)
            )
            rows, _, _ = TopKForms(z, a, ids, 1.0).rows("clamped-1e-06", "tail", "forward")
            return np.sum(np.where(mask.reshape(-1), rows, 0.0)) / np.sum(mask)

        report = check_topk_loss(loss, "numpy", convention="tail")
        assert report.codes == ("topk-tail-clamped",), report
        assert "ε = 1e-06" in report.findings[0].evidence["fitted"]

    def test_tail_at_other_temperatures_is_a_guess(self):
        def loss(student_logits, teacher_values, teacher_indices, mask, T):
            z, a, ids = (
                x.reshape(-1, x.shape[-1]) for x in (student_logits, teacher_values, teacher_indices)
            )
            rows, _, _ = TopKForms(z, a, ids, T).rows("tail-one-class", "tail", "forward")
            return np.sum(np.where(mask.reshape(-1), rows, 0.0)) / np.sum(mask)

        report = check_topk_loss(loss, "numpy")
        assert report.codes == ("topk-tail-temperature",), report
        wrong = {case.T for case in report.cases if case.status != "ok"}
        assert wrong and 1.0 not in wrong


def _forms_of(case) -> TopKForms:
    V, k = case.student_logits.shape[-1], case.teacher_values.shape[-1]
    return TopKForms(
        case.student_logits.reshape(-1, V).astype(np.float64),
        case.teacher_values.reshape(-1, k).astype(np.float64),
        case.teacher_indices.reshape(-1, k),
        case.spec.T,
    )


# ------------------------------------------------------------------------------------------------------
# The forms: the written-out formulas agree with kdcore where they should


class TestForms:
    @pytest.mark.parametrize("case", [c for c in topk_cases() if c.dtype == np.float64 and c.spec.T == 1.0],
                             ids=lambda c: c.id)  # fmt: skip
    def test_written_out_tail_buckets_equal_kdcore(self, case):
        forms = _forms_of(case)
        reference, entropy, grad = forms.rows("reference", "tail", "forward")
        untempered, entropy_u, grad_u = forms.rows("tail-untempered", "tail", "forward")  # = tail at T = 1
        one_class, _, grad_o = forms.rows("tail-one-class", "tail", "forward")
        scale = 1.0 + np.abs(reference) + entropy
        for value, g in ((untempered, grad_u), (one_class, grad_o)):
            assert np.max(np.abs(value - reference) / scale) < 1e-12
            assert np.max(np.abs(g() - grad())) < 1e-12
        assert np.allclose(entropy_u, entropy, rtol=1e-12, atol=1e-12)

    def test_unnormalized_is_mass_times_renormalized_plus_m_log_m(self):
        case = topk_cases()[len(TOPK_BATTERY) - 1 + 3]  # a float64 tokens row at T = 2
        assert case.dtype == np.float64 and case.spec.T == 2.0
        forms = _forms_of(case)
        a = forms.a / forms.T
        mass = np.sum(np.exp(a), axis=-1)
        dense, _, _ = forms.rows("reference", "dense_student", "forward")
        unnormalized, _, _ = forms.rows("unnormalized", "dense_student", "forward")
        assert np.allclose(unnormalized, mass * dense + mass * np.log(mass), rtol=1e-12, atol=1e-14)

    def test_gradients_by_finite_differences(self):
        """Every written-out form's gradient against central differences of its own value."""
        case = next(c for c in topk_cases() if c.dtype == np.float64 and c.spec.regime == "tokens")
        rng = np.random.default_rng(7)
        forms = _forms_of(case)
        for form, convention, direction in [
            ("unnormalized", "dense_student", "forward"), ("unnormalized", "renormalized", "forward"),
            ("tail-one-class", "tail", "forward"), ("tail-untempered", "tail", "forward"),
            ("clamped-0.0001", "tail", "forward"), ("clamped-drop-1e-05", "tail", "forward"),
            ("reference", "tail", "reverse"), ("reference", "renormalized", "reverse"),
            ("teacher-T-only", "dense_student", "forward"),
        ]:  # fmt: skip
            _, _, grad = forms.rows(form, convention, direction)
            direction_vector = rng.standard_normal(forms.z.shape)
            step = 1e-5

            def value(z, form=form, convention=convention, direction=direction):
                shifted = TopKForms(z, forms.a, forms.indices, forms.T)
                return np.sum(shifted.rows(form, convention, direction)[0])

            numeric = (
                value(forms.z + step * direction_vector) - value(forms.z - step * direction_vector)
            ) / (2 * step)
            analytic = np.sum(grad() * direction_vector)
            if not np.isfinite(analytic):  # the tail forms at T ≠ 1 are undefined (NaN) for some
                assert form.startswith("clamped") or direction == "reverse"
                continue
            assert abs(numeric - analytic) <= 1e-6 * (1 + abs(analytic)), (form, convention, direction)

    def test_hypotheses_cover_every_form_and_code(self):
        prediction = TopKPrediction(topk_cases()[0])
        value, scale = prediction.value(TopKHypothesis())
        assert np.isfinite(value) and scale > 0
        from kdcore.verify.topk_family import topk_hypotheses

        codes = set().union(*(h.codes(None, "hard", "dense_student") for h in topk_hypotheses()))
        assert TOPK_CODES - {"topk-convention-mismatch"} <= codes
        assert "topk-convention-mismatch" in set().union(
            *(h.codes(None, "hard", "tail") for h in topk_hypotheses())
        )


# ------------------------------------------------------------------------------------------------------
# The battery


class TestTopKBattery:
    def test_values_are_log_probabilities_of_the_top_k(self):
        for case in topk_cases():
            values = case.teacher_values.astype(np.float64)
            assert np.all(np.diff(values, axis=-1) <= 0), case.id  # largest first
            mass = np.exp(kdcore.logsumexp(values))
            k, V = values.shape[-1], case.student_logits.shape[-1]
            assert np.all(mass <= 1 + 1e-5) and (k == V or np.all(mass < 1 - 1e-11)), case.id
            ordered = np.sort(case.teacher_indices, axis=-1)
            assert np.all(ordered[..., 1:] != ordered[..., :-1])  # distinct classes per position

    def test_rows_cover_what_tells_conventions_apart(self):
        ks = {(spec.k, spec.n_classes) for spec in TOPK_BATTERY}
        assert any(k == 1 for k, _ in ks) and any(k == V for k, V in ks)
        assert {spec.T for spec in TOPK_BATTERY} >= {0.5, 1.0, 2.0}
        assert {"ties", "masked", "confident", "equal"} <= {spec.regime for spec in TOPK_BATTERY}
        ties = next(c for c in topk_cases() if c.spec.regime == "ties")
        assert np.any(np.diff(ties.teacher_values, axis=-1) == 0)

    def test_confident_tails_span_the_clamps(self):
        case = next(c for c in topk_cases() if c.spec.regime == "confident")
        tails = -np.expm1(kdcore.logsumexp(case.teacher_values))
        assert tails.min() < 1e-8 and tails.max() > 1e-5  # every ε of CLAMPS cuts between two positions

    def test_padding_holds_ordinary_different_values(self):
        padded = [c for c in topk_cases() if c.padded]
        assert padded
        for case in padded:
            assert np.all(case.labels[~case.keep] == -100)
            assert np.all(case.keep[..., 0])  # every sequence keeps a position

    def test_infinite_mask_probe(self):
        probe = topk_infinite_mask_probe()
        assert np.isneginf(probe.teacher_values).any() and probe.spec.k == probe.spec.n_classes

    def test_every_row_is_documented(self):
        text = DOCS.read_text(encoding="utf-8")
        for spec in TOPK_BATTERY:
            assert spec.why in text, spec

    def test_every_topk_code_is_documented(self):
        headings = set(re.findall(r"^#+ `([a-zA-Z0-9-]+)`", DOCS.read_text(encoding="utf-8"), flags=re.M))
        assert TOPK_CODES <= set(CATALOGUE) <= headings


# ------------------------------------------------------------------------------------------------------
# The command line and the zoo


class TestCommand:
    def test_topk_convention_only_for_topk(self):
        out = io.StringIO()
        code = run_check("kdcore.topk:topk_kl_divergence", "numpy", "jsd", stream=out, topk_convention="tail")
        assert code == 2 and "--topk-convention is for --kind topk" in out.getvalue()

    def test_kdcore_itself_with_its_convention_as_an_argument(self):
        out = io.StringIO()
        code = run_check(
            "kdcore.topk:topk_kl_divergence", "numpy", "topk", stream=out,
            args={"convention": "renormalized", "values": "log_probs"},
        )  # fmt: skip
        assert code == 0, out.getvalue()
        assert "renormalized: both distributions" in out.getvalue()
        assert "teacher_indices=teacher_indices" in out.getvalue()

    def test_cli_usage_error_is_one_line(self):
        result = subprocess.run(
            [sys.executable, "-m", "kdcore", "check", "kdcore.topk:topk_kl_divergence", "--framework",
             "numpy", "--kind", "topk", "--topk-convention", "sparse"],
            capture_output=True, text=True, cwd=ROOT,
        )  # fmt: skip
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert "--topk-convention" in result.stderr


@pytest.mark.parametrize("member", zoo_topk.numpy_members(), ids=str)
def test_numpy_zoo(member):
    report = check_topk_loss(member.fn, member.framework, name=member.name, **dict(member.options))
    assert set(report.codes) == member.expected, report
    for phrase in member.conventions:
        assert phrase in (report.convention or ""), report


@pytest.fixture(scope="module")
def members():
    pytest.importorskip("torch")
    return zoo_topk.torch_members()


@pytest.mark.frameworks
class TestTorchTopKZoo:
    def test_verdicts(self, members):
        wrong = []
        for member in members:
            report = check_topk_loss(member.fn, "torch", name=member.name, **dict(member.options))
            named = all(phrase in (report.convention or "") for phrase in member.conventions)
            if set(report.codes) != member.expected or not named:
                wrong.append(f"{member.name}: {report.codes} / {report.convention}")
        assert not wrong, wrong

    def test_the_zoo_covers_every_topk_code_but_the_generic_one(self, members):
        covered = set().union(*(m.expected for m in members), *(m.expected for m in zoo_topk.numpy_members()))
        assert TOPK_CODES - {"topk-convention-mismatch"} <= covered

    @pytest.mark.parametrize(("target", "code", "convention"), [
        ("sparse_kl", 0, "dense_student: the teacher renormalised"),
        ("sparse_kl_tail_dropped", 1, "[topk-not-renormalized]"),
    ])  # fmt: skip
    def test_the_examples_on_the_command_line(self, target, code, convention):
        pytest.importorskip("torch")
        out = io.StringIO()
        assert run_check(f"{EXAMPLES}:{target}", "torch", "topk", stream=out) == code, out.getvalue()
        assert convention in out.getvalue()
        if code:
            assert re.findall(r"^\[([a-z0-9-]+)\]", out.getvalue(), flags=re.M) == ["topk-not-renormalized"]
