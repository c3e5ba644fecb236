"""kdcore.verify for the newer losses: --kind reverse-kl, jsd, skew-kl, skew-reverse-kl, dkd.

The zoo (tests/zoo_families.py) asserts each member's verdict; the NumPy classes below prove that each new
catalogue code is named for *its* mistake (exact losses built from kdcore with one thing changed, with their
exact gradients), that the conventions are accepted and named, and that the batteries do what
docs/verify.md says.
"""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import zoo_families

import kdcore
from kdcore.verify import check_divergence_loss, run_check
from kdcore.verify.catalogue import CATALOGUE
from kdcore.verify.token_battery import DKD_BATTERY, IGNORE_INDEX, TOKEN_BATTERY, family_cases

DOCS = Path(__file__).resolve().parent.parent / "docs" / "verify.md"
NEW_CODES = {
    "log-softmax-masked-vocabulary",
    "padding-in-mean",
    "mean-over-all-positions",
    "log-space-mixture",
    "mixture-weight-swapped",
    "temperature-on-one-side",
    "dkd-target-leak",
}


def check_member(member: zoo_families.FamilyMember):
    return check_divergence_loss(
        member.fn, member.kind, member.framework, name=member.name, **dict(member.options)
    )


def assert_member(member: zoo_families.FamilyMember) -> None:
    report = check_member(member)
    assert set(report.codes) == member.expected, report
    assert report.ok == (not member.expected)
    for phrase in member.conventions:
        assert report.convention is not None and phrase in report.convention, report


# ------------------------------------------------------------------------------------------------------
# Exact NumPy losses with one thing changed: each code is named for its own mistake


def per_token(kind, z, v, T, weight):
    """kdcore's per-position divergence of ``kind`` and its gradient rows."""
    if kind == "reverse-kl":
        return (kdcore.reverse_kl_divergence(z, v, T, reduction="none"),
                kdcore.reverse_kl_divergence_grad(z, v, T, reduction="none"))  # fmt: skip
    if kind == "jsd":
        return (kdcore.jensen_shannon_divergence(z, v, T, weight, "none"),
                kdcore.jensen_shannon_divergence_grad(z, v, T, weight, "none"))  # fmt: skip
    return (kdcore.skew_kl_divergence(z, v, T, weight, "none"),
            kdcore.skew_kl_divergence_grad(z, v, T, weight, "none"))  # fmt: skip


def masked_mean(
    kind, *, denominator="kept", count_padding=False, scale=1.0, weight_of=lambda w: w, side=None
):
    """A NumPy loss (labels with -100) and its exact gradient: the reference, or with one change."""

    def parts(student_logits, teacher_logits, labels, temperature, weight):
        z, v, T = student_logits, teacher_logits, temperature
        if side == "student":  # p = softmax(z/T), q = softmax(v): chain rule 1/T on the gradient
            values, rows = per_token(kind, z / T, v, 1.0, weight_of(weight))
            rows = rows / T
        else:
            values, rows = per_token(kind, z, v, T, weight_of(weight))
        keep = labels != IGNORE_INDEX
        counted = np.ones_like(keep) if count_padding else keep
        n = {"kept": keep.sum(), "all": keep.size}[denominator]
        value = scale * np.sum(np.where(counted, values, 0.0)) / n
        grad = scale * np.where(counted[..., None], rows, 0.0) / n
        return value, grad

    def loss(student_logits, teacher_logits, labels, temperature, weight):
        return parts(student_logits, teacher_logits, labels, temperature, weight)[0]

    def grad(student_logits, teacher_logits, labels, temperature, weight):
        return parts(student_logits, teacher_logits, labels, temperature, weight)[1]

    return loss, grad


ROLE = {"jsd": "beta", "skew-kl": "skew", "reverse-kl": None}


def numpy_check(kind, loss, grad, **options):
    roles = {"T": "temperature"}
    if ROLE[kind] is not None:
        roles[ROLE[kind]] = "weight"
        args = {}
    else:
        args = {"weight": 0.0}
    return check_divergence_loss(loss, kind, "numpy", grad_fn=grad, roles=roles, args=args, **options)


