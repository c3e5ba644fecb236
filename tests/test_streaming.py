"""kdcore.streaming: every loss streamed equals the in-memory function, position by position and in total.

The references are the in-memory functions on the kept rows (``reduction="none"``) — the same numbers bit
for bit — and, for the totals, the exact sum of those per-position values computed with Python's
``fractions`` (independent of the streaming code's ``math.fsum`` expansion), rounded once.
"""

import math
import os
import tracemalloc
from fractions import Fraction

import numpy as np
import pytest

import kdcore
from kdcore.arrays_on_disk import open_array
from kdcore.streaming import LOSSES, exact_sum, prepare, stream_loss

PARAMETERS = {
    "kl_divergence": {"T": 2.0},
    "soft_cross_entropy": {"T": 2.0},
    "reverse_kl_divergence": {"T": 0.5},
    "jensen_shannon_divergence": {"T": 2.0, "beta": 0.3},
    "skew_kl_divergence": {"T": 1.5, "skew": 0.2},
    "skew_reverse_kl_divergence": {"T": 1.5, "skew": 0.2},
    "logit_mse": {},
    "distillation_loss": {"T": 3.0, "alpha": 0.4},
    "decoupled_kd_loss": {"T": 4.0, "alpha": 1.0, "beta": 8.0},
    "target_class_kl_divergence": {"T": 2.0},
    "non_target_class_kl_divergence": {"T": 2.0},
    "cross_entropy": {},
}
SHAPE = (3, 7, 11)
DENSE = [name for name, spec in LOSSES.items() if "teacher_values" not in spec.inputs]  # dense teachers


def exact_mean(values, count):
    """The exact mean of float values, rounded once (Fraction arithmetic, independent of kdcore)."""
    return float(sum(map(Fraction, np.asarray(values, dtype=np.float64).tolist()), Fraction(0)) / count)


def in_memory(name, arrays, keep, **extra):
    spec = LOSSES[name]
    kept = {
        "student": arrays["student"][keep],
        "teacher": arrays["teacher"][keep],
        "labels": arrays["labels"][keep],
    }
    return spec, [kept[role] for role in spec.inputs], {**PARAMETERS[name], **extra}


@pytest.fixture
def arrays(rng):
    labels = rng.integers(0, SHAPE[-1], size=SHAPE[:-1])
    labels[0, 4:] = -100
    labels[2, 1] = -100
    return {
        "student": rng.normal(size=SHAPE) * 3,
        "teacher": rng.normal(size=SHAPE) * 3,
        "labels": labels,
    }


def save(tmp_path, arrays, dtype):
    paths = {}
    for role in ("student", "teacher"):
        paths[role] = tmp_path / f"{role}.npy"
        np.save(paths[role], arrays[role].astype(dtype))
    return paths


def streamed(name, paths, labels, **options):
    spec = LOSSES[name]
    teacher = paths["teacher"] if "teacher" in spec.inputs else None
    return stream_loss(name, paths["student"], teacher, labels, **PARAMETERS[name], **options)


def case(tmp_path, arrays, name, dtype):
    """The files of ``arrays`` in ``dtype``, the keep-mask, and the in-memory call on the kept rows."""
    typed = {**arrays, "student": arrays["student"].astype(dtype), "teacher": arrays["teacher"].astype(dtype)}
    keep = arrays["labels"] != -100
    return (save(tmp_path, arrays, dtype), keep, *in_memory(name, typed, keep))


