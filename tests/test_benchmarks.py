"""Smoke tests of benchmarks/: every script runs its smallest configuration and writes what it promises.

Nothing here times anything (timings are the benchmarks' business, and a loaded CI machine would make any
time limit flaky). Each script runs in a subprocess, as `make bench` runs it, on tiny inputs: the loss
benchmark on one 8×16 shape, the MLP benchmark on 256 random samples, the experiments on a few hundred
made-up 28×28 images written as IDX files into a temporary directory (so they need no data set).
PyTorch and JAX are optional: without them the scripts must still run and say what they skipped.
"""

import gzip
import importlib.util
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
EXPERIMENTS = BENCHMARKS / "experiments"
HAVE_TORCH = importlib.util.find_spec("torch") is not None
HAVE_JAX = importlib.util.find_spec("jax") is not None


def run_script(script: Path, *args: str, timeout: float = 300) -> str:
    """Run a script with this interpreter; fail with its output if it fails. Returns stdout."""
    env = dict(os.environ)
    # One BLAS/OpenMP thread: the smoke runs are tiny, and on a busy 2-core machine spinning thread pools
    # make them many times slower. (OPENBLAS_CORETYPE and friends are left exactly as they are.)
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    # RuntimeWarnings (NumPy's overflow / invalid-value warnings) are errors, as in the test suite.
    completed = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", str(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO,
    )
    assert completed.returncode == 0, (
        f"{script.name} {' '.join(args)} failed:\n{completed.stdout}\n{completed.stderr}"
    )
    return completed.stdout


class TestBenchLosses:
    def test_runs_without_frameworks(self, tmp_path):
        output = tmp_path / "losses.json"
        stdout = run_script(
            BENCHMARKS / "bench_losses.py", "--smoke", "--no-torch", "--no-jax", "--output", str(output)
        )
        record = json.loads(output.read_text())
        assert record["implementations"] == [
            "kdcore-and-grad",
            "kdcore-1t",
            "kdcore",
            "numpy",
            "kdcore-fused",
            "exp-floor",
        ]
        assert [case["dtype"] for case in record["cases"]] == ["float32", "float64"]
        for case in record["cases"]:
            assert len(case["seconds"]["kdcore"]) == 3
            # The textbook version agrees with kdcore (well-conditioned random logits).
            assert case["relative_errors"]["numpy"]["grad"] < (1e-5 if case["dtype"] == "float32" else 1e-12)
            assert case["memory"]["kdcore"]["tracemalloc_bytes"] > 0
        assert "| 8 × 16 | float32 |" in stdout

    def test_runs_with_installed_frameworks(self, tmp_path):
        """With PyTorch and JAX when installed; each one missing is reported as skipped, not an error."""
        output = tmp_path / "losses.json"
        stdout = run_script(
            BENCHMARKS / "bench_losses.py", "--smoke", "--dtypes", "float32", "--output", str(output)
        )
        record = json.loads(output.read_text())
        names = record["implementations"]
        assert ("torch" in names) == HAVE_TORCH
        assert ("jax" in names) == HAVE_JAX
        if not HAVE_JAX:
            assert "JAX (not installed)" in record["skipped"]
            assert "Skipped: " in stdout
        for name, errors in record["cases"][0]["relative_errors"].items():
            assert max(errors.values()) < 1e-4, name

    def test_help(self):
        assert "--quick" in run_script(BENCHMARKS / "bench_losses.py", "--help")


class TestBenchMlp:
    def test_runs(self, tmp_path):
        output = tmp_path / "mlp.json"
        run_script(BENCHMARKS / "bench_mlp.py", "--smoke", "--output", str(output))
        record = json.loads(output.read_text())
        assert [(case["sizes"], case["objective"]) for case in record["cases"]] == [
            ([784, 1200, 1200, 10], "ce"),
            ([784, 1200, 1200, 10], "kd"),
            ([784, 800, 800, 10], "ce"),
            ([784, 800, 800, 10], "kd"),
        ]
        for case in record["cases"]:
            assert ("torch" in case["median_seconds"]) == HAVE_TORCH
            if HAVE_TORCH:
                # Same initial weights, same batches, same optimiser: the same epoch, up to float32 rounding.
                assert case["train_loss"]["kdcore"] == pytest.approx(case["train_loss"]["torch"], rel=1e-3)

    def test_runs_without_torch(self, tmp_path):
        output = tmp_path / "mlp.json"
        run_script(
            BENCHMARKS / "bench_mlp.py",
            "--smoke",
            "--no-torch",
            "--objectives",
            "ce",
            "--output",
            str(output),
        )
        record = json.loads(output.read_text())
        assert all(set(case["median_seconds"]) == {"kdcore"} for case in record["cases"])


class TestBenchChunks:
    def test_runs(self, tmp_path):
        output = tmp_path / "chunks.json"
        args = ["--shapes", "8x4096", "--dtypes", "float32", "--sizes", "0,12", "--reps", "1"]
        run_script(BENCHMARKS / "bench_chunks.py", *args, "--output", str(output))
        if output.exists():  # a kdcore without row chunks has nothing to tune and writes nothing
            rows = json.loads(output.read_text())["rows"]
            assert [row["chunk_elements"] for row in rows] == [0, 4096]


