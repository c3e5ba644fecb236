"""kdcore.vectors: the golden file is well-formed, exact, reproducible, and right to 1e-12 (mpmath oracle).

Each expected number is compared with tests/oracle.py (50-digit mpmath, adaptive precision, independent of
kdcore) with the project's float64 contract, ``ORACLE_RTOL`` = 1e-12 relative: elementwise for per-sample
losses, normwise per sample (max-norm) for gradient rows. A reduced result (``"mean"``, ``"sum"``) is
compared with the exact sum of the oracle's per-sample results (``math.fsum``), relative to the sum of their
magnitudes — the normwise error over samples, which equals the plain relative error for the losses (all
terms ≥ 0) and stays meaningful for a temperature derivative whose per-sample terms have mixed signs.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import oracle
import pytest
import topk_oracle
from tolerances import ORACLE_RTOL

import kdcore
from kdcore import sweep_file
from kdcore.vectors import FORMAT, VERSION, decode, encode, make_vectors, write_vectors

RTOL = ORACLE_RTOL[np.dtype(np.float64)]
REPO = Path(__file__).resolve().parents[1]
JS_CONSUMER = REPO / "docs" / "examples" / "check_vectors.js"


@pytest.fixture(scope="module")
def vectors():
    return make_vectors()


def all_cases():
    return make_vectors()["cases"]


CASES = all_cases()


HINTON = {"kl_divergence", "soft_cross_entropy", "cross_entropy", "distillation_loss", "logit_mse"}
BEYOND = {
    "reverse_kl_divergence",
    "jensen_shannon_divergence",
    "skew_kl_divergence",
    "skew_reverse_kl_divergence",
    "decoupled_kd_loss",
    "standardize_logits",
}
TOPK = {"topk_kl_divergence", "topk_soft_cross_entropy"}
WEIGHT = {
    "jensen_shannon_divergence": "beta",
    "skew_kl_divergence": "skew",
    "skew_reverse_kl_divergence": "skew",
}


def inputs_of(case):
    """The decoded inputs, in the case's dtype (T stays a Python float: it is a float32 number there too)."""
    dtype = np.dtype(case.get("dtype", "float64"))
    decoded = {}
    for name, value in case["inputs"].items():
        if name in ("labels", "teacher_indices"):
            decoded[name] = np.array(value)
        elif name == "T":
            decoded[name] = decode(value)
        else:
            decoded[name] = decode(value).astype(dtype)
    return decoded


GRAD_KEY = {"student": "grad_student", "teacher": "grad_teacher", "temperature": "grad_T"}
NOT_ENCODED = ("labels", "teacher_indices")  # plain lists of integers


def recompute(function, inputs, params):
    """The expected results of the new losses, from kdcore's public functions called here directly."""
    z = inputs["student_logits"]
    if function == "standardize_logits":
        options = {key: params[key] for key in ("base_temperature", "ddof", "eps")}
        return {
            "value": kdcore.standardize_logits(z, **options),
            "vjp": kdcore.standardize_logits_vjp(z, inputs["cotangent"], **options),
        }
    if function in TOPK:
        arguments = (z, inputs["teacher_values"], inputs["teacher_indices"], inputs["T"], params["reduction"])
        options = {"convention": params["convention"], "values": params["values"]}
        grad = getattr(kdcore, f"{function}_grad")
        wrts = ("student", "teacher") + (() if params["convention"] == "tail" else ("temperature",))
        return {
            "value": getattr(kdcore, function)(*arguments, **options),
            **{GRAD_KEY[wrt]: grad(*arguments, wrt, **options) for wrt in wrts},
        }
    v, T, reduction = inputs["teacher_logits"], inputs["T"], params["reduction"]
    if function == "decoupled_kd_loss":
        value = functools.partial(
            kdcore.decoupled_kd_loss, z, v, inputs["labels"], T, params["alpha"], params["beta"]
        )
        grad = functools.partial(
            kdcore.decoupled_kd_loss_grad, z, v, inputs["labels"], T, params["alpha"], params["beta"]
        )
    else:
        options = {WEIGHT[function]: params[WEIGHT[function]]} if function in WEIGHT else {}
        value = functools.partial(getattr(kdcore, function), z, v, T, **options)
        grad = functools.partial(getattr(kdcore, f"{function}_grad"), z, v, T, **options)
    return {
        "value": value(reduction=reduction),
        "grad_student": grad(reduction=reduction, wrt="student"),
        "grad_teacher": grad(reduction=reduction, wrt="teacher"),
        "grad_T": grad(reduction=reduction, wrt="temperature"),
    }