class TestEveryLoss:
    @pytest.mark.parametrize("dtype", [np.float64, np.float32])
    @pytest.mark.parametrize("name", DENSE)
    def test_values_bit_for_bit_and_totals_exact(self, tmp_path, arrays, name, dtype):
        paths, keep, spec, inputs, parameters = case(tmp_path, arrays, name, dtype)
        per_position = spec.function(*inputs, reduction="none", **parameters)
        for chunk_rows in (1, 4, 5, 21, 100):
            result = streamed(name, paths, arrays["labels"], reduction="none", chunk_rows=chunk_rows)
            assert result.values.dtype == per_position.dtype
            np.testing.assert_array_equal(result.values[keep], per_position)  # the in-memory values
            assert not result.values[~keep].any()
            mean = streamed(name, paths, arrays["labels"], chunk_rows=chunk_rows)
            total = streamed(name, paths, arrays["labels"], reduction="sum", chunk_rows=chunk_rows)
            assert mean.value == exact_mean(per_position, keep.sum())  # to the last bit
            assert total.value == exact_mean(per_position, 1)
        # NumPy's pairwise sum (in the input's dtype) differs from the exact one by a few rounding errors.
        tolerance = 8 * np.finfo(dtype).eps
        in_memory_mean = spec.function(*inputs, reduction="mean", **parameters)
        np.testing.assert_allclose(mean.value, in_memory_mean, rtol=tolerance)
        np.testing.assert_allclose(
            total.value, spec.function(*inputs, reduction="sum", **parameters), rtol=tolerance
        )

    @pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
    @pytest.mark.parametrize("name", DENSE)
    def test_gradient_file(self, tmp_path, arrays, name, reduction):
        paths = save(tmp_path, arrays, np.float64)
        keep = arrays["labels"] != -100
        spec, inputs, parameters = in_memory(name, arrays, keep)
        per_row = spec.grad(*inputs, reduction="none", **parameters)
        reference = spec.grad(*inputs, reduction=reduction, **parameters)
        result = streamed(
            name, paths, arrays["labels"], reduction=reduction, grad_out=tmp_path / "g.npy", chunk_rows=4
        )
        grad = np.load(tmp_path / "g.npy")
        assert result.grad_path == tmp_path / "g.npy" and grad.shape == SHAPE and grad.dtype == np.float64
        assert not grad[~keep].any()  # exactly 0 at dropped positions
        if reduction == "mean":
            np.testing.assert_array_equal(grad[keep], per_row / keep.sum())
            # in memory the 1/n is folded into each kernel's own scale: the same up to rounding
            np.testing.assert_allclose(grad[keep], reference, rtol=0, atol=4e-16 * abs(reference).max())
        else:
            np.testing.assert_array_equal(grad[keep], reference)

    @pytest.mark.parametrize("name", ["kl_divergence", "distillation_loss", "jensen_shannon_divergence"])
    def test_value_with_a_gradient_is_the_value_without(self, tmp_path, arrays, name):
        # With a gradient, a fused *_and_grad is used where kdcore has one: its values must be the same.
        paths = save(tmp_path, arrays, np.float32)
        alone = streamed(name, paths, arrays["labels"], reduction="none")
        fused = streamed(name, paths, arrays["labels"], reduction="none", grad_out=tmp_path / "g.npy")
        np.testing.assert_array_equal(alone.values, fused.values)


class TestTopK:
    """A top-k teacher is a pair (values, indices): streamed as the student is, bit for bit and exactly."""

    @pytest.mark.parametrize("name", ["topk_kl_divergence", "topk_soft_cross_entropy"])
    @pytest.mark.parametrize("convention", ["renormalized", "dense_student", "tail"])
    def test_values_gradient_and_total(self, tmp_path, arrays, name, convention):
        space, T = ("log_probs", 1.0) if convention == "tail" else ("logits", 2.0)
        values, indices = kdcore.topk_teacher(arrays["teacher"], 4, values=space)
        np.save(tmp_path / "z.npy", arrays["student"])
        np.savez(tmp_path / "top.npz", values=values, indices=indices)
        teacher = (
            open_array(tmp_path / "top.npz", key="values"),
            open_array(tmp_path / "top.npz", key="indices"),
        )
        keep, options = arrays["labels"] != -100, {"T": T, "convention": convention, "values": space}
        kept = (arrays["student"][keep], values[keep], indices[keep])
        per_position = getattr(kdcore, name)(*kept, reduction="none", **options)
        result = stream_loss(
            name,
            tmp_path / "z.npy",
            teacher,
            arrays["labels"],
            reduction="none",
            chunk_rows=4,
            grad_out=tmp_path / "g.npy",
            **options,
        )
        np.testing.assert_array_equal(result.values[keep], per_position)
        grad = np.load(tmp_path / "g.npy")
        np.testing.assert_array_equal(
            grad[keep], getattr(kdcore, f"{name}_grad")(*kept, reduction="none", **options)
        )
        assert not grad[~keep].any()
        mean = stream_loss(name, tmp_path / "z.npy", teacher, arrays["labels"], chunk_rows=5, **options)
        assert mean.value == exact_mean(per_position, keep.sum())

    def test_the_teacher_must_be_a_pair_of_matching_shapes(self, arrays):
        values, indices = kdcore.topk_teacher(arrays["teacher"], 4)
        with pytest.raises(
            TypeError, match=r"takes its teacher as a pair \(teacher_values, teacher_indices\)"
        ):
            stream_loss("topk_kl_divergence", arrays["student"], values, convention="renormalized")
        with pytest.raises(ValueError, match="teacher_values and teacher_indices must have one shape"):
            stream_loss(
                "topk_kl_divergence", arrays["student"], (values, indices[..., :3]), convention="renormalized"
            )
        with pytest.raises(TypeError, match="teacher_indices must be integer"):
            stream_loss("topk_kl_divergence", arrays["student"], (values, values), convention="renormalized")
        with pytest.raises(TypeError, match="convention"):
            stream_loss("topk_kl_divergence", arrays["student"], (values, indices))


