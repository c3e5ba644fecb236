"""kdcore.verify and kdcore.adapters: the battery, the diagnosis on a zoo of losses, reports, run_check.

The NumPy zoo runs everywhere (``make test``); the PyTorch and JAX zoos are marked ``frameworks`` and skip
when the framework is absent (``make test-frameworks`` installs PyTorch). Every correct loss must pass,
every buggy one must fail, and a catalogued bug must be named by its code — exactly the codes the zoo
expects, no more and no fewer.
"""

from __future__ import annotations

import io
import json
import math
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest
import zoo

import kdcore
from kdcore import verify
from kdcore.verify import (
    BATTERY,
    CATALOGUE,
    CaseResult,
    Finding,
    Report,
    adapters,
    battery,
    check_distillation_loss,
    check_soft_loss,
    hypotheses,
    run_check,
)
from kdcore.verify.reports import jsonable

DOCS = Path(__file__).resolve().parents[1] / "docs" / "verify.md"

# The codes the issue requires, each of which must be documented and produced by some member of the zoo.
REQUIRED_CODES = {
    "missing-T2-scaling",
    "mean-over-classes",
    "sum-over-batch",
    "probabilities-as-log-probabilities",
    "swapped-kl-direction",
    "numerically-unstable",
    "temperature-on-hard-loss",
    "alpha-swapped",
    "gradient-mismatch",
    "value-mismatch",
}


def check(member: zoo.Member) -> Report:
    run = check_soft_loss if member.kind == "soft" else check_distillation_loss
    options = dict(member.options)
    return run(member.fn, framework=member.framework, grad_fn=member.grad_fn, name=member.name, **options)


def assert_verdict(member: zoo.Member, report: Report) -> None:
    assert set(report.codes) == member.expected, f"{member.name}: {member.why}\n{report}"
    assert report.ok == (not member.expected)
    assert len(report.codes) == len(set(report.codes)), "a code reported twice"
    assert member.hint in str(report), f"{member.name}: the report should say {member.hint!r}\n{report}"


# ------------------------------------------------------------------------------------------------------
# The battery


class TestBattery:
    def test_covers_the_documented_ranges(self):
        sizes = {spec.batch_size for spec in BATTERY}
        classes = {spec.n_classes for spec in BATTERY}
        temperatures = {spec.T for spec in BATTERY}
        alphas = {spec.alpha for spec in BATTERY}
        assert min(sizes) == 1 and max(sizes) == 64
        assert min(classes) == 2 and max(classes) == 1000
        assert min(temperatures) == 0.5 and max(temperatures) == 20.0
        assert {0.0, 1.0} <= alphas and any(0 < a < 1 and a != 0.5 for a in alphas)
        assert {"ordinary", "near-equal", "equal", "extreme", "masked"} <= {spec.regime for spec in BATTERY}

    def test_both_dtypes_and_deterministic(self):
        cases = battery.battery_cases()
        assert len(cases) == 2 * len(BATTERY)
        assert {case.dtype.name for case in cases} == {"float32", "float64"}
        again = [battery.case_inputs(index, spec) for index, spec in enumerate(BATTERY)]
        for case in cases:
            student, teacher, labels, _ = again[case.index]
            np.testing.assert_array_equal(case.student_logits, student.astype(case.dtype))
            np.testing.assert_array_equal(case.teacher_logits, teacher.astype(case.dtype))
            np.testing.assert_array_equal(case.labels, labels)

    def test_extreme_logits_are_large_and_masks_leave_labels_alone(self):
        for case in battery.battery_cases():
            if case.spec.regime == "extreme":
                assert 1e3 <= np.max(np.abs(case.student_logits)) <= 1e4
            if case.spec.regime == "masked":
                assert case.mask.any() and (case.mask.sum(axis=1) <= case.spec.n_classes - 2).all()
                assert not case.mask[np.arange(case.spec.batch_size), case.labels].any()
                np.testing.assert_array_equal(case.student_logits[case.mask], battery.MASK_LOGIT)

    def test_reference_is_finite_on_every_case(self):
        for case in battery.battery_cases():
            for kind in ("soft", "distillation"):
                prediction = hypotheses.prediction(case, kind)
                value, scale = prediction.value(hypotheses.Hypothesis())
                grad, _ = prediction.grad(hypotheses.Hypothesis())
                assert math.isfinite(value) and math.isfinite(scale) and np.all(np.isfinite(grad))