# ------------------------------------------------------------------------------------------------------
# The file's structure


class TestSchema:
    def test_header(self, vectors):
        assert vectors["format"] == FORMAT == "kdcore-golden-vectors"
        assert vectors["version"] == VERSION == 1
        assert set(vectors["functions"]) == {case["function"] for case in vectors["cases"]}
        assert {"layout", "numbers", "reduction", "gradients", "masks", "labels", "dtype"} <= set(
            vectors["conventions"]
        )

    def test_every_function_regime_and_reduction(self, vectors):
        assert {case["function"] for case in vectors["cases"]} == HINTON | BEYOND | TOPK
        for function in (HINTON | BEYOND | TOPK) - {
            "standardize_logits"
        }:  # (standardisation has no reduction)
            reductions = {c["params"]["reduction"] for c in vectors["cases"] if c["function"] == function}
            assert reductions == {"none", "mean", "sum"}, function
        regimes = {case["regime"] for case in vectors["cases"]}
        assert {"ordinary", "near-equal", "high-T", "low-T", "extreme", "masked"} <= regimes

    def test_topk_conventions_regimes_and_values(self, vectors):
        for function in TOPK:
            cases = [c for c in vectors["cases"] if c["function"] == function]
            for convention in ("renormalized", "dense_student", "tail"):
                ours = [c for c in cases if c["params"]["convention"] == convention]
                assert {"ordinary", "near-equal", "masked"} <= {c["regime"] for c in ours}, (
                    function,
                    convention,
                )
                assert all(("grad_T" in c["expected"]) == (convention != "tail") for c in ours)
            assert {c["params"]["values"] for c in cases} == {"logits", "log_probs"}
            assert {c["params"]["k"] for c in cases} >= {1, 5}  # k = 1 and k = V (5 classes)

    def test_new_losses_in_both_dtypes(self, vectors):
        for function in BEYOND | {"topk_kl_divergence"}:
            dtypes = {c["dtype"] for c in vectors["cases"] if c["function"] == function}
            assert dtypes == {"float64", "float32"}, function
        assert {c["dtype"] for c in vectors["cases"] if c["function"] in HINTON} == {"float64"}

    @pytest.mark.parametrize("case", [c for c in CASES if c["dtype"] == "float32"], ids=lambda c: c["id"])
    def test_float32_cases_hold_float32_numbers(self, case):
        numbers = [
            *(v for k, v in case["inputs"].items() if k not in NOT_ENCODED),
            *case["expected"].values(),
        ]
        for number in numbers:
            values = np.atleast_1d(decode(number))
            finite = np.isfinite(values)
            np.testing.assert_array_equal(
                values[finite].astype(np.float32).astype(np.float64), values[finite]
            )

    def test_ids_are_unique(self, vectors):
        ids = [case["id"] for case in vectors["cases"]]
        assert len(ids) == len(set(ids))

    @pytest.mark.parametrize("case", CASES, ids=lambda c: c["id"])
    def test_hex_and_decimal_agree_and_shapes_fit(self, case):
        numbers = [
            *(v for k, v in case["inputs"].items() if k not in NOT_ENCODED),
            *case["expected"].values(),
        ]
        for number in numbers:
            assert len(number["hex"]) == len(number["dec"]) == math.prod(number["shape"])
            for hex_text, dec_text in zip(number["hex"], number["dec"], strict=True):
                from_hex = float.fromhex(hex_text) if "0x" in hex_text else float(hex_text)
                from_dec = float(dec_text)
                assert from_hex == from_dec or (math.isnan(from_hex) and math.isnan(from_dec))
        batch, n_classes = case["inputs"]["student_logits"]["shape"]
        if case["function"] == "standardize_logits":
            assert (
                case["expected"]["value"]["shape"] == case["expected"]["vjp"]["shape"] == [batch, n_classes]
            )
            return
        loss_shape = [batch] if case["params"]["reduction"] == "none" else []
        assert case["expected"]["value"]["shape"] == loss_shape
        assert case["expected"]["grad_student"]["shape"] == [batch, n_classes]
        if case["function"] in TOPK:
            k = case["params"]["k"]
            assert (
                case["inputs"]["teacher_values"]["shape"]
                == case["expected"]["grad_teacher"]["shape"]
                == [batch, k]
            )
            assert np.array(case["inputs"]["teacher_indices"]).shape == (batch, k)
        if "grad_T" in case["expected"]:
            assert case["expected"]["grad_T"]["shape"] == loss_shape

    def test_encode_is_exact(self, rng):
        values = np.concatenate([rng.normal(size=50) * 10.0 ** rng.integers(-300, 300, 50), [5e-324, -0.0]])
        again = decode(encode(values))
        np.testing.assert_array_equal(again.view(np.int64), values.view(np.int64))  # bit for bit, -0.0 too


