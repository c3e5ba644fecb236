"""kdcore.experiment (the demo's engine) and the ``kdcore`` command line."""

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from kdcore import checkpoint
from kdcore.cli import main
from kdcore.experiment import DEMO, format_table, run

pytest.importorskip("sklearn")  # the digits data set

TINY = replace(
    DEMO, teacher_hidden=(32,), teacher_epochs=3, student_epochs=2, seeds=(0, 1), omit_student_hidden=(8,)
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("experiment")
    return out, run(TINY, out, progress=False)


class TestRun:
    def test_results_schema(self, tiny_run):
        out, results = tiny_run
        for key in (
            "dataset",
            "T",
            "alpha",
            "seeds",
            "teacher",
            "student_baseline",
            "student_distilled",
            "omitted_class",
        ):
            assert key in results
        assert results["seeds"] == [0, 1]
        for name in ("student_baseline", "student_distilled"):
            accuracies = results[name]["test_accuracy"]
            assert len(accuracies) == 2 and all(0 <= a <= 1 for a in accuracies)
            assert results[name]["mean"] == pytest.approx(np.mean(accuracies))
        assert results["distillation_gain"]["per_seed"] == pytest.approx(
            np.subtract(
                results["student_distilled"]["test_accuracy"], results["student_baseline"]["test_accuracy"]
            )
        )
        assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(results))

    def test_files_written(self, tiny_run):
        out, _ = tiny_run
        assert (out / "learning_curves.png").stat().st_size > 1000
        assert (out / "confusion.png").stat().st_size > 1000
        names = {path.name for path in (out / "checkpoints").iterdir()}
        assert {"teacher.npz", "student_baseline_seed0.npz", "student_distilled_seed1.npz"} <= names

    def test_omitted_class_is_never_predicted_without_a_teacher(self, tiny_run):
        omitted = tiny_run[1]["omitted_class"]
        assert omitted["class"] == 3
        assert omitted["baseline"]["class_accuracy"] == 0.0  # by construction: no 3 in its transfer set
        assert omitted["distilled_bias_corrected"]["bias_offset"] >= 0

    def test_resume_from_checkpoints_gives_the_same_results(self, tiny_run):
        out, first = tiny_run
        again = run(TINY, out, progress=False)
        for name in ("student_baseline", "student_distilled"):
            assert again[name]["test_accuracy"] == first[name]["test_accuracy"]
        assert again["teacher"]["test_accuracy"] == first["teacher"]["test_accuracy"]

    def test_same_seed_same_result_without_checkpoints(self):
        config = replace(TINY, seeds=(0,), omit_class=None)
        first, second = run(config, progress=False), run(config, progress=False)
        assert first["student_distilled"]["test_accuracy"] == second["student_distilled"]["test_accuracy"]

    def test_table(self, tiny_run):
        table = format_table(tiny_run[1])
        assert "student, distilled" in table and "omitted class 3" in table and "T = 4" in table


class TestCommandLine:
    def test_demo_writes_results(self, tmp_path, capsys, monkeypatch):
        import kdcore.experiment

        monkeypatch.setattr(kdcore.experiment, "DEMO", TINY)
        assert main(["demo", "--out", str(tmp_path), "--seeds", "1", "--quiet"]) == 0
        printed = capsys.readouterr().out
        assert "student, labels only" in printed
        results = json.loads((tmp_path / "results.json").read_text())
        assert results["seeds"] == [0]

    def test_distill_exposes_every_knob(self, tmp_path, capsys):
        argv = [
            "distill", "--dataset", "digits", "--teacher-hidden", "16", "--teacher-epochs", "2",
            "--student-hidden", "8", "--student-epochs", "1", "--T", "3", "--alpha", "0.5", "--batch-size", "32",
            "--optimizer", "sgd", "--student-lr", "0.05", "--teacher-lr", "0.05", "--seeds", "0", "1",
            "--omit-class", "2", "--out", str(tmp_path), "--quiet",
            "--teacher-dropout", "0.5", "--teacher-input-dropout", "0.2", "--teacher-max-norm", "2.5",
        ]  # fmt: skip
        assert main(argv) == 0
        results = json.loads((tmp_path / "results.json").read_text())
        assert results["T"] == 3 and results["alpha"] == 0.5 and results["omitted_class"]["class"] == 2
        assert results["config"]["optimizer"] == "sgd" and results["student_baseline"]["sizes"] == [64, 8, 10]
        assert (
            results["config"]["teacher_input_dropout"] == 0.2 and results["config"]["teacher_max_norm"] == 2.5
        )
        saved = checkpoint.load(tmp_path / "checkpoints" / "teacher.npz")
        assert (saved.model.dropout, saved.model.input_dropout, saved.model.max_norm) == (0.5, 0.2, 2.5)
        assert saved.dataset == "digits"
        assert max(np.linalg.norm(W, axis=0).max() for W in saved.model.params[0::2]) <= 2.5 * (1 + 1e-6)

    def test_usage_errors_exit_2(self, capsys):
        with pytest.raises(SystemExit) as error:
            main(["data", "download", "imagenet"])
        assert error.value.code == 2
        with pytest.raises(SystemExit) as error:
            main([])
        assert error.value.code == 2

    def test_python_dash_m(self):
        completed = subprocess.run(
            [sys.executable, "-m", "kdcore", "--help"], capture_output=True, text=True, check=True
        )
        for command in ("demo", "distill", "data", "figures", "sweep", "check", "vectors"):
            assert command in completed.stdout