# ------------------------------------------------------------------------------------------------------
# The zoo: NumPy (everywhere), PyTorch and JAX (frameworks)


NUMPY_ZOO = zoo.numpy_members()


class TestNumpyZoo:
    @pytest.mark.parametrize("member", NUMPY_ZOO, ids=str)
    def test_verdict(self, member):
        assert_verdict(member, check(member))

    def test_convention_is_named(self):
        by_name = {member.name: member for member in NUMPY_ZOO}
        assert check(by_name["np_kl_with_grad"]).convention == "kl"
        assert check(by_name["np_soft_ce_fd"]).convention == "cross_entropy"


def _torch_zoo() -> list:
    try:
        return zoo.torch_members()
    except ImportError:
        return []


TORCH_ZOO = _torch_zoo()


@pytest.mark.frameworks
class TestTorchZoo:
    @pytest.fixture(autouse=True)
    def _torch(self):
        pytest.importorskip("torch")

    @pytest.mark.parametrize("member", TORCH_ZOO, ids=str)
    def test_verdict(self, member):
        assert_verdict(member, check(member))

    def test_zoo_is_large_enough_and_covers_the_catalogue(self):
        correct = [m for m in TORCH_ZOO if not m.expected]
        buggy = [m for m in TORCH_ZOO if m.expected]
        assert len(TORCH_ZOO) >= 15 and len(correct) >= 5
        outside = [m for m in buggy if m.expected <= {"value-mismatch"}]
        assert len(outside) >= 3, "several bugs outside the catalogue"
        produced = set().union(*(m.expected for m in TORCH_ZOO + NUMPY_ZOO))
        assert produced >= REQUIRED_CODES

    def test_evidence_of_missing_t2(self):
        member = next(m for m in TORCH_ZOO if m.name == "missing_T2")
        (finding,) = check(member).findings
        for row in finding.evidence["ratios"]:
            assert row["got/expected"] == pytest.approx(1 / row["T"] ** 2, rel=1e-5)

    def test_torch_warning_becomes_a_note(self):
        member = next(m for m in TORCH_ZOO if m.name == "kl_reduction_mean")
        notes = {note.code: note for note in check(member).notes}
        assert "batchmean" in " ".join(notes["warnings"].evidence["messages"])

    def test_infinite_masks_are_noted_not_failed(self):
        member = next(m for m in TORCH_ZOO if m.name == "kl_batchmean_T2")
        report = check(member)
        assert report.ok
        assert "nan-with-infinite-mask" in {note.code for note in report.notes}

    def test_zero_gradient_is_named(self):
        member = next(m for m in TORCH_ZOO if m.name == "student_detached")
        (finding,) = check(member).findings
        assert "exactly zero" in finding.message

    def test_no_grad_context_does_not_hide_the_gradient(self):
        import torch

        member = next(m for m in TORCH_ZOO if m.name == "kl_batchmean_T2")
        with torch.no_grad():
            assert check(member).ok


@pytest.fixture(scope="module")
def jax_zoo():
    pytest.importorskip("jax")
    return {member.name: member for member in zoo.jax_members()}


JAX_NAMES = ["jax_keyword_only_temperature", "jax_kl", "jax_missing_T2", "jax_hinton", "jax_stop_gradient"]


@pytest.mark.frameworks
class TestJaxZoo:
    @pytest.mark.parametrize("name", JAX_NAMES)
    def test_verdict(self, jax_zoo, name):
        assert_verdict(jax_zoo[name], check(jax_zoo[name]))

    def test_every_member_is_run(self, jax_zoo):
        assert set(jax_zoo) == set(JAX_NAMES)


@pytest.fixture(scope="module")
def tensorflow_zoo():
    pytest.importorskip("tensorflow")
    return {member.name: member for member in zoo.tensorflow_members()}


TENSORFLOW_NAMES = [
    "tf_kl",
    "tf_softmax_cross_entropy",
    "tf_missing_T2",
    "keras_kl_divergence_on_probs",
    "tf_stop_gradient",
    "tf_hinton",
    "keras_distiller_class",
]