class TestEachCodeNamesItsMistake:
    @pytest.mark.parametrize("kind", ["reverse-kl", "jsd", "skew-kl"])
    def test_reference_passes_and_names_its_conventions(self, kind):
        report = numpy_check(kind, *masked_mean(kind))
        assert report.ok, report
        assert "no T²" in report.convention and "mean over the kept positions" in report.convention

    def test_t2_is_a_convention_unless_required(self):
        loss, grad = masked_mean("jsd", scale=1.0)
        scaled = masked_mean("jsd")
        assert numpy_check("jsd", loss, grad).ok

        def with_t2(z, v, labels, temperature, weight):
            return temperature**2 * scaled[0](z, v, labels, temperature, weight)

        def with_t2_grad(z, v, labels, temperature, weight):
            return temperature**2 * scaled[1](z, v, labels, temperature, weight)

        report = numpy_check("jsd", with_t2, with_t2_grad)
        assert report.ok and "multiplied by T²" in report.convention
        assert numpy_check("jsd", loss, grad, t2_scaling=True).codes == ("missing-T2-scaling",)

    def test_padding_in_mean(self):
        assert numpy_check("jsd", *masked_mean("jsd", count_padding=True)).codes == ("padding-in-mean",)

    def test_mean_over_all_positions(self):
        report = numpy_check("reverse-kl", *masked_mean("reverse-kl", denominator="all"))
        assert report.codes == ("mean-over-all-positions",)

    def test_weight_swapped(self):
        report = numpy_check("skew-kl", *masked_mean("skew-kl", weight_of=lambda w: 1 - w))
        assert report.codes == ("mixture-weight-swapped",)

    def test_beta_on_the_student_is_a_convention(self):
        report = numpy_check("jsd", *masked_mean("jsd", weight_of=lambda w: 1 - w))
        assert report.ok and "β weights the student" in report.convention
        told = numpy_check("jsd", *masked_mean("jsd", weight_of=lambda w: 1 - w), weight_on="teacher")
        assert told.codes == ("mixture-weight-swapped",)

    def test_temperature_on_one_side(self):
        report = numpy_check("reverse-kl", *masked_mean("reverse-kl", side="student"))
        assert report.codes == ("temperature-on-one-side",)

    def test_log_space_mixture(self):
        def loss(z, v, labels, temperature, weight):  # b(1 − b)[KL(q‖p) + KL(p‖q)], mean over kept tokens
            keep = labels != IGNORE_INDEX
            jeffreys = kdcore.kl_divergence(z, v, temperature, "none") + kdcore.reverse_kl_divergence(
                z, v, temperature, "none"
            )
            return weight * (1 - weight) * np.sum(np.where(keep, jeffreys, 0)) / keep.sum()

        report = check_divergence_loss(loss, "jsd", "numpy", roles={"T": "temperature", "beta": "weight"})
        assert report.codes == ("log-space-mixture",), report

    def test_reverse_kl_swapped_is_the_swapped_direction(self):
        def forward(z, v, labels, temperature, weight):
            keep = labels != IGNORE_INDEX
            return np.sum(np.where(keep, kdcore.kl_divergence(z, v, temperature, "none"), 0)) / keep.sum()

        def forward_grad(z, v, labels, temperature, weight):
            keep = labels != IGNORE_INDEX
            rows = kdcore.kl_divergence_grad(z, v, temperature, "none")
            return np.where(keep[..., None], rows, 0) / keep.sum()

        assert numpy_check("reverse-kl", forward, forward_grad).codes == ("swapped-kl-direction",)

    def test_nan_on_masked_vocabulary(self):
        def naive(z, v, labels, temperature, weight):
            keep = labels != IGNORE_INDEX
            p, q = kdcore.softmax(z, temperature), kdcore.softmax(v, temperature)
            per_token = np.sum(p * (np.log(p) - np.log(q)), axis=-1)
            return np.sum(np.where(keep, per_token, 0)) / keep.sum()

        report = check_divergence_loss(
            naive, "reverse-kl", "numpy", roles={"T": "temperature"}, args={"weight": 0}
        )
        assert "log-softmax-masked-vocabulary" in report.codes, report

    def test_dkd_target_leak(self):
        def dkd(student_logits, teacher_logits, labels, T, alpha, beta):  # NCKD replaced by the plain KL
            return T**2 * (alpha * kdcore.target_class_kl_divergence(student_logits, teacher_logits, labels, T)
                           + beta * kdcore.kl_divergence(student_logits, teacher_logits, T))  # fmt: skip

        assert check_divergence_loss(dkd, "dkd", "numpy").codes == ("dkd-target-leak",)

    def test_dkd_reference(self):
        def dkd(student_logits, teacher_logits, labels, T, alpha, beta):
            return kdcore.decoupled_kd_loss(student_logits, teacher_logits, labels, T, alpha, beta)

        def dkd_grad(student_logits, teacher_logits, labels, T, alpha, beta):
            return kdcore.decoupled_kd_loss_grad(student_logits, teacher_logits, labels, T, alpha, beta)

        report = check_divergence_loss(dkd, "dkd", "numpy", grad_fn=dkd_grad)
        assert report.ok and "multiplied by T²" in report.convention, report


# ------------------------------------------------------------------------------------------------------
# The batteries