class TestWriteVectors:
    def test_file_parses_strictly_and_reproduces(self, tmp_path, vectors):
        path = tmp_path / "vectors.json"
        write_vectors(path)

        def refuse(token):
            raise AssertionError(f"non-standard JSON token {token}")

        assert json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse) == vectors

    def test_an_interrupted_write_leaves_the_old_file(self, tmp_path, monkeypatch):
        # write_vectors goes through kdcore.sweep_file.write_json: a temporary file renamed into place.
        path = tmp_path / "vectors.json"
        path.write_text("previous", encoding="utf-8")

        def interrupted(source, destination):
            raise KeyboardInterrupt

        monkeypatch.setattr(sweep_file, "os", SimpleNamespace(fsync=os.fsync, replace=interrupted))
        with pytest.raises(KeyboardInterrupt):
            write_vectors(path)
        assert path.read_text(encoding="utf-8") == "previous"
        assert [p.name for p in tmp_path.iterdir()] == ["vectors.json"]

    def test_deterministic(self, vectors):
        assert make_vectors() == vectors

    @pytest.mark.parametrize("case", CASES, ids=lambda c: c["id"])
    def test_kdcore_reproduces_every_case_bit_for_bit(self, case):
        # The file is a snapshot of kdcore: recomputing from the decoded inputs gives the same bits.
        inputs, params = inputs_of(case), case["params"]
        if case["function"] in BEYOND | TOPK:
            got = recompute(case["function"], inputs, params)
            assert set(got) == set(case["expected"])
            for key, value in got.items():
                assert value.dtype == np.dtype(case["dtype"]), key  # float32 stays float32
                np.testing.assert_array_equal(value, decode(case["expected"][key]), err_msg=key)
            return
        z, reduction = inputs["student_logits"], params["reduction"]
        if case["function"] == "cross_entropy":
            value = kdcore.cross_entropy(z, inputs["labels"], reduction)
        elif case["function"] == "logit_mse":
            value = kdcore.logit_mse(z, inputs["teacher_logits"], params["centered"], reduction)
        elif case["function"] == "distillation_loss":
            options = {k: params[k] for k in ("t2_scaling", "soft", "reduction")}
            value = kdcore.distillation_loss(
                z, inputs["teacher_logits"], inputs["labels"], inputs["T"], params["alpha"], **options
            )
        else:
            value = getattr(kdcore, case["function"])(z, inputs["teacher_logits"], inputs["T"], reduction)
        np.testing.assert_array_equal(value, decode(case["expected"]["value"]))