@pytest.mark.frameworks
class TestTensorflowZoo:
    @pytest.mark.parametrize("name", TENSORFLOW_NAMES)
    def test_verdict(self, tensorflow_zoo, name):
        assert_verdict(tensorflow_zoo[name], check(tensorflow_zoo[name]))

    def test_every_member_is_run(self, tensorflow_zoo):
        assert set(tensorflow_zoo) == set(TENSORFLOW_NAMES)


# ------------------------------------------------------------------------------------------------------
# Diagnosis details, with NumPy losses built from kdcore itself (exact, so any finding is the checker's)


def exact_soft(T_power=2, factor=lambda B, N: 1.0):
    def fn(z, v, T):
        B, N = z.shape
        return T**T_power * kdcore.kl_divergence(z, v, T) * factor(B, N)

    def grad(z, v, T):
        B, N = z.shape
        return T**T_power * kdcore.kl_divergence_grad(z, v, T) * factor(B, N)

    return fn, grad


class TestDiagnosis:
    def test_two_causes_at_once(self):
        fn, grad = exact_soft(T_power=0, factor=lambda B, N: 1 / N)
        report = check_soft_loss(fn, "numpy", grad_fn=grad)
        assert report.codes == ("missing-T2-scaling", "mean-over-classes")

    def test_t2_scaling_false_accepts_the_unscaled_loss(self):
        fn, grad = exact_soft(T_power=0)
        assert check_soft_loss(fn, "numpy", grad_fn=grad, t2_scaling=False).ok

    def test_t2_scaling_false_names_an_extra_t2(self):
        fn, grad = exact_soft(T_power=2)
        report = check_soft_loss(fn, "numpy", grad_fn=grad, t2_scaling=False)
        assert report.codes == ("unexpected-T2-scaling",)

    def test_distillation_with_t2_scaling_false(self):
        def fn(z, v, y, T, alpha):
            return kdcore.distillation_loss(z, v, y, T, alpha, t2_scaling=False, soft="kl")

        def grad(z, v, y, T, alpha):
            return kdcore.distillation_loss_grad(z, v, y, T, alpha, t2_scaling=False)

        assert check_distillation_loss(fn, "numpy", grad_fn=grad, t2_scaling=False).ok
        assert check_distillation_loss(fn, "numpy", grad_fn=grad).codes == ("missing-T2-scaling",)

    def test_an_added_constant_is_a_value_mismatch_with_the_right_hint(self):
        fn, grad = exact_soft()
        report = check_soft_loss(lambda z, v, T: fn(z, v, T) + 0.01, "numpy", grad_fn=grad)
        (finding,) = report.findings
        assert finding.code == "value-mismatch"
        assert "does not depend on the student" in finding.message

    def test_a_wrong_sign_is_not_excused(self):
        fn, grad = exact_soft()
        report = check_soft_loss(
            lambda z, v, T: -fn(z, v, T), "numpy", grad_fn=lambda z, v, T: -grad(z, v, T)
        )
        assert report.codes == ("value-mismatch",)

    def test_instability_only_in_float32_is_still_unstable(self):
        fn, grad = exact_soft()

        def float32_overflow(z, v, T):
            if z.dtype == np.float32 and np.max(np.abs(z)) > 1e3:
                return np.float32(np.inf)
            return fn(z, v, T)

        report = check_soft_loss(float32_overflow, "numpy", grad_fn=grad)
        assert report.codes == ("numerically-unstable",)

    def test_grad_fn_of_the_wrong_shape_is_an_exception(self):
        fn, _ = exact_soft()
        report = check_soft_loss(fn, "numpy", grad_fn=lambda z, v, T: np.zeros(3))
        assert report.codes == ("exception",)
        assert "grad_fn returned shape" in report.findings[0].evidence["errors"][0]["error"]

    def test_the_loss_may_not_modify_our_inputs(self):
        fn, grad = exact_soft()

        def vandal(z, v, T):
            value = fn(z, v, T)
            z[...] = 0.0
            v[...] = 0.0
            return value

        assert check_soft_loss(vandal, "numpy", grad_fn=grad).ok
        assert check_soft_loss(vandal, "numpy", grad_fn=grad).ok  # the cached battery is intact

    def test_numpy_warnings_do_not_escape(self):
        # pytest turns warnings into errors here: the checker must capture the loss's own.
        fn, grad = exact_soft()

        def noisy(z, v, T):
            import warnings

            warnings.warn("deprecated spelling", DeprecationWarning, stacklevel=1)
            return fn(z, v, T)

        report = check_soft_loss(noisy, "numpy", grad_fn=grad)
        assert report.ok
        assert any(
            "deprecated spelling" in m
            for m in {n.code: n for n in report.notes}["warnings"].evidence["messages"]
        )