class TestTokenBattery:
    def test_padding_is_marked_by_ignore_index_and_keeps_a_token_per_sequence(self):
        for case in family_cases("jsd"):
            assert np.array_equal(case.labels == IGNORE_INDEX, ~case.keep)
            if case.keep.ndim == 2:
                assert np.all(case.keep.any(axis=1))
        padded = {case.spec.why for case in family_cases("jsd") if case.padded}
        assert len(padded) >= 5  # padding of different lengths on most token rows

    def test_padded_positions_have_their_own_logits(self):
        case = next(c for c in family_cases("jsd") if c.padded and c.dtype == np.float64)
        values = kdcore.jensen_shannon_divergence(case.student_logits, case.teacher_logits, 1.0, 0.5, "none")
        assert np.all(values[~case.keep] > 0)  # a loss that counts them gets another number

    def test_endpoints_and_masks_are_in_the_battery(self):
        assert {0.0, 1.0} <= {spec.beta for spec in TOKEN_BATTERY}
        masked = [c for c in family_cases("jsd") if c.spec.regime == "masked"]
        assert masked and all(c.mask.any() for c in masked)
        assert all(np.all(c.student_logits[c.mask] == -1e9) for c in masked)

    def test_every_row_is_documented(self):
        text = DOCS.read_text(encoding="utf-8")
        for spec in TOKEN_BATTERY + DKD_BATTERY:
            assert spec.why in text, spec

    def test_every_new_code_is_documented(self):
        headings = set(
            re.findall(r"^#+ `([a-zA-Z0-9-]+)`", DOCS.read_text(encoding="utf-8"), flags=re.MULTILINE)
        )
        assert NEW_CODES <= set(CATALOGUE) <= headings

    def test_a_loss_without_mask_runs_unpadded_cases_only(self):
        def jsd(student_logits, teacher_logits, beta, T):
            return np.mean(kdcore.jensen_shannon_divergence(student_logits, teacher_logits, T, beta, "none"))

        report = check_divergence_loss(jsd, "jsd", "numpy")
        assert report.ok, report
        assert any(note.code == "padding-skipped" for note in report.notes)
        assert len(report.cases) < 2 * len(TOKEN_BATTERY)


class TestCommand:
    def test_kind_and_weights_on_the_command_line(self):
        out = io.StringIO()
        code = run_check(
            "kdcore.reverse_kl:reverse_kl_divergence", "numpy", "reverse-kl", stream=out, beta=0.5
        )
        assert code == 2 and "--beta is for --kind jsd or dkd" in out.getvalue()


# ------------------------------------------------------------------------------------------------------
# The zoo, in each framework


def _torch_members():
    pytest.importorskip("torch")
    return zoo_families.torch_members()


@pytest.fixture(scope="module")
def members():
    return {member.name: member for member in _torch_members()}


@pytest.mark.frameworks
class TestTorchFamilyZoo:
    @pytest.mark.parametrize(
        "name",
        [
            "trl_generalized_jsd_loss", "jsd_log_space_mixture", "jsd_trl_before_3043", "jsd_endpoints_exchanged",
            "jsd_padding_in_mean", "jsd_mean_over_all_positions", "jsd_log_of_softmax", "jsd_beta_on_student",
            "jsd_beta_on_student_told_teacher", "jsd_per_sequence_T2", "minillm_reverse_kl",
            "reverse_kl_computes_forward", "reverse_kl_teacher_untempered", "distillm_skewed_forward_kl",
            "distillm_skewed_forward_kl_logsumexp", "skew_kl_weight_swapped", "distillm_skewed_reverse_kl",
            "skew_reverse_kl_log_space", "dkd_mdistiller", "dkd_exact", "dkd_target_left_in", "dkd_minus_1000_trick",
            "liger_style_jsd",
        ],
    )  # fmt: skip
    def test_verdict(self, members, name):
        assert_member(members[name])

    def test_the_zoo_covers_every_new_code(self, members):
        assert NEW_CODES <= set().union(*(m.expected for m in members.values()))

    @pytest.mark.parametrize(
        ("target", "kind", "code"),
        [
            ("per_token_kl_padded", "skew-kl", "padding-in-mean"),
            ("jsd_geometric", "jsd", "log-space-mixture"),
        ],
    )
    def test_the_buggy_examples_on_the_command_line(self, target, kind, code):
        pytest.importorskip("torch")
        out = io.StringIO()
        examples = Path(__file__).resolve().parent.parent / "docs" / "examples" / "token_losses.py"
        assert run_check(f"{examples}:{target}", "torch", kind, stream=out) == 1
        assert re.findall(r"^\[([a-z0-9-]+)\]", out.getvalue(), flags=re.MULTILINE) == [code], out.getvalue()

    def test_trl_itself(self):
        """trl's real function, checked as it is (trl pinned in the Makefile's frameworks target)."""
        pytest.importorskip("trl")
        out = io.StringIO()
        target = "trl.experimental.gkd:GKDTrainer.generalized_jsd_loss"
        with warnings.catch_warnings():  # trl warns on importing its experimental package (once)
            warnings.simplefilter("ignore")
            code = run_check(target, "torch", "jsd", stream=out)
        text = out.getvalue()
        assert code == 0, text
        assert "β weights the teacher" in text and "trl's switch" in text and "no T²" in text, text


@pytest.mark.frameworks
class TestJaxFamilyZoo:
    def test_verdicts(self):
        pytest.importorskip("jax")
        for member in zoo_families.jax_members():
            assert_member(member)


@pytest.mark.frameworks
class TestTensorflowFamilyZoo:
    def test_verdicts(self):
        pytest.importorskip("tensorflow")
        for member in zoo_families.tensorflow_members():
            assert_member(member)