class TestStorage:
    def test_npz_stored_deflated_safetensors_and_memmap_give_the_same_numbers(self, tmp_path, arrays):
        safetensors_numpy = pytest.importorskip(
            "safetensors.numpy", reason="the safetensors package (in kdcore[test]) writes the reference files"
        )
        z, v = arrays["student"].astype(np.float32), arrays["teacher"].astype(np.float32)
        np.save(tmp_path / "z.npy", z)
        np.save(tmp_path / "v.npy", v)
        np.savez(tmp_path / "stored.npz", z=z, v=v)
        np.savez_compressed(tmp_path / "deflated.npz", z=z, v=v)
        safetensors_numpy.save_file({"z": z, "v": v}, tmp_path / "x.safetensors")
        options = {"T": 2.0, "labels": arrays["labels"], "chunk_rows": 5}
        reference = stream_loss("kl_divergence", tmp_path / "z.npy", tmp_path / "v.npy", **options)
        for name in ("stored.npz", "deflated.npz", "x.safetensors"):
            student, teacher = open_array(tmp_path / name, key="z"), open_array(tmp_path / name, key="v")
            assert stream_loss("kl_divergence", student, teacher, **options).value == reference.value
        memmaps = [np.load(tmp_path / f"{n}.npy", mmap_mode="r") for n in ("z", "v")]
        assert stream_loss("kl_divergence", *memmaps, **options).value == reference.value
        in_memory_arrays = stream_loss("kl_divergence", z, v, **options)
        assert in_memory_arrays.value == reference.value

    def test_float64_option_computes_float32_logits_in_float64(self, tmp_path, arrays):
        paths = save(tmp_path, arrays, np.float32)
        result = stream_loss(
            "reverse_kl_divergence", paths["student"], paths["teacher"], dtype="float64", reduction="none"
        )
        z, v = (arrays[role].astype(np.float32).astype(np.float64) for role in ("student", "teacher"))
        assert result.dtype == np.float64
        np.testing.assert_array_equal(result.values, kdcore.reverse_kl_divergence(z, v, reduction="none"))