class TestHonestHints:
    def test_off_by_one_over_B_is_not_missing_t2(self):
        fn, grad = exact_soft(factor=lambda B, N: 1 / B)
        report = check_soft_loss(fn, "numpy", grad_fn=grad)
        assert report.codes == ("batch-mean-twice",)

    def test_a_power_of_T_outside_the_catalogue_is_named(self):
        fn, grad = exact_soft(T_power=1)
        (finding,) = check_soft_loss(fn, "numpy", grad_fn=grad).findings
        assert finding.code == "value-mismatch"
        assert "got/expected = T^-1 on every case" in finding.message

    def test_two_factors_at_once(self):
        fn, grad = exact_soft(T_power=0, factor=lambda B, N: 0.5)
        (finding,) = check_soft_loss(fn, "numpy", grad_fn=grad).findings
        assert "got/expected = 0.5 × T^-2" in finding.message

    def test_wrong_only_at_alpha_zero_is_called_out(self):
        def fn(z, v, y, T, alpha):
            return kdcore.distillation_loss(z, v, y, T, alpha or 0.2)

        def grad(z, v, y, T, alpha):
            return kdcore.distillation_loss_grad(z, v, y, T, alpha or 0.2)

        (finding,) = check_distillation_loss(fn, "numpy", grad_fn=grad).findings
        assert finding.code == "value-mismatch"
        assert "it fails on every case with α = 0 (4 of 26)" in finding.message
        assert "T < 1" not in finding.message  # rows 04 (T = 0.5) and 13 (T = 1.5) tell the two apart

    def test_table_and_evidence_agree_on_expected(self):
        fn, grad = exact_soft()
        rng = np.random.default_rng(0)
        noise = {}

        def wrong(z, v, T):  # off by a random relative amount per case: no formula fits
            key = (z.shape, z.dtype.name)
            noise.setdefault(key, 1.0 + rng.uniform(0.01, 0.1))
            return fn(z, v, T) * noise[key]

        report = check_soft_loss(wrong, "numpy", grad_fn=grad)
        (finding,) = report.findings
        table = {case.id: case.expected for case in report.cases}
        for row in finding.evidence["worst"]:
            assert row["expected"] == table[row["case"]]

    def test_shared_evidence_is_printed_once(self):
        fn, grad = exact_soft(T_power=0, factor=lambda B, N: 1 / N)
        report = check_soft_loss(fn, "numpy", grad_fn=grad)
        assert report.findings[0].evidence == report.findings[1].evidence
        assert str(report).count("fitted:") == 1

    def test_identical_exceptions_are_folded(self):
        def broken(z, v, T):
            raise ValueError("shapes do not match")

        report = check_soft_loss(broken, "numpy")
        (finding,) = report.findings
        assert finding.evidence["errors"][0]["cases"] == [case.id for case in report.cases]
        text = str(report)
        assert text.count("shapes do not match") == 2  # the finding's evidence and one folded table row
        assert "and 25 more cases, the same" in text


