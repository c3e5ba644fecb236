"""``kdcore loss`` as a shell user meets it: every kind's value as the library computes it, every bad
argument or file refused on one line with exit status 2 before any work, outputs atomic."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from fractions import Fraction

import numpy as np
import pytest

import kdcore
from kdcore._loss_command import KINDS
from kdcore.cli import main
from kdcore.streaming import LOSSES

SHAPE = (2, 5, 9)
OPTIONS = {
    "kl": ["--T", "2"],
    "soft-ce": ["--T", "2"],
    "reverse-kl": ["--T", "0.5"],
    "jsd": ["--T", "2", "--beta", "0.3"],
    "skew-kl": ["--skew", "0.2"],
    "skew-reverse-kl": ["--T", "3", "--skew", "0.4"],
    "distillation": ["--T", "4", "--alpha", "0.3", "--soft", "kl"],
    "dkd": ["--T", "4", "--alpha", "0.5", "--beta", "2"],
    "tckd": ["--T", "2"],
    "nckd": [],
    "ce": [],
    "logit-mse": ["--no-center"],
}
# The same arguments as the library takes them.
PARAMETERS = {
    "kl": {"T": 2.0},
    "soft-ce": {"T": 2.0},
    "reverse-kl": {"T": 0.5},
    "jsd": {"T": 2.0, "beta": 0.3},
    "skew-kl": {"skew": 0.2},
    "skew-reverse-kl": {"T": 3.0, "skew": 0.4},
    "distillation": {"T": 4.0, "alpha": 0.3, "soft": "kl"},
    "dkd": {"T": 4.0, "alpha": 0.5, "beta": 2.0},
    "tckd": {"T": 2.0},
    "nckd": {},
    "ce": {},
    "logit-mse": {"centered": False},
}


@pytest.fixture
def files(tmp_path, rng):
    student = rng.normal(size=SHAPE).astype(np.float32) * 2
    teacher = rng.normal(size=SHAPE).astype(np.float32) * 2
    labels = rng.integers(0, SHAPE[-1], size=SHAPE[:-1])
    labels[1, 3:] = -100
    np.save(tmp_path / "s.npy", student)
    np.save(tmp_path / "t.npy", teacher)
    np.save(tmp_path / "l.npy", labels)
    np.savez(tmp_path / "batch.npz", student=student, teacher=teacher, labels=labels)
    values, indices = kdcore.topk_teacher(teacher, 4, values="log_probs")
    np.savez_compressed(tmp_path / "top.npz", values=values, indices=indices)
    return {"dir": tmp_path, "student": student, "teacher": teacher, "labels": labels}


def run(capsys, *argv):
    status = main(["loss", *map(str, argv)])
    out, err = capsys.readouterr()
    return status, out, err


def inputs(files, kind, student="s.npy", teacher="t.npy", labels="l.npy"):
    argv = ["--student", files["dir"] / student]
    if KINDS[kind].teacher:
        argv += ["--teacher", files["dir"] / teacher]
    return [*argv, "--labels", files["dir"] / labels]


def reference(files, kind, reduction="mean"):
    keep = files["labels"] != -100
    spec = LOSSES[KINDS[kind].loss]
    kept = {role: files[role][keep] for role in ("student", "teacher", "labels")}
    values = spec.function(*(kept[r] for r in spec.inputs), reduction="none", **PARAMETERS[kind])
    exact = sum(map(Fraction, values.astype(np.float64).tolist()), Fraction(0))
    return float(exact / keep.sum()) if reduction == "mean" else float(exact), spec, kept


class TestEveryKind:
    @pytest.mark.parametrize("kind", [kind for kind in KINDS if not KINDS[kind].top_k])
    def test_json_value_is_the_exact_reduction(self, capsys, files, kind):
        status, out, err = run(capsys, kind, *inputs(files, kind), *OPTIONS[kind], "--json")
        assert status == 0, err
        record = json.loads(out)
        assert record["value"] == reference(files, kind)[0]
        assert (record["loss"], record["kept"], record["positions"]) == (KINDS[kind].loss, 8, 10)
        assert record["dtype"] == "float32" and err == ""  # no progress bar when stderr is not a terminal

    @pytest.mark.parametrize("kind", ["kl", "dkd", "ce"])
    def test_readable_report_prints_the_float64_exactly(self, capsys, files, kind):
        status, out, _ = run(capsys, kind, *inputs(files, kind), *OPTIONS[kind], "--reduction", "sum")
        assert status == 0
        value = reference(files, kind, "sum")[0]
        assert f"value       {value!r}\n" in out + "\n"
        assert "positions   8 kept of 10 (2 dropped: labels == -100)" in out
        assert f"loss        {KINDS[kind].loss}(" in out

    def test_defaults_are_shown(self, capsys, files):
        _, out, _ = run(capsys, "dkd", *inputs(files, "dkd"))
        assert "loss        decoupled_kd_loss(T=4.0, alpha=1.0, beta=8.0)" in out

    def test_gradient_and_values_files(self, capsys, files):
        folder = files["dir"]
        status, _, err = run(
            capsys,
            "jsd",
            *inputs(files, "jsd"),
            *OPTIONS["jsd"],
            "--reduction",
            "none",
            "--values",
            folder / "v.npy",
            "--grad",
            folder / "g.npy",
            "--chunk-rows",
            "3",
        )
        assert status == 0, err
        _, spec, kept = reference(files, "jsd")
        keep = files["labels"] != -100
        values, grad = np.load(folder / "v.npy"), np.load(folder / "g.npy")
        assert values.shape == SHAPE[:-1] and grad.shape == SHAPE and grad.dtype == np.float32
        np.testing.assert_array_equal(
            values[keep], spec.function(kept["student"], kept["teacher"], reduction="none", T=2.0, beta=0.3)
        )
        np.testing.assert_array_equal(
            grad[keep], spec.grad(kept["student"], kept["teacher"], reduction="none", T=2.0, beta=0.3)
        )
        assert not grad[~keep].any() and not values[~keep].any()

    def test_npz_keys_and_a_mask(self, capsys, files, rng):
        mask = rng.random(SHAPE[:-1]) < 0.6
        np.save(files["dir"] / "m.npy", mask)
        batch = files["dir"] / "batch.npz"
        status, out, err = run(
            capsys,
            "reverse-kl",
            "--student",
            f"{batch}:student",
            "--teacher",
            f"{batch}:teacher",
            "--labels",
            f"{batch}:labels",
            "--mask",
            files["dir"] / "m.npy",
            "--json",
        )
        assert status == 0, err
        keep = mask & (files["labels"] != -100)
        values = kdcore.reverse_kl_divergence(
            files["student"][keep], files["teacher"][keep], reduction="none"
        )
        assert json.loads(out)["value"] == float(
            sum(map(Fraction, values.astype(float).tolist())) / keep.sum()
        )

    def test_float64(self, capsys, files):
        _, out, _ = run(capsys, "kl", *inputs(files, "kl"), "--float64", "--json")
        keep = files["labels"] != -100
        z, v = (files[r][keep].astype(np.float64) for r in ("student", "teacher"))
        record = json.loads(out)
        assert record["dtype"] == "float64"
        assert record["value"] == float(
            sum(map(Fraction, kdcore.kl_divergence(z, v, reduction="none").tolist())) / keep.sum()
        )


# Command line  =>  what stderr must say (a regular expression). KL stands for a correct kl command.
USAGE_ERRORS = r"""
kl --student missing.npy --teacher t.npy  =>  --student missing.npy: no such file
kl --student s.npy --teacher junk.npy  =>  --teacher junk.npy: .*not a valid \.npy array
kl --student s.npy --teacher short.npy  =>  --teacher short.npy: .* is truncated
kl --student pickle.npy --teacher t.npy  =>  never unpickles \(allow_pickle=False\)
kl --student s.npy --teacher l.npy  =>  --teacher .*logits must be floating point, got int64
kl --student s.npy --teacher other.npy  =>  --student and --teacher must have the same shape
kl --student s.npy --teacher batch.npz  =>  holds 3 arrays \(student, teacher, labels\): which one\? name it as --teacher batch.npz:KEY
kl --student s.npy --teacher batch.npz:logits  =>  has no array 'logits'
KL --T 0  =>  --T: T must be a positive finite number
KL --T nan  =>  --T: T must be a positive finite number
distillation --student s.npy --teacher t.npy --labels l.npy --T 2 --alpha 1.5  =>  --alpha: alpha must be in \[0, 1\]
distillation --student s.npy --teacher t.npy --labels l.npy --alpha 0.5  =>  distillation needs --T
jsd --student s.npy --teacher t.npy --beta 2  =>  --beta: beta must be a number in
dkd --student s.npy --teacher t.npy --labels l.npy --beta -1  =>  --beta: beta must be a number in
skew-kl --student s.npy --teacher t.npy --skew 1.5  =>  --skew: skew must be a number in
KL --skew 0.1  =>  --skew is for skew-kl, skew-reverse-kl, not kl
KL --alpha 0.1  =>  --alpha is for distillation, dkd, not kl
kl --student s.npy  =>  kl needs --teacher
ce --student s.npy --teacher t.npy --labels l.npy  =>  ce takes no --teacher
dkd --student s.npy --teacher t.npy  =>  dkd needs --labels
ce --student s.npy --labels big.npy  =>  --labels: labels must be in \[0, 9\)
KL --mask l.npy  =>  --mask: mask must be a boolean array
KL --labels s.npy  =>  --labels: labels must be integer
KL --reduction none  =>  --values must be given with --reduction none
KL --values v.npy  =>  --values must be given with --reduction none
KL --grad no/g.npy  =>  --grad must be in an existing directory
KL --grad t.npy  =>  --grad t.npy would overwrite --teacher
KL --chunk-rows 0  =>  --chunk-rows must be an integer ≥ 1
KL --threads 0  =>  --threads must be an integer ≥ 1
topk-kl --student s.npy --teacher-values top.npz:values --teacher-indices top.npz:indices  =>  topk-kl needs --convention
topk-kl --student s.npy --teacher t.npy --convention tail  =>  topk-kl needs --teacher-values and --teacher-indices
KL --teacher-values top.npz:values --teacher-indices top.npz:indices  =>  are for topk-kl, topk-soft-ce, not kl
topk-kl --student s.npy --teacher-values top.npz:values --teacher-indices top.npz:values --convention tail  =>  --teacher-indices: teacher_indices must be integer
topk-kl --student s.npy --teacher-values top.npz:values --teacher-indices top.npz:indices --convention tail  =>  convention='tail' needs the teacher's log-probabilities
"""


class TestUsageErrors:
    """One line on stderr naming the option, exit status 2, nothing written."""

    @pytest.mark.parametrize(
        ("argv", "message"), [line.split("  =>  ") for line in USAGE_ERRORS.strip().splitlines()]
    )
    def test_one_line_and_status_2(self, capsys, files, monkeypatch, argv, message):
        argv = argv.replace("KL", "kl --student s.npy --teacher t.npy").split()
        folder = files["dir"]
        monkeypatch.chdir(folder)
        (folder / "junk.npy").write_bytes(b"not numpy")
        (folder / "short.npy").write_bytes((folder / "t.npy").read_bytes()[:300])
        np.save(folder / "pickle.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
        np.save(folder / "other.npy", np.zeros((2, 5, 8), np.float32))
        np.save(folder / "big.npy", np.full(SHAPE[:-1], 9))
        before = sorted(os.listdir(folder))
        status, out, err = run(capsys, *argv)
        assert status == 2 and out == ""
        assert err.count("\n") == 1 and err.startswith("kdcore loss: ") and "Traceback" not in err
        assert re.search(message, err), err
        assert sorted(os.listdir(folder)) == before  # nothing written

    def test_unknown_kind_is_argparse_s_one_line(self, capsys, files):
        with pytest.raises(SystemExit) as exit_:
            main(["loss", "forward-kl", "--student", "s.npy"])
        assert exit_.value.code == 2
        assert "invalid choice: 'forward-kl'" in capsys.readouterr().err


class TestTopK:
    def test_tail_convention_from_a_compressed_npz(self, capsys, files):
        top = files["dir"] / "top.npz"
        status, out, err = run(
            capsys,
            "topk-kl",
            "--student",
            files["dir"] / "s.npy",
            "--teacher-values",
            f"{top}:values",
            "--teacher-indices",
            f"{top}:indices",
            "--labels",
            files["dir"] / "l.npy",
            "--convention",
            "tail",
            "--teacher-space",
            "log_probs",
            "--json",
        )
        assert status == 0, err
        keep = files["labels"] != -100
        values, indices = kdcore.topk_teacher(files["teacher"], 4, values="log_probs")
        per_token = kdcore.topk_kl_divergence(
            files["student"][keep],
            values[keep],
            indices[keep],
            convention="tail",
            values="log_probs",
            reduction="none",
        )
        record = json.loads(out)
        assert record["value"] == float(sum(map(Fraction, per_token.astype(float).tolist())) / keep.sum())
        assert record["parameters"] == {"T": 1.0, "convention": "tail", "values": "log_probs"}


class TestInterrupted:
    def test_ctrl_c_leaves_no_gradient_and_exits_130(self, capsys, files, monkeypatch):
        from kdcore.arrays_on_disk import ArrayOnDisk

        calls = []

        def release(self, start, stop):
            calls.append(start)
            if len(calls) > 3:
                raise KeyboardInterrupt

        monkeypatch.setattr(ArrayOnDisk, "release", release)
        before = sorted(os.listdir(files["dir"]))
        status, out, err = run(
            capsys, "kl", *inputs(files, "kl"), "--grad", files["dir"] / "g.npy", "--chunk-rows", "1"
        )
        assert status == 130 and out == "" and "interrupted: nothing was written" in err
        assert sorted(os.listdir(files["dir"])) == before


class TestThreads:
    @pytest.mark.parametrize("kind", ["jsd", "ce"])
    def test_the_same_numbers_on_one_thread(self, capsys, files, kind):
        folder = files["dir"]
        records = []
        for threads in ("1", "2"):
            grad = folder / f"g{threads}.npy"
            argv = [*inputs(files, kind), *OPTIONS[kind], "--grad", grad, "--threads", threads, "--json"]
            status, out, _ = run(capsys, kind, *argv)
            assert status == 0
            records.append(json.loads(out))
        assert [record["threads"] for record in records] == [1, 2]
        assert records[0]["value"] == records[1]["value"] == reference(files, kind)[0]
        assert np.array_equal(np.load(folder / "g1.npy"), np.load(folder / "g2.npy"))


# `kdcore loss` in a child process whose chunks each take 0.2 s longer (the real command otherwise): slow
# enough to be stopped half-way through on any machine.
SLOW_COMMAND = """
import sys, time
from kdcore.streaming import plan
rows = plan.Plan._rows
def slow(self, *args, **kwargs):
    rows(self, *args, **kwargs)
    time.sleep(0.2)
