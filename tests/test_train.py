"""kdcore.train.fit: learning, reproducibility, teachers, Ctrl-C, checkpoints and resuming."""

import numpy as np
import pytest

from kdcore import checkpoint
from kdcore.mlp import MLP
from kdcore.optim import SGD, Adam, StepLR
from kdcore.train import History, fit

N, DIM, CLASSES, BATCH = 240, 4, 3, 32  # 8 batches per epoch


def blobs(n=N, seed=0):
    """Three Gaussian blobs in 4-D, centres 3 standard deviations apart: learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    centres = 3 * rng.standard_normal((CLASSES, DIM))
    labels = rng.integers(0, CLASSES, n)
    return centres[labels] + rng.standard_normal((n, DIM)), labels


def student(dropout=0.2, dtype=np.float64, seed=1):
    return MLP([DIM, 16, CLASSES], dropout=dropout, seed=seed, dtype=dtype)


def teacher_model():
    return MLP([DIM, 32, 32, CLASSES], dropout=0.5, seed=7, dtype=np.float64)


def assert_same_params(a, b):
    for k, (pa, pb) in enumerate(zip(a.params, b.params, strict=True)):
        assert pa.tobytes() == pb.tobytes(), f"params[{k}] differ"


def same_record(one, two):
    """Everything but the wall-clock seconds."""
    return (one.loss, one.train_accuracy, one.val_accuracy, one.lr) == (
        two.loss,
        two.train_accuracy,
        two.val_accuracy,
        two.lr,
    )


class InterruptAt(SGD):
    """SGD that raises KeyboardInterrupt (as Ctrl-C would) at its ``at``-th step."""

    def __init__(self, at, **kwargs):
        super().__init__(**kwargs)
        self.at, self.calls = at, 0

    def step(self, params, grads):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        super().step(params, grads)


class TestLearning:
    def test_labels_only(self):
        x, labels = blobs()
        history = fit(student(), x, labels, epochs=8, batch_size=BATCH, optimizer=SGD(lr=0.1), progress=False)
        assert history.epochs == 8 and not history.interrupted
        assert history.loss[-1] < 0.5 * history.loss[0]
        assert history.train_accuracy[-1] > 0.9

    def test_distillation(self):
        x, labels = blobs()
        teacher = teacher_model()
        fit(teacher, x, labels, epochs=10, batch_size=BATCH, optimizer=Adam(lr=0.01), progress=False)
        model = student()
        history = fit(
            model,
            x,
            labels,
            teacher,
            T=3.0,
            alpha=0.3,
            epochs=8,
            batch_size=BATCH,
            progress=False,
            optimizer=Adam(lr=0.01),
        )
        assert history.loss[-1] < 0.5 * history.loss[0]
        agreement = np.mean(model.predict(x) == teacher.predict(x))
        assert agreement > 0.9

    def test_float32(self):
        x, labels = blobs()
        model = student(dtype=np.float32)
        history = fit(model, x, labels, epochs=3, batch_size=BATCH, optimizer=SGD(lr=0.1), progress=False)
        assert history.loss[-1] < history.loss[0]
        assert all(p.dtype == np.float32 for p in model.params)
        assert all(isinstance(value, float) for value in history.loss + history.train_accuracy)

    def test_validation_accuracy_is_the_final_models(self):
        x, labels = blobs()
        x_val, labels_val = blobs(seed=0)[0][:60], blobs(seed=0)[1][:60]
        model = student()
        history = fit(model, x, labels, epochs=3, x_val=x_val, labels_val=labels_val, progress=False)
        assert len(history.val_accuracy) == 3
        assert history.val_accuracy[-1] == np.mean(model.predict(x_val) == labels_val)

    def test_no_validation_data_no_validation_accuracy(self):
        x, labels = blobs()
        assert fit(student(), x, labels, epochs=2, progress=False).val_accuracy == []

    def test_schedule_sets_the_learning_rate(self):
        x, labels = blobs()
        schedule = StepLR(0.2, step_size=2, gamma=0.5)
        history = fit(
            student(), x, labels, epochs=5, optimizer=SGD(lr=1.0), schedule=schedule, progress=False
        )
        assert history.lr == [0.2, 0.2, 0.1, 0.1, 0.05]

    def test_zero_epochs(self):
        x, labels = blobs()
        model = student()
        before = model.get_params()
        assert fit(model, x, labels, epochs=0, progress=False).epochs == 0
        for a, b in zip(before, model.params, strict=True):
            np.testing.assert_array_equal(a, b)

    def test_alpha_one_is_plain_cross_entropy(self):
        x, labels = blobs()
        plain, distilled = student(), student()
        fit(plain, x, labels, epochs=2, optimizer=SGD(lr=0.1), progress=False)
        teacher_logits = np.random.default_rng(3).standard_normal((N, CLASSES))
        fit(distilled, x, labels, teacher_logits, alpha=1.0, epochs=2, optimizer=SGD(lr=0.1), progress=False)
        for a, b in zip(plain.params, distilled.params, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)

    def test_non_finite_loss_stops_training(self):
        x, labels = blobs()
        model = student()
        model.params[0][0, 0] = np.nan
        with np.errstate(all="ignore"), pytest.raises(FloatingPointError, match="epoch 1, batch 1"):
            fit(model, x, labels, epochs=1, progress=False)


class TestReproducibility:
    def test_same_seed_same_bits(self):
        x, labels = blobs()
        runs = []
        for _ in range(2):
            model = student(dropout=0.3)
            history = fit(
                model,
                x,
                labels,
                teacher_model(),
                epochs=3,
                batch_size=BATCH,
                seed=5,
                progress=False,
                x_val=x[:50],
                labels_val=labels[:50],
                optimizer=Adam(lr=0.01),
            )
            runs.append((model, history))
        (model_a, history_a), (model_b, history_b) = runs
        assert same_record(history_a, history_b)
        assert_same_params(model_a, model_b)

    def test_other_seed_other_order(self):
        x, labels = blobs()
        a, b = student(dropout=0.0), student(dropout=0.0)
        fit(a, x, labels, epochs=1, batch_size=BATCH, seed=0, progress=False)
        fit(b, x, labels, epochs=1, batch_size=BATCH, seed=1, progress=False)
        assert not np.array_equal(a.params[0], b.params[0])

    def test_teacher_as_model_or_as_logits(self):
        x, labels = blobs()
        teacher = teacher_model()
        teacher_logits = teacher.forward(x, train=False)
        a, b = student(), student()
        history_a = fit(a, x, labels, teacher, epochs=2, batch_size=BATCH, progress=False)
        history_b = fit(b, x, labels, teacher_logits, epochs=2, batch_size=BATCH, progress=False)
        assert same_record(history_a, history_b)
        assert_same_params(a, b)

    def test_float64_teacher_of_a_float32_student_sees_float64_inputs(self):
        x, labels = blobs()
        teacher = teacher_model()
        a, b = student(dtype=np.float32), student(dtype=np.float32)
        fit(a, x, labels, teacher, epochs=1, progress=False)
        fit(b, x, labels, teacher.forward(x), epochs=1, progress=False)
        assert_same_params(a, b)

    def test_teacher_runs_once_in_evaluation_mode(self, monkeypatch):
        x, labels = blobs()
        teacher = teacher_model()
        calls = []
        original = teacher.forward

        def spy(batch, train=False, dropout_seed=None):
            calls.append((len(batch), train))
            return original(batch, train=train, dropout_seed=dropout_seed)

        monkeypatch.setattr(teacher, "forward", spy)
        state = teacher.dropout_rng.bit_generator.state
        before = teacher.get_params()
        fit(student(), x, labels, teacher, epochs=3, batch_size=BATCH, progress=False)
        assert calls == [(N, False)]
        assert teacher.dropout_rng.bit_generator.state == state  # no dropout mask was drawn
        for a, b in zip(before, teacher.params, strict=True):
            np.testing.assert_array_equal(a, b)  # the teacher is not trained


class TestInterrupt:
    def test_ctrl_c_mid_epoch_keeps_the_last_completed_epoch(self, tmp_path):
        x, labels = blobs()
        path = tmp_path / "run.npz"
        model = student()
        history = fit(
            model,
            x,
            labels,
            epochs=3,
            batch_size=BATCH,
            checkpoint=path,
            progress=False,
            optimizer=InterruptAt(8 + 4, lr=0.1, momentum=0.9),
        )  # step 4 of epoch 2
        assert history.interrupted and history.epochs == 1

        one_epoch = student()
        expected = fit(
            one_epoch,
            x,
            labels,
            epochs=1,
            batch_size=BATCH,
            optimizer=SGD(lr=0.1, momentum=0.9),
            progress=False,
        )
        assert same_record(history, expected)
        assert_same_params(model, one_epoch)  # rolled back: not a half-updated model
        saved = checkpoint.load(path)
        assert saved.epoch == 1
        assert_same_params(saved.model, one_epoch)
        assert [p.name for p in tmp_path.iterdir()] == ["run.npz"]  # no temporary file left

    def test_ctrl_c_during_the_checkpoint_save(self, tmp_path, monkeypatch):
        x, labels = blobs()
        path = tmp_path / "run.npz"
        original = checkpoint.save
        saves = []

        def interrupted_second_save(*args, **kwargs):
            saves.append(kwargs["epoch"])
            if len(saves) == 2:
                raise KeyboardInterrupt
            return original(*args, **kwargs)

        monkeypatch.setattr(checkpoint, "save", interrupted_second_save)
        model = student()
        history = fit(model, x, labels, epochs=3, checkpoint=path, optimizer=SGD(lr=0.1), progress=False)
        assert saves == [1, 2] and history.interrupted and history.epochs == 1
        assert checkpoint.load(path).epoch == 1
        assert_same_params(checkpoint.load(path).model, model)  # memory and disk agree

    def test_resume_after_ctrl_c_equals_an_uninterrupted_run(self, tmp_path):
        x, labels = blobs()
        x_val, labels_val = x[:40], labels[:40]
        path = tmp_path / "run.npz"
        common = {
            "epochs": 3,
            "batch_size": BATCH,
            "x_val": x_val,
            "labels_val": labels_val,
            "progress": False,
        }
        teacher_logits = np.random.default_rng(2).standard_normal((N, CLASSES))

        fit(
            student(),
            x,
            labels,
            teacher_logits,
            checkpoint=path,
            optimizer=InterruptAt(8 + 3, lr=0.05, momentum=0.9),
            **common,
        )
        resumed_model = student(seed=123)  # other initial weights: resuming must overwrite them all
        resumed = fit(
            resumed_model,
            x,
            labels,
            teacher_logits,
            checkpoint=path,
            resume=True,
            optimizer=SGD(lr=0.05, momentum=0.9),
            **common,
        )

        straight_model = student()
        straight = fit(
            straight_model, x, labels, teacher_logits, optimizer=SGD(lr=0.05, momentum=0.9), **common
        )
        assert not resumed.interrupted and resumed.epochs == 3
        assert same_record(resumed, straight)
        assert_same_params(resumed_model, straight_model)
        assert checkpoint.load(path).epoch == 3

    def test_resume_without_optimizer_uses_the_saved_one(self, tmp_path):
        x, labels = blobs()
        path = tmp_path / "run.npz"
        fit(student(), x, labels, epochs=1, checkpoint=path, optimizer=Adam(lr=0.02), progress=False)
        model = student()
        resumed = fit(model, x, labels, epochs=2, checkpoint=path, resume=True, progress=False)
        straight_model = student()
        straight = fit(straight_model, x, labels, epochs=2, optimizer=Adam(lr=0.02), progress=False)
        assert same_record(resumed, straight)
        assert_same_params(model, straight_model)

    def test_resume_without_a_file_starts_from_scratch(self, tmp_path):
        x, labels = blobs()
        history = fit(
            student(), x, labels, epochs=1, checkpoint=tmp_path / "new.npz", resume=True, progress=False
        )
        assert history.epochs == 1 and checkpoint.load(tmp_path / "new.npz").epoch == 1

    def test_resume_when_already_finished(self, tmp_path):
        x, labels = blobs()
        path = tmp_path / "run.npz"
        first = fit(student(), x, labels, epochs=2, checkpoint=path, progress=False)
        again = fit(student(), x, labels, epochs=2, checkpoint=path, resume=True, progress=False)
        assert same_record(first, again)

    @pytest.mark.parametrize(
        ("change", "match"),
        [({"batch_size": 16}, "batch_size=32"), ({"seed": 4}, "seed=0"), ({"alpha": 0.9}, "alpha")],
    )
    def test_resume_refuses_other_settings(self, tmp_path, change, match):
        x, labels = blobs()
        path = tmp_path / "run.npz"
        teacher_logits = np.zeros((N, CLASSES))
        fit(student(), x, labels, teacher_logits, epochs=1, batch_size=BATCH, checkpoint=path, progress=False)
        settings = {
            "epochs": 2,
            "batch_size": BATCH,
            "checkpoint": path,
            "resume": True,
            "progress": False,
            **change,
        }
        with pytest.raises(ValueError, match=f"cannot resume .*{match}"):
            fit(student(), x, labels, teacher_logits, **settings)

    def test_resume_without_teacher_ignores_the_temperature(self, tmp_path):
        x, labels = blobs()
        path = tmp_path / "run.npz"
        fit(student(), x, labels, epochs=1, T=2.0, checkpoint=path, progress=False)
        history = fit(student(), x, labels, epochs=2, T=5.0, checkpoint=path, resume=True, progress=False)
        assert history.epochs == 2

    def test_resume_refuses_another_architecture_or_optimizer(self, tmp_path):
        x, labels = blobs()
        path = tmp_path / "run.npz"
        fit(student(), x, labels, epochs=1, checkpoint=path, optimizer=SGD(lr=0.1), progress=False)
        with pytest.raises(ValueError, match=r"cannot resume .*sizes"):
            fit(MLP([DIM, 8, CLASSES]), x, labels, epochs=2, checkpoint=path, resume=True, progress=False)
        with pytest.raises(ValueError, match=r"cannot resume .*SGD"):
            fit(
                student(), x, labels, epochs=2, checkpoint=path, resume=True, optimizer=Adam(), progress=False
            )

    def test_checkpoint_records_the_run(self, tmp_path):
        x, labels = blobs()
        path = tmp_path / "run.npz"
        history = fit(
            student(),
            x,
            labels,
            T=2.0,
            alpha=0.25,
            teacher=np.zeros((N, CLASSES)),
            epochs=2,
            checkpoint=path,
            progress=False,
        )
        saved = checkpoint.load(path)
        assert (
            saved.config["T"] == 2.0 and saved.config["alpha"] == 0.25 and saved.config["teacher"] == "logits"
        )
        assert History.from_dict(saved.metadata["history"]).loss == history.loss


class TestProgress:
    def test_progress_bar_shows_loss_and_accuracy(self, capsys):
        pytest.importorskip("tqdm")
        x, labels = blobs()
        fit(student(), x, labels, epochs=2, progress=True)
        err = capsys.readouterr().err
        assert "epochs" in err and "loss=" in err and "acc=" in err

    def test_silent_without_progress(self, capsys):
        x, labels = blobs()
        fit(student(), x, labels, epochs=2, progress=False)
        assert capsys.readouterr() == ("", "")


class TestHistory:
    def test_dict_round_trip(self):
        history = History(loss=[1.0, 0.5], train_accuracy=[0.5, 0.75], seconds=[0.1, 0.2], lr=[0.1, 0.1])
        assert History.from_dict(history.to_dict()) == history

    def test_from_dict_refuses_missing_keys(self):
        with pytest.raises(ValueError, match="keys"):
            History.from_dict({"loss": []})


class TestArguments:
    @pytest.mark.parametrize(
        ("kwargs", "error", "match"),
        [
            ({"labels": np.zeros(N - 1, dtype=int)}, ValueError, r"labels must have shape \(240,\)"),
            ({"labels": np.full(N, 3)}, ValueError, r"labels must be in \[0, 3\)"),
            ({"labels": np.zeros(N)}, TypeError, "integer"),
            ({"x": np.zeros((N, DIM + 1))}, ValueError, r"x must have shape \(n, 4\)"),
            ({"teacher": np.zeros((N, CLASSES + 1))}, ValueError, "teacher logits must have shape"),
            ({"teacher": np.full((N, CLASSES), np.inf)}, ValueError, "finite"),
            ({"teacher": MLP([DIM, CLASSES + 1])}, ValueError, "share inputs and classes"),
            ({"x_val": np.zeros((3, DIM))}, ValueError, "both x_val and labels_val"),
            ({"x_val": np.zeros((3, DIM)), "labels_val": np.zeros(2, dtype=int)}, ValueError, "labels_val"),
            ({"epochs": -1}, ValueError, "epochs=-1"),
            ({"batch_size": 0}, ValueError, "batch_size=0"),
            ({"seed": -3}, ValueError, "seed=-3"),
            ({"T": 0.0}, ValueError, "T"),
            ({"alpha": 1.5}, ValueError, "alpha"),
            ({"model": "not a model"}, TypeError, "MLP"),
        ],
    )
    def test_refused_before_training(self, kwargs, error, match):
        x, labels = blobs()
        arguments = {"model": student(), "x": x, "labels": labels, "epochs": 1, "progress": False, **kwargs}
        with pytest.raises(error, match=match):
            fit(**arguments)


class TestDatasetAndRegularisation:
    def test_checkpoints_record_the_dataset(self, tmp_path):
        x, labels = blobs()
        path = tmp_path / "run.npz"
        fit(student(), x, labels, epochs=1, checkpoint=path, dataset="synthetic", progress=False)
        assert checkpoint.load(path).dataset == "synthetic"

    def test_resume_refuses_another_dataset(self, tmp_path):
        x, labels = blobs()
        path = tmp_path / "run.npz"
        fit(student(), x, labels, epochs=1, checkpoint=path, dataset="mnist", progress=False)
        with pytest.raises(ValueError, match=r"dataset='mnist'.*dataset='fashion-mnist'"):
            fit(student(), x, labels, epochs=2, checkpoint=path, resume=True, dataset="fashion-mnist")

    def test_bad_dataset_name_is_refused_before_training(self):
        x, labels = blobs()
        model = student()
        before = model.get_params()
        with pytest.raises(ValueError, match="dataset=''"):
            fit(model, x, labels, epochs=1, dataset="", progress=False)
        assert_same_params(model, type(model)([DIM, 16, CLASSES], dropout=0.2, seed=1, dtype=np.float64))
        assert all(np.array_equal(a, b) for a, b in zip(before, model.params, strict=True))

    def test_resume_refuses_other_regularisation(self, tmp_path):
        x, labels = blobs()
        path = tmp_path / "run.npz"
        fit(student(), x, labels, epochs=1, checkpoint=path, progress=False)
        bound = MLP([DIM, 16, CLASSES], dropout=0.2, seed=1, dtype=np.float64, max_norm=2.0)
        with pytest.raises(ValueError, match="max_norm"):
            fit(bound, x, labels, epochs=2, checkpoint=path, resume=True, progress=False)

    def test_full_regularisation_learns_and_resumes_bitwise(self, tmp_path):
        # Input dropout, hidden dropout and max-norm together: an interrupted run resumed from its checkpoint
        # equals an uninterrupted one (the input masks come from the same saved generator).
        x, labels = blobs()

        def model():
            return MLP(
                [DIM, 16, CLASSES], dropout=0.3, input_dropout=0.2, max_norm=1.5, seed=1, dtype=np.float64
            )

        straight_model = model()
        straight = fit(
            straight_model,
            x,
            labels,
            epochs=3,
            batch_size=BATCH,
            optimizer=SGD(lr=0.1, momentum=0.9),
            progress=False,
        )
        assert straight.train_accuracy[-1] > 0.8
        path = tmp_path / "run.npz"
        fit(
            model(),
            x,
            labels,
            epochs=1,
            batch_size=BATCH,
            optimizer=SGD(lr=0.1, momentum=0.9),
            checkpoint=path,
            progress=False,
        )
        resumed_model = model()
        resumed = fit(
            resumed_model,
            x,
            labels,
            epochs=3,
            batch_size=BATCH,
            optimizer=SGD(lr=0.1, momentum=0.9),
            checkpoint=path,
            resume=True,
            progress=False,
        )
        assert same_record(resumed, straight)
        assert_same_params(resumed_model, straight_model)