class TestValidation:
    def test_wrong_signature(self):
        with pytest.raises(TypeError, match=r"cannot tell which parameter of <lambda>\(z, v\) is T"):
            check_soft_loss(lambda z, v: 0.0, "numpy")
        with pytest.raises(TypeError, match=r"which parameter of <lambda>.* is labels"):
            check_distillation_loss(lambda z, v, T: 0.0, "numpy")

    def test_not_callable(self):
        with pytest.raises(TypeError, match="callable"):
            check_soft_loss(42, "numpy")

    def test_unknown_framework(self):
        with pytest.raises(ValueError, match="framework must be one of"):
            check_soft_loss(lambda z, v, T: 0.0, "mxnet")

    def test_grad_fn_only_for_numpy(self):
        with pytest.raises(ValueError, match="grad_fn is only for framework='numpy'"):
            check_soft_loss(lambda z, v, T: 0.0, "torch", grad_fn=lambda z, v, T: z)

    def test_t2_scaling_must_be_bool(self):
        with pytest.raises(TypeError, match="t2_scaling"):
            check_soft_loss(lambda z, v, T: 0.0, "numpy", t2_scaling=1)


# ------------------------------------------------------------------------------------------------------
# Reports


@pytest.fixture(scope="module")
def reports():
    members = {m.name: m for m in NUMPY_ZOO}
    return {name: check(members[name]) for name in ("np_kl_with_grad", "np_missing_T2_fd", "np_naive")}


class TestReport:
    def test_json_round_trip(self, reports):
        for report in (reports["np_kl_with_grad"], reports["np_missing_T2_fd"]):
            assert Report.from_json(report.to_json()) == report

    def test_json_round_trip_with_non_finite_numbers(self, reports):
        report = reports["np_naive"]
        assert any(isinstance(c.got, float) and not math.isfinite(c.got) for c in report.cases)
        again = Report.from_json(report.to_json())
        # NaN ≠ NaN, so the reports cannot compare equal; their JSON can
        assert again.to_json() == report.to_json()
        assert again.codes == report.codes

    def test_json_is_strict(self, reports):
        def refuse(token):
            raise AssertionError(f"non-standard JSON token {token}")

        data = json.loads(reports["np_naive"].to_json(), parse_constant=refuse)
        assert data["schema"] == "kdcore-check-report"
        assert data["schema_version"] == verify.REPORT_SCHEMA_VERSION
        assert data["ok"] is False
        assert {"code", "message", "evidence"} <= set(data["findings"][0])
        assert len(data["cases"]) == 2 * len(BATTERY)

    def test_from_json_refuses_other_documents(self):
        with pytest.raises(ValueError, match="not a kdcore check report"):
            Report.from_json('{"schema": "something else"}')

    def test_str_is_readable(self, reports):
        text = str(reports["np_missing_T2_fd"])
        assert text.splitlines()[0].endswith(": FAIL")
        assert "[missing-T2-scaling]" in text and "Fix: multiply the soft loss by T**2" in text
        assert all(case.id in text for case in reports["np_missing_T2_fd"].cases)
        assert str(reports["np_kl_with_grad"]).splitlines()[0].endswith(": OK")

    def test_cases_record_what_was_compared(self, reports):
        cases = reports["np_kl_with_grad"].cases
        assert all(isinstance(case, CaseResult) and case.status == "ok" for case in cases)
        assert all(case.value_error <= 1 and case.grad_error <= 1 for case in cases)
        assert {case.grad_source for case in cases} == {"grad_fn"}
        fd_sources = {c.grad_source for c in reports["np_missing_T2_fd"].cases}
        assert fd_sources == {"finite-differences", "none"}

    def test_finding_fields(self):
        finding = Finding("value-mismatch", "text", {"x": [1.0, math.inf]})
        assert json.loads(json.dumps(jsonable(finding.evidence))) == {"x": [1.0, "Infinity"]}


class TestCatalogueDocs:
    def test_every_code_is_documented(self):
        text = DOCS.read_text(encoding="utf-8")
        headings = set(re.findall(r"^#+ `([a-zA-Z0-9-]+)`", text, flags=re.MULTILINE))
        assert set(CATALOGUE) <= headings
        assert REQUIRED_CODES <= set(CATALOGUE)

    def test_quoted_accuracy_is_the_measured_one(self):
        # docs/verify.md quotes the reference's measured worst error; docs/accuracy.md is where it is measured.
        accuracy = (DOCS.parent / "accuracy.md").read_text(encoding="utf-8")
        worst = float(
            re.search(r"worst over everything: ([0-9.e+-]+) \(contract: 1e-12\)", accuracy).group(1)
        )
        text = DOCS.read_text(encoding="utf-8")
        assert f"worst error measured ([accuracy.md](accuracy.md)) is {worst:.1e}" in text
        assert "contract is 1e-12" in text
        assert "about 1e-15" not in text

    def test_every_battery_row_is_documented(self):
        text = DOCS.read_text(encoding="utf-8")
        for spec in BATTERY:
            assert spec.why in text, spec