# ------------------------------------------------------------------------------------------------------
# Against the 50-digit oracle


def reduce_oracle(per_sample, reduction, result_ndim):
    """The oracle's per-sample results reduced exactly, and the magnitude scale for the error."""
    if reduction == "none":
        return per_sample, None
    if result_ndim == 1:  # gradient rows: per sample for "sum", divided by B for "mean"
        return (per_sample / per_sample.shape[0] if reduction == "mean" else per_sample), None
    divisor = per_sample.size if reduction == "mean" else 1
    total = math.fsum(per_sample.tolist()) / divisor
    magnitude = math.fsum(np.abs(per_sample).tolist()) / divisor
    return total, magnitude


def assert_close(actual, per_sample, reduction, result_ndim, what, rtol=RTOL):
    expected, magnitude = reduce_oracle(np.asarray(per_sample, dtype=np.float64), reduction, result_ndim)
    if magnitude is None:
        error = oracle.relative_error(actual, expected, result_ndim)
    elif not math.isfinite(expected):
        error = 0.0 if (actual == expected or (math.isnan(actual) and math.isnan(expected))) else math.inf
    else:
        error = abs(actual - expected) / magnitude if magnitude else abs(actual - expected)
    assert np.all(error <= rtol), f"{what}: relative error {np.max(error):.3g} > {rtol}"


def oracle_soft(function, z, v, T):
    value = getattr(oracle, function)
    grad = getattr(oracle, f"{function}_grad")
    return value(z, v, T), {wrt: grad(z, v, T, wrt=wrt) for wrt in ("student", "teacher", "temperature")}


def oracle_beyond(function, inputs, params):
    """{key: (per-sample oracle results, result_ndim)} for the new losses (tests/oracle.py, 50 digits)."""
    z = inputs["student_logits"].astype(np.float64)
    if function == "standardize_logits":
        options = {key: params[key] for key in ("base_temperature", "ddof", "eps")}
        return {
            "value": (oracle.standardize_logits(z, **options), 1),
            "vjp": (oracle.standardize_logits_vjp(z, inputs["cotangent"].astype(np.float64), **options), 1),
        }
    v, T = inputs["teacher_logits"].astype(np.float64), inputs["T"]
    truth = {}
    for key, wrt, ndim in (
        ("value", None, 0),
        ("grad_student", "student", 1),
        ("grad_teacher", "teacher", 1),
    ):
        if function == "decoupled_kd_loss":
            result = oracle.decoupled_kd_loss(
                z, v, inputs["labels"], T, params["alpha"], params["beta"], wrt=wrt
            )
        elif function == "reverse_kl_divergence":
            result = (
                oracle.reverse_kl_divergence(z, v, T)
                if wrt is None
                else oracle.reverse_kl_divergence_grad(z, v, T, wrt)
            )
        else:
            result = getattr(oracle, function)(z, v, T, params[WEIGHT[function]], wrt=wrt)
        truth[key] = (result, ndim)
    return truth


def in_dtype(exact, dtype):
    """The oracle's results correctly rounded to the case's dtype: in float32, a gradient entry of 1e-47 is 0."""
    with np.errstate(over="ignore"):
        return np.asarray(exact, dtype=np.float64).astype(dtype).astype(np.float64)


def oracle_temperature_derivative(function, inputs, params):
    z, v, T = (
        inputs["student_logits"].astype(np.float64),
        inputs["teacher_logits"].astype(np.float64),
        inputs["T"],
    )
    if function == "decoupled_kd_loss":
        return oracle.decoupled_kd_loss(
            z, v, inputs["labels"], T, params["alpha"], params["beta"], wrt="temperature"
        )
    if function == "reverse_kl_divergence":
        return oracle.reverse_kl_divergence_grad(z, v, T, "temperature")
    return getattr(oracle, function)(z, v, T, params[WEIGHT[function]], wrt="temperature")