class TestProfileFast:
    def test_pass_profile_lists_every_pass_and_the_whole_kernel(self):
        stdout = run_script(BENCHMARKS / "profile_fast.py", "--shape", "4x300", "--reps", "2")
        lines = [line for line in stdout.splitlines() if line.startswith("| ")]
        names = [line.split(" | ")[0][2:] for line in lines[2:]]
        assert "exp (teacher)" in names and "the whole kernel (passes and certificate)" in names
        assert names[-1].startswith("(sum of the ")
        assert all(len(line.split(" | ")) == 3 for line in lines)  # no stray "|" inside a step's name

    def test_threads_table_has_a_row_per_shape_dtype_and_chunk(self):
        args = ["--threads", "16x300,2x5000", "--chunks", "12,13", "--reps", "20"]
        stdout = run_script(BENCHMARKS / "profile_fast.py", *args)
        rows = [line for line in stdout.splitlines() if line.startswith("| ") and " ms |" in line]
        assert len(rows) == 2 * 2 * 2
        # 16 × 300 at 2^12 elements: 13 rows per chunk, 2 chunks; a 5000-class row is its own chunk
        assert "| 16 × 300 | float32 | 2^12 (3900) | 2 |" in stdout
        assert "| 2 × 5000 | float64 | 2^13 (5000) | 2 |" in stdout


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file of unsigned bytes (type code 0x08), gzipped: the format of the MNIST distribution."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