# ------------------------------------------------------------------------------------------------------
# Adapters


class TestAdapters:
    def test_unknown_framework(self):
        with pytest.raises(ValueError, match="framework must be one of"):
            adapters.get_adapter("mxnet")

    def test_numpy_adapter_rejects_arrays(self):
        adapter = adapters.get_adapter("numpy")
        with pytest.raises(adapters.NotScalarError, match=r"shape \(2,\)"):
            adapter.value_and_grad(lambda z: z[:, 0], np.zeros((2, 3)))

    def test_missing_framework_says_how_to_install(self, monkeypatch):
        def fail(name):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

        monkeypatch.setattr(adapters.importlib, "import_module", fail)
        with pytest.raises(adapters.FrameworkNotInstalledError, match="pip install jax"):
            adapters.get_adapter("jax")

    @pytest.mark.frameworks
    def test_torch_keeps_the_dtype(self):
        torch = pytest.importorskip("torch")
        adapter = adapters.get_adapter("torch")
        seen = []

        def loss(z):
            seen.append(z.dtype)
            return (z**2).sum()

        evaluation = adapter.value_and_grad(loss, np.ones((2, 2), dtype=np.float32))
        assert seen == [torch.float32] and evaluation.value_dtype == "float32"
        np.testing.assert_array_equal(evaluation.grad, 2 * np.ones((2, 2)))

    @pytest.mark.frameworks
    def test_jax_float64_is_local(self):
        jax = pytest.importorskip("jax")
        adapter = adapters.get_adapter("jax")
        before = bool(jax.config.jax_enable_x64)
        with adapter.precision(np.dtype(np.float64)):
            evaluation = adapter.value_and_grad(lambda z: (z**2).sum(), np.ones((1, 2)))
        assert evaluation.value_dtype == "float64"
        assert bool(jax.config.jax_enable_x64) == before


# ------------------------------------------------------------------------------------------------------
# run_check: the command line's exit codes and messages

CORRECT = """
import numpy as np

def log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))

def kd_loss(student_logits, teacher_logits, T):
    log_p, log_q = log_softmax(student_logits / T), log_softmax(teacher_logits / T)
    return T**2 * np.mean(np.sum(np.exp(log_q) * (log_q - log_p), axis=-1))

def kd_loss_without_t2(student_logits, teacher_logits, T):
    return kd_loss(student_logits, teacher_logits, T) / T**2

def unstable(student_logits, teacher_logits, T):
    p = np.exp(student_logits / T) / np.exp(student_logits / T).sum(axis=-1, keepdims=True)
    q = np.exp(teacher_logits / T) / np.exp(teacher_logits / T).sum(axis=-1, keepdims=True)
    return T**2 * np.mean(np.sum(q * np.log(q / p), axis=-1))

def two_arguments(student_logits, teacher_logits):
    return 0.0

class Losses:
    @staticmethod
    def kd(student_logits, teacher_logits, T):
        return kd_loss(student_logits, teacher_logits, T)

NOT_A_FUNCTION = 3
"""


@pytest.fixture
def losses_file(tmp_path):
    path = tmp_path / "my_losses.py"
    path.write_text(textwrap.dedent(CORRECT), encoding="utf-8")
    return path


def run(target, framework="numpy", kind="soft", as_json=False):
    stream = io.StringIO()
    code = run_check(target, framework, kind, as_json=as_json, stream=stream)
    return code, stream.getvalue()


