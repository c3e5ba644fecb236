"""benchmarks/bench_vocab.py: its smallest run works and records what the page quotes.

Nothing is timed here. The smoke run writes a 2 × 16 × 1000 batch into a temporary folder, runs one loss in
fresh processes as the full run does, and must leave no file behind.
"""

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import kdcore

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"


def load_script():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import bench_vocab
    finally:
        sys.path.remove(str(BENCHMARKS))
    return bench_vocab


class TestSmoke:
    def test_runs_and_cleans_up(self, tmp_path):
        folder, output = tmp_path / "inputs", tmp_path / "vocab.json"
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        completed = subprocess.run(
            [
                sys.executable,
                str(BENCHMARKS / "bench_vocab.py"),
                "--smoke",
                "--kinds",
                "kl",
                "--dir",
                str(folder),
                "--output",
                str(output),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            cwd=REPO,
            check=False,
        )
        assert completed.returncode == 0, completed.stderr
        record = json.loads(output.read_text())
        assert record["shape"] == [2, 16, 1000] and [c["mode"] for c in record["cases"]] == [
            "value",
            "value+grad",
        ]
        assert all(
            c["rows"] == 32 and c["loss"] == "kl_divergence" and c["rss_peak_growth"] >= 0
            for c in record["cases"]
        )
        # one chunk (all 32 rows) of student and teacher, and the chunk's float32 gradient rows
        assert [c["chunk_bytes"] for c in record["cases"]] == [32 * 1000 * 8] * 2
        assert [c["output_bytes"] for c in record["cases"]] == [0, 32 * 1000 * 4]
        assert record["cases"][0]["value"] == record["cases"][1]["value"]
        assert os.listdir(folder) == []  # inputs and gradient removed

    def test_inputs_are_what_the_page_says(self, tmp_path):
        # student = 0.7 · teacher + noise, teacher ~ 3·N(0, 1), padding at the end of each sequence; the
        # streamed value is the exact mean of the in-memory per-token values.
        bench = load_script()
        kept = bench.write_inputs(tmp_path, 3, 20, 50, seed=1)["kept"]
        labels = np.load(tmp_path / "labels.npy")
        assert labels.shape == (3, 20) and kept == np.count_nonzero(labels != -100) > 40
        for row in labels:
            padded = row == -100
            assert not padded.any() or padded[np.argmax(padded) :].all()  # padding only at the end
        student, teacher = np.load(tmp_path / "student.npy"), np.load(tmp_path / "teacher.npy")
        assert student.dtype == np.float32 and student.shape == (3, 20, 50)
        assert 2.5 < teacher.std() < 3.5
        result = bench._call("kl", tmp_path, grad=False)
        keep = labels != -100
        per_token = kdcore.kl_divergence(student[keep], teacher[keep], T=2.0, reduction="none")
        assert result.value == float(sum(map(Fraction, per_token.astype(float).tolist())) / keep.sum())
        # the top-k teacher files are the teacher's own top k log-probabilities
        values, indices = np.load(tmp_path / "teacher_values.npy"), np.load(tmp_path / "teacher_indices.npy")
        expected = kdcore.topk_teacher(teacher, min(bench.TOPK, 50), values="log_probs")
        assert np.array_equal(values, expected[0]) and np.array_equal(indices, expected[1])
        result = bench._call("topk-kl", tmp_path, grad=False)
        per_token = kdcore.topk_kl_divergence(
            student[keep],
            values[keep],
            indices[keep],
            convention="tail",
            values="log_probs",
            reduction="none",
        )
        assert result.value == float(sum(map(Fraction, per_token.astype(float).tolist())) / keep.sum())

    def test_every_command_kind_is_benchmarked(self):
        from kdcore._loss_command import KINDS

        assert set(load_script().KINDS) == set(KINDS)


class TestPageSummary:
    """docs/performance.md's final section is generated from the committed run by bench_vocab itself."""

    def test_the_page_is_what_the_script_writes(self):
        bench = load_script()
        record = json.loads((BENCHMARKS / "results" / "bench_vocab.json").read_text())
        page = (REPO / "docs" / "performance.md").read_text()
        assert bench.render(page, record) == page, "run benchmarks/bench_vocab.py --page"
        section = page[page.index("## Vocabulary scale") :]
        assert "\n## " not in section[3:]  # the final section
        assert bench.results_block(record) in section and record["command"] in section
        assert record["shape"] == [8, 512, 128000] and record["dtype"] == "float32"

    def test_the_verdicts_are_the_data(self):
        # the count of cases within issue 9's bound, recomputed here from the raw numbers
        bench = load_script()
        record = json.loads((BENCHMARKS / "results" / "bench_vocab.json").read_text())
        within = sum(
            case["rss_peak_growth"] - case["output_bytes"] <= 2 * case["chunk_bytes"]
            for case in record["cases"]
        )
        text = bench.results_block(record)
        assert f"{within} of {len(record['cases'])} cases within issue 9's bound" in text
        assert text.count("✓") == within and text.count("✗") == len(record["cases"]) - within

    def test_unknown_and_missing_blocks_are_errors(self):
        bench = load_script()
        record = json.loads((BENCHMARKS / "results" / "bench_vocab.json").read_text())
        with pytest.raises(ValueError, match="unknown bench_vocab block"):
            bench.render("<!-- bench_vocab:vocab-nonsense -->\n<!-- /bench_vocab -->", record)
        with pytest.raises(ValueError, match="no bench_vocab block"):
            bench.render("no markers at all", record)

    def test_the_run_is_consistent(self):
        record = json.loads((BENCHMARKS / "results" / "bench_vocab.json").read_text())
        cases = {(case["kind"], case["mode"]): case for case in record["cases"]}
        assert {kind for kind, _ in cases} == set(load_script().KINDS)
        for (kind, mode), case in cases.items():
            if mode == "value":  # asking for the gradient does not change the value, to the last bit
                assert cases[kind, "value+grad"]["value"] == case["value"], kind
        assert cases["kl", "value"]["rows"] == 4096  # the headline case ran on every position