@pytest.fixture
def tiny_idx_dataset(tmp_path):
    """A fake Fashion-MNIST: 600 training and 200 test images, each class a bright bar at its own row."""
    rng = np.random.default_rng(0)
    directory = tmp_path / "fashion-mnist"
    directory.mkdir()
    for split, n in (("train", 600), ("t10k", 200)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 60, size=(n, 28, 28))
        for k in range(10):
            images[labels == k, 4 + 2 * k, 6:22] = 255
        write_idx(directory / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(directory / f"{split}-labels-idx1-ubyte.gz", labels)
    return directory


class TestExperiments:
    def test_teacher_students_omitted_class_report(self, tmp_path, tiny_idx_dataset):
        results = tmp_path / "results"
        common = ["--data-dir", str(tiny_idx_dataset), "--results", str(results)]
        run_script(EXPERIMENTS / "teacher.py", *common, "--hidden", "32,32", "--epochs", "2", "--keep", "1")
        assert {p.name for p in results.glob("*.npz")} == {
            "teacher.npz",
            "teacher_epoch1.npz",
            "teacher_last.npz",
        }
        student_args = [
            *common,
            "--hidden",
            "8,8",
            "--T",
            "2,4",
            "--alpha",
            "0.5",
            "--seeds",
            "0",
            "--epochs",
            "1",
        ]
        run_script(EXPERIMENTS / "students.py", *student_args)
        records = [json.loads(line) for line in (results / "students.jsonl").read_text().splitlines()]
        assert [(r["distilled"], r["T"]) for r in records] == [(False, None), (True, 2.0), (True, 4.0)]
        run_script(EXPERIMENTS / "students.py", *student_args)  # a re-run skips what is done
        assert len((results / "students.jsonl").read_text().splitlines()) == 3
        run_script(EXPERIMENTS / "omitted_class.py", *common, "--hidden", "8,8", "--T", "4", "--epochs", "1")
        omitted = [json.loads(line) for line in (results / "omitted_class.jsonl").read_text().splitlines()]
        assert [r["distilled"] for r in omitted] == [False, True]
        assert all(r["class_accuracy"] == 0.0 for r in omitted if not r["distilled"])
        # The paper's other transfer set: only 7s and 8s; their biases are lowered, not raised.
        run_script(
            EXPERIMENTS / "omitted_class.py",
            *common,
            "--only",
            "7,8",
            "--hidden",
            "8,8",
            "--T",
            "4",
            "--epochs",
            "1",
        )
        only = [json.loads(line) for line in (results / "only_classes.jsonl").read_text().splitlines()]
        assert [(r["distilled"], r["transfer_classes"], r["bias_sign"]) for r in only] == [
            (False, [7, 8], -1.0),
            (True, [7, 8], -1.0),
        ]
        for record in only:
            # Lowering the logits of 7 and 8 can only move predictions away from them: the fraction predicted
            # as 7 or 8 never grows with the bias.
            fraction = np.array(record["test_curves"]["predicted_fraction"])
            assert np.all(np.diff(fraction) <= 0) and len(fraction) == len(record["biases"])
        if importlib.util.find_spec("matplotlib") is not None:
            figures = tmp_path / "figures"
            stdout = run_script(
                EXPERIMENTS / "report.py",
                "--results",
                str(results),
                "--figures",
                str(figures),
                "--min-train",
                "0",
            )
            assert "## Omitted class" in stdout
            assert (figures / "omitted_class.png").stat().st_size > 0

    @pytest.mark.parametrize("script", ["teacher.py", "students.py", "omitted_class.py", "report.py"])
    def test_help(self, script):
        assert "usage:" in run_script(EXPERIMENTS / script, "--help")


class TestJitter:
    """The ±2-pixel translation the teacher is trained with (benchmarks/experiments/protocol.py)."""

    @pytest.fixture
    def jitter(self, monkeypatch):
        monkeypatch.syspath_prepend(str(EXPERIMENTS))
        import protocol

        return protocol.jitter

    def test_moves_a_pixel_by_the_drawn_offset(self, jitter):
        image = np.zeros((1, 784), dtype=np.float32)
        image[0, 14 * 28 + 14] = 1.0

        class Fixed:  # a stand-in generator drawing (dy, dx) = (1, -2)
            def integers(self, low, high, size):
                return np.array([[1, -2]])

        moved = jitter(image, 2, Fixed()).reshape(28, 28)
        assert np.argwhere(moved).tolist() == [[15, 12]]

    def test_offsets_cover_the_square_and_keep_inner_pixels(self, jitter, rng):
        images = rng.random((2000, 784)).astype(np.float32)
        images.reshape(-1, 28, 28)[:, :2] = images.reshape(-1, 28, 28)[:, -2:] = 0  # empty border rows
        images.reshape(-1, 28, 28)[:, :, :2] = images.reshape(-1, 28, 28)[:, :, -2:] = 0
        moved = jitter(images, 2, np.random.default_rng(1))
        assert moved.dtype == np.float32 and moved.shape == images.shape
        # With an empty 2-pixel border nothing falls off: every image keeps its pixels, only moved.
        np.testing.assert_allclose(moved.sum(axis=1), images.sum(axis=1), rtol=1e-5)
        assert not np.array_equal(moved, images)

    def test_zero_shift_is_a_copy(self, jitter, rng):
        images = rng.random((3, 784)).astype(np.float32)
        moved = jitter(images, 0, rng)
        assert np.array_equal(moved, images) and moved is not images


class TestQuietRunSummary:
    """docs/performance.md's quiet-machine section is generated from the committed JSON
    (benchmarks/performance_summary.py): the page must be what the script writes, and the script's claims
    must follow the data."""

    @pytest.fixture
    def summary(self, monkeypatch):
        monkeypatch.syspath_prepend(str(BENCHMARKS))
        import performance_summary

        return performance_summary

    @pytest.fixture
    def run(self):
        return json.loads((REPO / "benchmarks" / "results" / "bench_losses-quick-quiet.json").read_text())

    def test_page_is_generated_from_the_json(self, summary, run):
        page = (REPO / "docs" / "performance.md").read_text()
        assert summary.render(page, run) == page, "run benchmarks/performance_summary.py"

    def test_check_mode_fails_on_a_stale_page(self, summary, tmp_path):
        page = tmp_path / "performance.md"
        text = (REPO / "docs" / "performance.md").read_text()
        stale = text.replace("<!-- kdcore:quiet-summary -->\n", "<!-- kdcore:quiet-summary -->\nstale\n", 1)
        assert stale != text
        page.write_text(stale)
        assert summary.main(["--check", "--page", str(page)]) == 1
        assert summary.main(["--page", str(page)]) == 0  # rewritten …
        assert page.read_text() == text  # … back to what the JSON says
        assert summary.main(["--check", "--page", str(page)]) == 0

    def test_claims_follow_the_data(self, summary, run):
        large = summary._large(run)
        to_torch = [c["median_seconds"]["kdcore-and-grad"] / c["median_seconds"]["torch"] for c in large]
        text = summary.summary(run)
        assert f"**{min(to_torch):.2f}–{max(to_torch):.2f}× PyTorch's 2-thread autograd**" in text
        hits = sum(r <= 0.8 for r in to_torch)
        expected = {0: "missed in every case", len(to_torch): "met in every case"}.get(
            hits, f"met in {hits} of {len(to_torch)}"
        )
        assert f"target is {expected}" in text
        # a run where kdcore beats every target must say so
        fast = json.loads(json.dumps(run))
        for case in fast["cases"]:
            seconds = case["median_seconds"]
            seconds["kdcore-and-grad"] = seconds["kdcore-1t"] = 0.5 * min(
                seconds["torch"], seconds["torch-1t"]
            )
            seconds["exp-floor"] = seconds["kdcore-and-grad"] / 3
            case["memory"]["kdcore-and-grad"]["tracemalloc_ratio"] = 1.5
        text = summary.summary(fast)
        assert text.count("met in every case") == 4 and "missed" not in text
        assert "never slower than one thread" in text

    def test_unknown_or_missing_blocks_are_errors(self, summary, run):
        with pytest.raises(ValueError, match="unknown"):
            summary.render("<!-- kdcore:quiet-nonsense -->\n<!-- /kdcore -->", run)
        with pytest.raises(ValueError, match="no block"):
            summary.render("no markers at all", run)