class TestTokenLevel:
    def test_mask_and_labels_combine(self, tmp_path, arrays, rng):
        paths = save(tmp_path, arrays, np.float64)
        mask = rng.random(SHAPE[:-1]) < 0.7
        keep = mask & (arrays["labels"] != -100)
        result = stream_loss(
            "kl_divergence", paths["student"], paths["teacher"], arrays["labels"], mask=mask, chunk_rows=2
        )
        per_position = kdcore.kl_divergence(
            arrays["student"][keep], arrays["teacher"][keep], reduction="none"
        )
        assert result.kept == keep.sum() and result.positions == 21
        assert result.value == exact_mean(per_position, keep.sum())

    def test_a_label_out_of_range_at_a_dropped_position_is_no_error(self, tmp_path, arrays):
        paths = save(tmp_path, arrays, np.float64)
        mask = np.ones(SHAPE[:-1], bool)
        labels = arrays["labels"].copy()
        labels[1, 1], mask[1, 1] = 999, False
        stream_loss("cross_entropy", paths["student"], None, labels, mask=mask)
        with pytest.raises(
            ValueError,
            match=r"labels must be in \[0, 11\) \(or ignore_index=-100: dropped\), got a label 999",
        ):
            stream_loss("cross_entropy", paths["student"], None, labels)

    def test_dropped_positions_are_never_computed(self, tmp_path, arrays):
        student = arrays["student"].copy()
        student[arrays["labels"] == -100] = np.nan  # would make the loss NaN (and warn) if computed
        np.save(tmp_path / "z.npy", student)
        np.save(tmp_path / "v.npy", arrays["teacher"])
        result = stream_loss(
            "jensen_shannon_divergence",
            tmp_path / "z.npy",
            tmp_path / "v.npy",
            arrays["labels"],
            grad_out=tmp_path / "g.npy",
        )
        assert math.isfinite(result.value) and np.isfinite(np.load(tmp_path / "g.npy")).all()

    def test_nothing_kept_gives_zero_and_a_zero_gradient(self, tmp_path, arrays):
        paths = save(tmp_path, arrays, np.float64)
        labels = np.full(SHAPE[:-1], -100)
        result = stream_loss(
            "decoupled_kd_loss",
            paths["student"],
            paths["teacher"],
            labels,
            grad_out=tmp_path / "g.npy",
            chunk_rows=3,
        )
        assert (result.value, result.kept) == (0.0, 0)
        assert not np.load(tmp_path / "g.npy").any()

    def test_a_nan_stays_in_its_own_position(self, tmp_path, arrays):
        student = arrays["student"].copy()
        student[1, 2, 0] = np.nan
        np.save(tmp_path / "z.npy", student)
        np.save(tmp_path / "v.npy", arrays["teacher"])
        result = stream_loss("kl_divergence", tmp_path / "z.npy", tmp_path / "v.npy", reduction="none")
        assert np.isnan(result.values[1, 2]) and np.isfinite(np.delete(result.values.ravel(), 9)).all()
        assert math.isnan(stream_loss("kl_divergence", tmp_path / "z.npy", tmp_path / "v.npy").value)


class TestExactSum:
    def test_cancellation(self):
        assert exact_sum([1e16, 1.0, -1e16]) == [1.0]
        assert math.fsum(exact_sum([0.1] * 10)) == math.fsum([0.1] * 10)

    def test_carried_across_chunks_equals_the_exact_sum(self, rng):
        values = rng.normal(size=1000) * 10.0 ** rng.integers(-200, 200, size=1000)
        parts: list[float] = []
        for chunk in np.array_split(values, 37):
            parts = exact_sum(chunk.tolist(), parts)
        exact = sum(map(Fraction, values.tolist()), Fraction(0))
        assert sum(map(Fraction, parts), Fraction(0)) == exact
        assert parts[0] == float(exact)

    def test_a_total_beyond_float64_on_the_way(self):
        # 1e308 + 1e308 overflows before -1e308 brings the sum back: math.fsum gives up, exact rationals
        # take over, and the total is still exact.
        from kdcore.streaming.totals import _Total

        with pytest.raises(OverflowError):
            exact_sum([1e308, 1e308, -1e308])
        total = _Total()
        total.add(np.array([1e308, 1e308]))
        total.add(np.array([-1e308, 3.0]))
        assert total.value() == 1e308 + 3.0 and total.value(2) == 0.5e308
        total.add(np.array([1e308]))
        assert total.value() == math.inf  # 2e308 is beyond float64

    def test_infinities_and_nans_follow_ieee(self):
        from kdcore.streaming.totals import _Total

        total = _Total()
        total.add(np.array([1.0, np.inf]))
        assert total.value() == math.inf
        total.add(np.array([-np.inf]))
        assert math.isnan(total.value())