@pytest.mark.parametrize("case", [c for c in CASES if c["function"] in BEYOND], ids=lambda c: c["id"])
def test_new_losses_against_the_oracle(case):
    # float64 to the contract (1e-12), float32 to float32's (1e-5); DKD's temperature derivative, T² times a
    # KL whose T-derivative cancels at high T, to 1e-12·max(1, T) (docs/divergences.md explains the bound).
    inputs, params, expected = inputs_of(case), case["params"], case["expected"]
    rtol = ORACLE_RTOL[np.dtype(case["dtype"])]
    got = {key: decode(value) for key, value in expected.items()}
    reduction = params.get("reduction", "none")
    truth = oracle_beyond(case["function"], inputs, params)
    for key, (per_sample, result_ndim) in truth.items():
        per_sample = in_dtype(per_sample, case["dtype"])
        assert_close(got[key], per_sample, reduction, result_ndim, f"{case['id']} {key}", rtol)
    if "grad_T" in got:
        per_sample = in_dtype(oracle_temperature_derivative(case["function"], inputs, params), case["dtype"])
        scale = max(1.0, inputs["T"]) if case["function"] == "decoupled_kd_loss" else 1.0
        assert_close(got["grad_T"], per_sample, reduction, 0, f"{case['id']} grad_T", rtol * scale)


@pytest.mark.parametrize("case", [c for c in CASES if c["function"] in TOPK], ids=lambda c: c["id"])
def test_topk_losses_against_the_oracle(case):
    # tests/topk_oracle.py: each convention's definition at 50+ digits, derivatives by mpmath.diff; float64
    # to the contract, float32 to float32's (against the exact result rounded to float32).
    inputs, params, expected = inputs_of(case), case["params"], case["expected"]
    rtol = ORACLE_RTOL[np.dtype(case["dtype"])]
    z, values = inputs["student_logits"].astype(np.float64), inputs["teacher_values"].astype(np.float64)
    indices, T = inputs["teacher_indices"], inputs["T"]
    ce = case["function"] == "topk_soft_cross_entropy"
    for key, wrt, ndim in (
        ("value", None, 0),
        ("grad_student", "student", 1),
        ("grad_teacher", "teacher", 1),
        ("grad_T", "temperature", 0),
    ):
        if key not in expected:
            continue
        exact = topk_oracle.topk_loss(z, values, indices, T, params["convention"], ce, wrt)
        assert_close(
            decode(expected[key]),
            in_dtype(exact, case["dtype"]),
            params["reduction"],
            ndim,
            f"{case['id']} {key}",
            rtol,
        )


@pytest.mark.parametrize("case", [c for c in CASES if c["function"] in HINTON], ids=lambda c: c["id"])
def test_against_the_oracle(case):
    inputs, params, expected = inputs_of(case), case["params"], case["expected"]
    reduction = params["reduction"]
    z = inputs["student_logits"]
    got = {key: decode(value) for key, value in expected.items()}
    function = case["function"]
    if function in ("kl_divergence", "soft_cross_entropy"):
        value, grads = oracle_soft(function, z, inputs["teacher_logits"], inputs["T"])
        truth = {
            "value": (value, 0),
            "grad_student": (grads["student"], 1),
            "grad_teacher": (grads["teacher"], 1),
            "grad_T": (grads["temperature"], 0),
        }
    elif function == "cross_entropy":
        labels = inputs["labels"]
        truth = {
            "value": (oracle.cross_entropy(z, labels), 0),
            "grad_student": (oracle.cross_entropy_grad(z, labels), 1),
        }
    elif function == "logit_mse":
        v, centered = inputs["teacher_logits"], params["centered"]
        grad = oracle.logit_mse_grad(z, v, centered)
        truth = {
            "value": (oracle.logit_mse(z, v, centered), 0),
            "grad_student": (grad, 1),
            "grad_teacher": (-grad, 1),
        }
    else:
        truth = oracle_distillation(z, inputs, params)
    assert set(truth) == set(got)
    for key, (per_sample, result_ndim) in truth.items():
        if key == "grad_T" and function == "distillation_loss":
            continue  # a sum of two terms: checked in oracle_distillation's own way below
        assert_close(got[key], per_sample, reduction, result_ndim, f"{case['id']} {key}")
    if function == "distillation_loss":
        check_distillation_temperature_grad(got["grad_T"], inputs, params, case["id"])