plan.Plan._rows = slow
from kdcore.cli import main
sys.exit(main(sys.argv[1:]))
"""


class TestStoppedBySignal:
    """SIGTERM (``kill``, a scheduler's time limit), SIGINT (Ctrl-C) and SIGHUP stop the command cleanly:
    one line on stderr, status 128 + the signal's number, no gradient and no temporary file left behind."""

    @pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
    def test_killed_mid_run(self, files, signum):
        folder = files["dir"]
        before = sorted(os.listdir(folder))
        argv = ["loss", "kl", *map(str, inputs(files, "kl")), "--grad", str(folder / "g.npy")]
        # The command keeps a signal it was started ignoring ignored (nohup, a background job's SIGINT: the
        # next test), so the child starts with the default handler, whatever the suite was started under.
        process = subprocess.Popen(
            [sys.executable, "-c", SLOW_COMMAND, *argv, "--chunk-rows", "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: signal.signal(signum, signal.SIG_DFL),
        )
        try:
            deadline = time.monotonic() + 60
            while not any(name.endswith(".tmp") for name in os.listdir(folder)):  # writing has begun
                assert process.poll() is None and time.monotonic() < deadline, process.communicate()
                time.sleep(0.02)
            time.sleep(0.5)  # a few chunks into the run (10 rows, 0.2 s each)
            assert process.poll() is None, "the command finished before it could be stopped"
            process.send_signal(signum)
            out, err = process.communicate(timeout=60)
        finally:
            process.kill()
        name = signal.Signals(signum).name
        assert process.returncode == 128 + signum
        assert out == "" and err == f"kdcore loss: stopped by {name}: nothing was written\n"
        assert sorted(os.listdir(folder)) == before  # neither g.npy nor its temporary file

    def test_an_ignored_signal_stays_ignored(self, files):
        # nohup starts the command with SIGHUP ignored: it must run to the end, not stop.
        folder = files["dir"]
        argv = ["loss", "kl", *map(str, inputs(files, "kl")), "--grad", str(folder / "g.npy")]
        process = subprocess.Popen(
            [sys.executable, "-c", SLOW_COMMAND, *argv, "--chunk-rows", "5"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN),
        )
        try:
            deadline = time.monotonic() + 60
            while not any(name.endswith(".tmp") for name in os.listdir(folder)):
                assert process.poll() is None and time.monotonic() < deadline, process.communicate()
                time.sleep(0.02)
            process.send_signal(signal.SIGHUP)
            out, err = process.communicate(timeout=60)
        finally:
            process.kill()
        assert process.returncode == 0 and err == "" and "value" in out
        assert np.load(folder / "g.npy").shape == SHAPE

    def test_in_process_and_handlers_restored(self, capsys, files, monkeypatch, request):
        from kdcore.arrays_on_disk import ArrayOnDisk

        calls = []

        def release(self, start, stop):
            calls.append(start)
            if len(calls) == 3:
                os.kill(os.getpid(), signal.SIGTERM)  # delivered to this (main) thread at once

        def unhandled(signum, frame):  # what runs if the command does not handle SIGTERM (not pytest's death)
            raise AssertionError("SIGTERM reached the handler the command found")

        monkeypatch.setattr(ArrayOnDisk, "release", release)
        previous = signal.signal(signal.SIGTERM, unhandled)
        request.addfinalizer(lambda: signal.signal(signal.SIGTERM, previous))
        handlers = {n: signal.getsignal(n) for n in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        before = sorted(os.listdir(files["dir"]))
        status, out, err = run(
            capsys, "kl", *inputs(files, "kl"), "--grad", files["dir"] / "g.npy", "--chunk-rows", "1"
        )
        assert status == 143 and out == "" and err == "kdcore loss: stopped by SIGTERM: nothing was written\n"
        assert len(calls) == 3 and sorted(os.listdir(files["dir"])) == before
        assert {n: signal.getsignal(n) for n in handlers} == handlers
        status, out, _ = run(capsys, "kl", *inputs(files, "kl"), "--grad", files["dir"] / "g.npy")
        assert status == 0 and (files["dir"] / "g.npy").exists()  # the next run is not affected


class TestStoppedBetweenOutputs:
    def test_the_message_names_the_output_already_written(self, capsys, files, monkeypatch):
        from kdcore.arrays_on_disk import NpyRowWriter

        write = NpyRowWriter.write

        def interrupted_on_values(self, rows):
            if self.path.name == "v.npy":
                raise KeyboardInterrupt
            write(self, rows)

        monkeypatch.setattr(NpyRowWriter, "write", interrupted_on_values)
        folder = files["dir"]
        argv = [
            *inputs(files, "kl"),
            "--reduction",
            "none",
            "--values",
            folder / "v.npy",
            "--grad",
            folder / "g.npy",
        ]
        status, out, err = run(capsys, "kl", *argv)
        assert status == 130 and out == ""
        assert err == f"kdcore loss: interrupted: only {folder / 'g.npy'} was written\n"
        assert (folder / "g.npy").exists() and not any(
            name.startswith(".v.npy") or name == "v.npy" for name in os.listdir(folder)
        )


class TestProgress:
    def test_bar_on_a_terminal_quiet_otherwise(self, capsys, files, monkeypatch):
        monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
        status, _, err = run(capsys, "kl", *inputs(files, "kl"), "--chunk-rows", "2")
        assert status == 0 and "kdcore loss kl:" in err and "/10 [" in err  # tqdm: cleared when done
        _, _, err = run(capsys, "kl", *inputs(files, "kl"), "--quiet")
        assert err == ""

    def test_plain_progress_without_tqdm(self, capsys, files, monkeypatch):
        monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
        monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now fails
        status, _, err = run(capsys, "kl", *inputs(files, "kl"), "--chunk-rows", "5")
        assert status == 0 and "\rkdcore loss kl: 10/10 rows (100%)" in err and err.endswith("\n")


class TestEntryPoint:
    def test_the_installed_command(self, files):
        process = subprocess.run(
            [sys.executable, "-m", "kdcore", "loss", "nckd", *map(str, inputs(files, "nckd")), "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert process.returncode == 0 and process.stderr == ""
        assert json.loads(process.stdout)["value"] == reference(files, "nckd")[0]
        process = subprocess.run(
            [sys.executable, "-m", "kdcore", "loss", "kl", "--student", "nothing.npy", "--teacher", "t.npy"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert process.returncode == 2 and process.stderr.count("\n") == 1