class TestChecksBeforeWork:
    @pytest.mark.parametrize(
        ("call", "error", "message"),
        [
            (dict(loss="kl"), ValueError, "loss must be one of kl_divergence"),
            (dict(T=0.0), ValueError, "T must be a positive finite number"),
            (dict(reduction="batchmean"), ValueError, "reduction must be one of"),
            (dict(chunk_rows=0), ValueError, "chunk_rows must be an integer ≥ 1"),
            (dict(dtype="float16"), ValueError, "dtype must be one of 'float32', 'float64'"),
            (dict(mask=np.ones(3, bool)), ValueError, r"mask must have the logits' leading shape \(3, 7\)"),
            (dict(mask=np.ones((3, 7))), TypeError, "mask must be a boolean array"),
            (dict(labels=np.zeros((3, 7))), TypeError, "labels must be integer class indices"),
            (dict(teacher=np.zeros((3, 7, 12))), ValueError, "must have the same shape"),
            (dict(teacher=None), TypeError, "kl_divergence needs teacher_logits"),
            (dict(skew=0.1), TypeError, "skew"),
        ],
    )
    def test_bad_call(self, tmp_path, arrays, call, error, message):
        paths = save(tmp_path, arrays, np.float64)
        arguments = {
            "loss": "kl_divergence",
            "student": paths["student"],
            "teacher": paths["teacher"],
            **call,
        }
        calls = []
        with pytest.raises(error, match=message):
            stream_loss(
                arguments.pop("loss"),
                arguments.pop("student"),
                arguments.pop("teacher"),
                progress=lambda *a: calls.append(a),
                **arguments,
            )
        assert calls == []  # nothing was computed

    def test_labelled_loss_without_labels_and_cross_entropy_with_a_teacher(self, arrays):
        with pytest.raises(TypeError, match="needs labels"):
            stream_loss("decoupled_kd_loss", arrays["student"], arrays["teacher"])
        with pytest.raises(TypeError, match="cross_entropy takes no teacher_logits"):
            stream_loss("cross_entropy", arrays["student"], arrays["teacher"], arrays["labels"])

    def test_the_gradient_never_overwrites_an_input(self, tmp_path, arrays):
        paths = save(tmp_path, arrays, np.float64)
        with pytest.raises(ValueError, match="is one of the inputs"):
            stream_loss("kl_divergence", paths["student"], paths["teacher"], grad_out=paths["teacher"])
        with pytest.raises(ValueError, match="a file in an existing directory"):
            stream_loss(
                "kl_divergence", paths["student"], paths["teacher"], grad_out=tmp_path / "no" / "g.npy"
            )

    def test_the_function_itself_may_name_the_loss(self, arrays):
        keep = arrays["labels"] != -100
        result = stream_loss(
            kdcore.skew_kl_divergence, arrays["student"][keep], arrays["teacher"][keep], skew=0.3
        )
        per_position = kdcore.skew_kl_divergence(
            arrays["student"][keep], arrays["teacher"][keep], skew=0.3, reduction="none"
        )
        assert result.value == exact_mean(per_position, keep.sum())
        with pytest.raises(ValueError, match="loss must be one of"):
            stream_loss(np.sum, arrays["student"], arrays["teacher"])


class TestInterrupted:
    def test_ctrl_c_mid_way_leaves_no_gradient_file(self, tmp_path, arrays):
        paths = save(tmp_path, arrays, np.float64)
        np.save(tmp_path / "g.npy", np.arange(2.0))  # an older gradient: kept as it was

        def interrupt(done, total):
            if done > 5:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            stream_loss(
                "kl_divergence",
                paths["student"],
                paths["teacher"],
                grad_out=tmp_path / "g.npy",
                chunk_rows=3,
                progress=interrupt,
            )
        np.testing.assert_array_equal(np.load(tmp_path / "g.npy"), np.arange(2.0))
        assert sorted(os.listdir(tmp_path)) == ["g.npy", "student.npy", "teacher.npy"]

    def test_prepare_then_run_and_close(self, tmp_path, arrays):
        paths = save(tmp_path, arrays, np.float64)
        with prepare("kl_divergence", paths["student"], paths["teacher"], T=3.0) as plan:
            assert (plan.positions, plan.kept, plan.shape) == (21, 21, SHAPE)
            progress = []
            result = plan.run(lambda done, total: progress.append((done, total)))
        assert progress[-1] == (21, 21) and result.chunks == len(progress)


