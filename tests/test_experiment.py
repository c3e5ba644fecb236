"""kdcore.experiment (the demo's engine) and the ``kdcore`` command line."""

import json
import os
import subprocess
import sys
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from kdcore import checkpoint, sweep_file
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

    def test_results_json_is_replaced_atomically(self, tiny_run, monkeypatch):
        # Interrupted between writing the new file and renaming it into place, a resumed run leaves the
        # previous results.json whole and no temporary file behind.
        out, _ = tiny_run
        before = (out / "results.json").read_bytes()

        def interrupted(source, destination):
            raise KeyboardInterrupt

        monkeypatch.setattr(sweep_file, "os", SimpleNamespace(fsync=os.fsync, replace=interrupted))
        with pytest.raises(KeyboardInterrupt):
            run(TINY, out, progress=False)
        assert (out / "results.json").read_bytes() == before
        assert not [path.name for path in out.iterdir() if path.name.endswith(".tmp")]

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


class TestArgumentValidation:
    """Every command checks its arguments before any work: one line on stderr naming the option and value,
    exit status 2, no traceback, nothing written."""

    @staticmethod
    def bad_files(tmp_path):
        corrupt = tmp_path / "corrupt.npz"
        corrupt.write_bytes(b"PK\x03\x04 not really a zip")
        not_json = tmp_path / "sweep.json"
        not_json.write_text("{not json")
        a_file = tmp_path / "a_file"
        a_file.write_text("x")
        return corrupt, not_json, a_file

    @pytest.mark.parametrize(
        ("argv", "needles"),
        [
            (["distill", "--T", "0"], ["--T", "0.0"]),
            (["distill", "--T", "-2"], ["--T", "-2.0"]),
            (["distill", "--T", "nan"], ["--T", "nan"]),
            (["distill", "--T", "inf"], ["--T", "inf"]),
            (["distill", "--alpha", "1.5"], ["--alpha", "1.5"]),
            (["distill", "--alpha", "-0.1"], ["--alpha", "-0.1"]),
            (["distill", "--dataset", "imagenet"], ["--dataset", "'imagenet'"]),
            (["distill", "--teacher-dropout", "1"], ["--teacher-dropout", "1.0"]),
            (["distill", "--teacher-input-dropout", "-0.2"], ["--teacher-input-dropout", "-0.2"]),
            (["distill", "--teacher-max-norm", "0"], ["--teacher-max-norm", "0.0"]),
            (["distill", "--teacher-epochs", "0"], ["--teacher-epochs", "0"]),
            (["distill", "--student-hidden", "8", "0"], ["--student-hidden", "0"]),
            (["distill", "--batch-size", "0"], ["--batch-size", "0"]),
            (["distill", "--student-lr", "0"], ["--student-lr", "0.0"]),
            (["distill", "--seeds", "-1"], ["--seeds", "-1"]),
            (["distill", "--seeds", "1", "1"], ["--seeds", "[1, 1]"]),
            (["distill", "--omit-class", "10"], ["--omit-class", "10"]),
            (["distill", "--omit-T", "0"], ["--omit-T", "0.0"]),
            (["distill", "--T", "four"], ["--T", "'four'"]),  # argparse's own error, on one line
            (["distill", "--dataset", "mnist", "--data-dir", "{tmp}/nowhere"], ["--data-dir", "nowhere"]),
            (["distill", "--dataset", "mnist", "--data-dir", "{tmp}"], ["mnist", "not found"]),
            (["distill", "--dataset", "digits", "--out", "{a_file}"], ["--out", "a_file"]),
            (["demo", "--seeds", "0"], ["--seeds", "0"]),
            (["demo", "--out", "{a_file}"], ["--out", "a_file"]),
            (["data", "download", "mnist", "--dest", "{a_file}"], ["--dest", "a_file"]),
            (["data", "download", "imagenet"], ["imagenet"]),
            (
                ["figures", "--out", "{tmp}/f", "--checkpoint", "{tmp}/missing.npz"],
                ["--checkpoint", "missing.npz"],
            ),
            (["figures", "--out", "{tmp}/f", "--checkpoint", "{corrupt}"], ["--checkpoint", "corrupt.npz"]),
            (["figures", "--out", "{tmp}/f", "--sweep", "{not_json}"], ["--sweep", "sweep.json"]),
            (["figures", "--out", "{tmp}/f", "--format", "gif"], ["--format", "'gif'"]),
            (["sweep", "--out", "{tmp}/s.json", "--temperatures", "0"], ["--temperatures", "0.0"]),
            (["sweep", "--out", "{tmp}/s.json", "--alphas", "2"], ["--alphas", "2.0"]),
            (["sweep", "--out", "{tmp}/s.json", "--dataset", "cifar"], ["--dataset", "'cifar'"]),
            (["sweep", "--out", "{tmp}/s.json", "--seeds", "-3"], ["--seeds", "-3"]),
            (["sweep", "--out", "{tmp}/no/such/dir/s.json"], ["--out", "does not exist"]),
            (["vectors", "--out", "{tmp}"], ["--out", "directory"]),
            (["vectors", "--out", "{tmp}/no/such/dir/v.json"], ["--out", "does not exist"]),
        ],
    )
    def test_bad_argument(self, tmp_path, capsys, argv, needles):
        corrupt, not_json, a_file = self.bad_files(tmp_path)
        names = {"tmp": tmp_path, "corrupt": corrupt, "not_json": not_json, "a_file": a_file}
        argv = [arg.format(**names) for arg in argv]
        if argv[0] in ("distill", "demo") and "--out" not in argv:
            argv += ["--out", str(tmp_path / "out")]
        before = sorted(tmp_path.rglob("*"))
        try:
            status = main(argv)
        except SystemExit as exit_:  # argparse's own errors (unparsable number, unknown choice)
            status = exit_.code
        captured = capsys.readouterr()
        assert status == 2
        assert captured.out == ""
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1, captured.err
        assert "Traceback" not in captured.err
        for needle in needles:
            assert needle in lines[0], (needle, lines[0])
        assert sorted(tmp_path.rglob("*")) == before  # no work done, nothing written

    def test_corrupt_checkpoint_to_resume_from_is_refused_before_training(self, tmp_path, capsys):
        (tmp_path / "checkpoints").mkdir()
        (tmp_path / "checkpoints" / "teacher.npz").write_bytes(b"truncated")
        status = main(["distill", "--dataset", "digits", "--out", str(tmp_path), "--quiet"])
        err = capsys.readouterr().err
        assert status == 2 and len(err.strip().splitlines()) == 1 and "teacher.npz" in err
        assert sorted(p.name for p in tmp_path.rglob("*")) == ["checkpoints", "teacher.npz"]

    def test_no_traceback_from_a_real_process(self, tmp_path):
        completed = subprocess.run(
            [sys.executable, "-m", "kdcore", "distill", "--T", "-1", "--out", str(tmp_path / "o")],
            capture_output=True,
            text=True,
        )
        assert completed.returncode == 2 and completed.stdout == ""
        assert completed.stderr == "kdcore distill: --T must be a positive finite number, got --T -1.0\n"