class TestRunCheck:
    def test_correct_file_exits_0(self, losses_file):
        code, output = run(f"{losses_file}:kd_loss")
        assert code == 0, output
        assert output.splitlines()[0].endswith(": OK")

    def test_buggy_file_exits_1(self, losses_file):
        code, output = run(f"{losses_file}:kd_loss_without_t2")
        assert code == 1
        assert "[missing-T2-scaling]" in output
        code, output = run(f"{losses_file}:unstable")
        assert code == 1 and "[numerically-unstable]" in output

    def test_module_target_from_the_current_directory(self, losses_file, monkeypatch):
        monkeypatch.chdir(losses_file.parent)
        monkeypatch.delitem(__import__("sys").modules, "my_losses", raising=False)
        code, output = run("my_losses:Losses.kd")
        assert code == 0, output
        assert "my_losses:Losses.kd" in output.splitlines()[0]

    def test_json_output(self, losses_file):
        code, output = run(f"{losses_file}:kd_loss_without_t2", as_json=True)
        report = Report.from_json(output)
        assert code == 1 and report.codes == ("missing-T2-scaling",)

    @pytest.mark.parametrize(
        ("target", "message"),
        [
            ("no_colon_here", "no ':' in it"),
            ("definitely_not_a_module_xyz:fn", "module not found: definitely_not_a_module_xyz"),
            ("missing/file.py:fn", "file not found: missing/file.py"),
            ("{file}:nope", "function not found: .* has no attribute 'nope' \\(callables in it: .*kd_loss"),
            ("{file}:NOT_A_FUNCTION", "is not callable"),
            (
                "{file}:two_arguments",
                r"cannot tell which parameter of two_arguments\(student_logits, teacher_logits\) is T",
            ),
        ],
    )
    def test_usage_errors_exit_2(self, losses_file, target, message):
        code, output = run(target.format(file=losses_file))
        assert code == 2
        assert output.startswith("error: ")
        assert re.search(message, output), output

    def test_broken_module_exits_2(self, tmp_path):
        path = tmp_path / "broken.py"
        path.write_text("def kd_loss(:\n", encoding="utf-8")
        code, output = run(f"{path}:kd_loss")
        assert code == 2 and "importing" in output and "SyntaxError" in output

    def test_missing_dependency_of_the_module_exits_2(self, tmp_path):
        path = tmp_path / "needs_more.py"
        path.write_text("import definitely_not_installed_xyz\n", encoding="utf-8")
        code, output = run(f"{path}:kd_loss")
        assert code == 2 and "No module named 'definitely_not_installed_xyz'" in output

    def test_unknown_framework_and_kind_exit_2(self, losses_file):
        assert run(f"{losses_file}:kd_loss", framework="mxnet")[0] == 2
        code, output = run(f"{losses_file}:kd_loss", kind="hard")
        assert code == 2 and "kind must be one of 'soft', 'distillation'" in output

    def test_framework_not_installed_exits_2(self, losses_file, monkeypatch):
        def missing(framework):
            raise adapters.FrameworkNotInstalledError(
                f"the {framework!r} framework is not installed (pip install jax)"
            )

        monkeypatch.setattr(verify.command, "get_adapter", missing)
        code, output = run(f"{losses_file}:kd_loss", framework="jax")
        assert code == 2 and "pip install jax" in output

    def test_usage_error_as_json(self):
        code, output = run("nowhere.py:f", as_json=True)
        assert code == 2 and json.loads(output)["error"].startswith("file not found")

    @pytest.mark.frameworks
    def test_torch_file(self, tmp_path):
        pytest.importorskip("torch")
        path = tmp_path / "torch_losses.py"
        path.write_text(
            textwrap.dedent(
                """
                import torch.nn.functional as F

                def kd(s, t, T):
                    return F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction="batchmean") * T * T

                def kd_mean(s, t, T):
                    return F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction="mean") * T * T

                def hinton(s, t, y, T, alpha):
                    return alpha * F.cross_entropy(s, y) + (1 - alpha) * kd(s, t, T)
                """
            ),
            encoding="utf-8",
        )
        assert run(f"{path}:kd", framework="torch")[0] == 0
        code, output = run(f"{path}:kd_mean", framework="torch")
        assert code == 1 and "[mean-over-classes]" in output
        assert run(f"{path}:hinton", framework="torch", kind="distillation")[0] == 0
        code, output = run(f"{path}:hinton", framework="torch", kind="soft")
        assert code == 2 and "parameter 'y' of hinton(s, t, y, T, alpha) gets no value" in output