class TestMemory:
    @staticmethod
    def peaks(tmp_path, labels, chunk_rows, loss="kl_divergence"):
        """tracemalloc's peak of the value, then of value and gradient, of the files in tmp_path."""
        peaks = []
        teacher, parameters = (None, {}) if loss == "cross_entropy" else (tmp_path / "v.npy", {"T": 2.0})
        for grad_out in (None, tmp_path / "g.npy"):
            tracemalloc.start()
            try:
                stream_loss(
                    loss,
                    tmp_path / "z.npy",
                    teacher,
                    labels,
                    chunk_rows=chunk_rows,
                    grad_out=grad_out,
                    **parameters,
                )
                peaks.append(tracemalloc.get_traced_memory()[1])
            finally:
                tracemalloc.stop()
        return peaks

    def test_no_copy_of_the_input_is_made(self, tmp_path, rng):
        # 256 rows × 16384 classes of float64 (32 MiB per input) in chunks of 16 rows (2 MiB): what NumPy
        # allocates stays below one chunk for the value and two with the gradient (whose 32 MiB go to the
        # file, not to memory) — also when the last position of every 16-token sequence is padding, which
        # is skipped without copying the kept rows. Padding every other position (scattered) does copy
        # them: a chunk's worth more, which is what the views save.
        shape, chunk_rows = (256, 16384), 16
        np.save(tmp_path / "z.npy", rng.normal(size=shape))
        np.save(tmp_path / "v.npy", rng.normal(size=shape))
        chunk_bytes = chunk_rows * shape[1] * 8
        at_ends, scattered = np.zeros((16, 16), dtype=np.int64), np.zeros(256, dtype=np.int64)
        at_ends[:, -1] = scattered[1::2] = -100
        for labels in (np.zeros(256, dtype=np.int64), at_ends.reshape(-1)):
            value, with_grad = self.peaks(tmp_path, labels, chunk_rows)
            assert value < chunk_bytes and with_grad < 2 * chunk_bytes, (value, with_grad)
        assert self.peaks(tmp_path, scattered, chunk_rows)[0] > chunk_bytes

    def test_cross_entropy_cuts_its_chunks_itself(self, tmp_path, rng):
        # cross_entropy used to hold three arrays the size of its input (streaming called it on a third of
        # a chunk to compensate); it now cuts its input into row chunks like the soft losses.
        shape, chunk_rows = (256, 16384), 16
        np.save(tmp_path / "z.npy", rng.normal(size=shape))
        labels = rng.integers(0, shape[1], size=256)
        chunk_bytes = chunk_rows * shape[1] * 8
        value, with_grad = self.peaks(tmp_path, labels, chunk_rows, loss="cross_entropy")
        assert value < chunk_bytes and with_grad < 2 * chunk_bytes, (value, with_grad)

    def test_top_k_losses_are_cut_into_pieces(self, tmp_path, rng):
        # The top-k kernels hold arrays the size of their whole input ("tail": several), so streaming calls
        # them on an eighth of a chunk at a time: below one chunk (the student's) with the gradient too.
        shape, chunk_rows, k = (256, 16384), 16, 32
        student = rng.normal(size=shape)
        np.save(tmp_path / "z.npy", student)
        values, indices = kdcore.topk_teacher(rng.normal(size=shape) * 3, k, values="log_probs")
        np.save(tmp_path / "values.npy", values)
        np.save(tmp_path / "indices.npy", indices)
        chunk_bytes = chunk_rows * shape[1] * 8
        teacher = (tmp_path / "values.npy", tmp_path / "indices.npy")
        for grad_out in (None, tmp_path / "g.npy"):
            tracemalloc.start()
            try:
                result = stream_loss(
                    "topk_kl_divergence",
                    tmp_path / "z.npy",
                    teacher,
                    convention="tail",
                    values="log_probs",
                    chunk_rows=chunk_rows,
                    grad_out=grad_out,
                )
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            assert peak < chunk_bytes, peak / chunk_bytes
        expected = kdcore.topk_kl_divergence(student, values, indices, convention="tail", values="log_probs")
        assert result.value == pytest.approx(float(expected), rel=1e-14)