def oracle_distillation(z, inputs, params):
    v, labels, T, alpha = inputs["teacher_logits"], inputs["labels"], inputs["T"], params["alpha"]
    options = {"t2_scaling": params["t2_scaling"], "soft": params["soft"]}
    truth = {
        "value": (oracle.distillation_loss(z, v, labels, T, alpha, **options), 0),
        "grad_student": (oracle.distillation_loss_grad(z, v, labels, T, alpha, **options), 1),
    }
    weight = (1.0 - alpha) * (T * T if params["t2_scaling"] else 1.0)
    soft = "kl_divergence" if params["soft"] == "kl" else "soft_cross_entropy"
    soft_teacher = getattr(oracle, f"{soft}_grad")(z, v, T, wrt="teacher")
    # weight·(correctly rounded oracle value): one rounding, far below 1e-12
    truth["grad_teacher"] = (weight * soft_teacher if weight else np.zeros_like(z), 1)
    truth["grad_T"] = (None, 0)
    return truth


def check_distillation_temperature_grad(got, inputs, params, what):
    """∂L/∂T = (1 − α)(2T·soft + T²·∂soft/∂T): relative to the size of its two terms (they may cancel)."""
    z, v, T, alpha, reduction = (
        inputs["student_logits"],
        inputs["teacher_logits"],
        inputs["T"],
        params["alpha"],
        params["reduction"],
    )
    soft = "kl_divergence" if params["soft"] == "kl" else "soft_cross_entropy"
    if alpha == 1.0:
        np.testing.assert_array_equal(got, 0.0)  # the soft term is absent, not 0·something
        return
    value = getattr(oracle, soft)(z, v, T)
    d_dT = getattr(oracle, f"{soft}_grad")(z, v, T, wrt="temperature")
    first = (1.0 - alpha) * 2.0 * T * value if params["t2_scaling"] else np.zeros_like(value)
    second = (1.0 - alpha) * (T * T if params["t2_scaling"] else 1.0) * d_dT
    terms = [*first.tolist(), *second.tolist()]
    exact = math.fsum(terms)
    magnitude = math.fsum(abs(t) for t in terms)
    if reduction == "none":
        per_sample = np.array([math.fsum([a, b]) for a, b in zip(first, second, strict=True)])
        scale = np.abs(first) + np.abs(second)
        assert np.all(np.abs(got - per_sample) <= RTOL * scale), what
    else:
        divisor = len(first) if reduction == "mean" else 1
        assert abs(got - exact / divisor) <= RTOL * magnitude / divisor, what


# ------------------------------------------------------------------------------------------------------
# A consumer in another language


@pytest.mark.skipif(shutil.which("node") is None, reason="node (JavaScript) is not installed")
def test_javascript_consumer(tmp_path):
    path = tmp_path / "vectors.json"
    write_vectors(path)
    result = subprocess.run(
        ["node", str(JS_CONSUMER), str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all agree" in result.stdout


@pytest.mark.skipif(shutil.which("node") is None, reason="node (JavaScript) is not installed")
def test_javascript_consumer_notices_a_wrong_value(tmp_path, vectors):
    # The consumer must be able to fail: one expected value off by 1e-6 relative.
    corrupted = json.loads(json.dumps(vectors))
    case = next(c for c in corrupted["cases"] if c["id"] == "soft_cross_entropy/ordinary")
    case["expected"]["value"] = encode(decode(case["expected"]["value"]) * (1 + 1e-6))
    path = tmp_path / "corrupted.json"
    path.write_text(json.dumps(corrupted), encoding="utf-8")
    result = subprocess.run(
        ["node", str(JS_CONSUMER), str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    assert "FAIL soft_cross_entropy/ordinary" in result.stdout
