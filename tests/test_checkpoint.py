"""kdcore.checkpoint: bitwise round trips, atomic writes, and refusal of everything malformed or pickled."""

import json
import os
import zipfile

import numpy as np
import pytest

import kdcore
from kdcore import checkpoint
from kdcore.mlp import MLP
from kdcore.optim import SGD, Adam

UNPICKLED = []


def _record_unpickling(what):
    """Called only if something unpickles a ``Trap``: the tests assert that never happens."""
    UNPICKLED.append(what)
    return what


class Trap:
    def __reduce__(self):
        return (_record_unpickling, ("a checkpoint was unpickled",))


def trained(optimizer, dtype=np.float32, dropout=0.25):
    """A model and optimiser with non-trivial state: two steps taken, the dropout generator moved."""
    model = MLP([5, 8, 6, 3], dropout=dropout, seed=3, dtype=dtype)
    x = np.random.default_rng(0).standard_normal((4, 5))
    for _ in range(2):
        logits, cache = model.forward_with_cache(x, train=True)
        optimizer.step(model.params, model.backward(np.ones_like(logits), cache))
    return model, optimizer


def write_npz(path, **arrays):
    """An npz written directly, bypassing save(): for building malformed files."""
    with open(path, "wb") as file:
        np.savez(file, **arrays)
    return path


def arrays_of(path):
    with np.load(path, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def metadata_of(arrays):
    return json.loads(arrays["metadata"].tobytes().decode("utf-8"))


def with_metadata(arrays, metadata):
    text = json.dumps(metadata).encode("utf-8")
    return {**arrays, "metadata": np.frombuffer(text, dtype=np.uint8)}


@pytest.fixture
def saved(tmp_path):
    model, optimizer = trained(SGD(lr=0.1, momentum=0.9))
    path = checkpoint.save(tmp_path / "model.npz", model, optimizer, config={"T": 4.0, "alpha": 0.5}, epoch=2)
    return path, model, optimizer


class TestRoundTrip:
    @pytest.mark.parametrize(
        "make",
        [lambda: SGD(lr=0.1, momentum=0.9), lambda: Adam(lr=0.01, weight_decay=0.1), lambda: SGD(lr=0.1)],
    )
    @pytest.mark.parametrize("dtype", [np.float32, np.float64])
    def test_bitwise(self, tmp_path, make, dtype):
        model, optimizer = trained(make(), dtype)
        path = checkpoint.save(tmp_path / "ck.npz", model, optimizer, config={"lr": 0.1}, epoch=7)
        loaded = checkpoint.load(path)
        assert repr(loaded.model) == repr(model)
        for ours, theirs in zip(model.params, loaded.model.params, strict=True):
            assert ours.dtype == theirs.dtype and ours.tobytes() == theirs.tobytes()
        assert loaded.optimizer.config() == optimizer.config()
        state, loaded_state = optimizer.state_dict(), loaded.optimizer_state
        assert set(state) == set(loaded_state)
        for key in state:
            assert (
                state[key].dtype == loaded_state[key].dtype
                and state[key].tobytes() == loaded_state[key].tobytes()
            )
        assert loaded.epoch == 7 and loaded.config == {"lr": 0.1}

    def test_dropout_generator_continues(self, saved):
        path, model, _ = saved
        loaded = checkpoint.load(path).model
        x = np.ones((3, 5))
        np.testing.assert_array_equal(loaded.forward(x, train=True), model.forward(x, train=True))

    def test_metadata(self, saved):
        path, _, _ = saved
        metadata = checkpoint.load(path).metadata
        assert (
            metadata["format"] == checkpoint.FORMAT
            and metadata["format_version"] == checkpoint.FORMAT_VERSION
        )
        assert metadata["kdcore_version"] == kdcore.__version__
        assert metadata["model"]["sizes"] == [5, 8, 6, 3] and metadata["model"]["dtype"] == "float32"
        assert metadata["model"]["activation"] == "relu" and metadata["model"]["dropout"] == 0.25
        assert metadata["optimizer"]["name"] == "sgd" and metadata["epoch"] == 2

    def test_without_optimizer_or_config(self, tmp_path):
        model = MLP([3, 2])
        loaded = checkpoint.load(checkpoint.save(tmp_path / "ck", model))
        assert loaded.optimizer is None and loaded.optimizer_state == {}
        assert loaded.epoch is None and loaded.config == {}
        assert (tmp_path / "ck").exists()  # the path is used as given, no .npz appended

    def test_only_plain_numeric_arrays_are_written(self, saved):
        path, _, _ = saved
        # allow_pickle=False would raise on an object array: loading at all proves there is none.
        assert all(a.dtype.kind in "fiu" for a in arrays_of(path).values())

    def test_unserialisable_config_is_refused_before_writing(self, tmp_path):
        with pytest.raises(ValueError, match="JSON"):
            checkpoint.save(tmp_path / "ck.npz", MLP([2, 2]), config={"path": tmp_path})
        assert list(tmp_path.iterdir()) == []

    def test_bad_arguments(self, tmp_path):
        with pytest.raises(TypeError, match="MLP"):
            checkpoint.save(tmp_path / "ck.npz", "model")
        with pytest.raises(ValueError, match="epoch=-1"):
            checkpoint.save(tmp_path / "ck.npz", MLP([2, 2]), epoch=-1)

    def test_permissions_follow_the_umask(self, tmp_path):
        path = checkpoint.save(tmp_path / "ck.npz", MLP([2, 2]))
        umask = os.umask(0)
        os.umask(umask)
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask


class TestAtomicity:
    """A save that fails half-way leaves the previous checkpoint loadable and no temporary file behind."""

    @staticmethod
    def assert_intact(path, model):
        loaded = checkpoint.load(path)
        for ours, theirs in zip(model.params, loaded.model.params, strict=True):
            np.testing.assert_array_equal(ours, theirs)
        assert [p.name for p in path.parent.iterdir()] == [path.name]

    @pytest.mark.parametrize("exception", [OSError("disk full"), KeyboardInterrupt()])
    def test_crash_while_writing_arrays(self, saved, monkeypatch, exception):
        path, model, optimizer = saved
        original = np.lib.format.write_array
        written = []

        def write_some_then_fail(*args, **kwargs):
            if len(written) == 2:  # two arrays are already in the temporary file
                raise exception
            written.append(True)
            return original(*args, **kwargs)

        monkeypatch.setattr(np.lib.format, "write_array", write_some_then_fail)
        newer, _ = trained(Adam())
        with pytest.raises(type(exception)):
            checkpoint.save(path, newer, optimizer, epoch=3)
        monkeypatch.undo()
        assert written  # the failure really came mid-file
        self.assert_intact(path, model)
        assert checkpoint.load(path).epoch == 2

    @pytest.mark.parametrize("step", ["fsync", "replace"])
    def test_crash_before_the_rename(self, saved, monkeypatch, step):
        path, model, _ = saved

        def fail(*args, **kwargs):
            raise OSError(f"{step} failed")

        monkeypatch.setattr(checkpoint.os, step, fail)
        with pytest.raises(OSError, match=step):
            checkpoint.save(path, MLP([5, 8, 6, 3], seed=99))
        monkeypatch.undo()
        self.assert_intact(path, model)

    def test_new_checkpoint_replaces_old(self, saved):
        path, _, _ = saved
        newer = MLP([2, 4], seed=1)
        checkpoint.save(path, newer, epoch=5)
        self.assert_intact(path, newer)
        assert checkpoint.load(path).epoch == 5


class TestRefusals:
    """Every malformed file raises ValueError naming the file and the fault; nothing is unpickled."""

    def test_missing_file(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="no checkpoint at"):
            checkpoint.load(tmp_path / "absent.npz")

    def test_directory(self, tmp_path):
        with pytest.raises(ValueError, match="not a regular file"):
            checkpoint.load(tmp_path)

    @pytest.mark.parametrize("keep", [0.0, 0.5, 0.99])
    def test_truncated_file(self, saved, keep):
        path, _, _ = saved
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * keep)])
        with pytest.raises(ValueError, match=f"{path.name} is not a valid kdcore checkpoint"):
            checkpoint.load(path)

    def test_corrupted_bytes(self, saved):
        path, _, _ = saved
        data = bytearray(path.read_bytes())
        data[200:260] = b"\xff" * 60  # inside the first member's data: its CRC no longer matches
        path.write_bytes(bytes(data))
        with pytest.raises(ValueError, match="not a valid kdcore checkpoint"):
            checkpoint.load(path)

    def test_pickled_object_array_is_refused_unread(self, saved):
        path, _, _ = saved
        arrays = arrays_of(path)
        arrays["param0"] = np.array([Trap()], dtype=object)
        write_npz(path, **arrays)
        with pytest.raises(ValueError, match=r"array 'param0' holds Python objects .* refuses to unpickle"):
            checkpoint.load(path)
        assert UNPICKLED == []

    def test_pickled_metadata_is_refused_unread(self, saved):
        path, _, _ = saved
        arrays = arrays_of(path)
        arrays["metadata"] = np.array([Trap(), {"format": "kdcore-checkpoint"}], dtype=object)
        write_npz(path, **arrays)
        with pytest.raises(ValueError, match="'metadata' holds Python objects"):
            checkpoint.load(path)
        assert UNPICKLED == []

    def test_a_plain_pickle_is_not_a_checkpoint(self, tmp_path):
        path = tmp_path / "model.pkl"
        with open(path, "wb") as file:
            np.save(file, np.array([Trap()], dtype=object))  # .npy (not zip) with a pickle inside
        with pytest.raises(ValueError, match=r"not an .npz"):
            checkpoint.load(path)
        assert UNPICKLED == []

    def test_non_npy_member(self, saved):
        path, _, _ = saved
        with zipfile.ZipFile(path, "a") as archive:
            archive.writestr("payload.pkl", b"\x80\x04N.")
        with pytest.raises(ValueError, match=r"unexpected member 'payload.pkl'"):
            checkpoint.load(path)

    def test_missing_metadata(self, saved):
        path, _, _ = saved
        arrays = arrays_of(path)
        del arrays["metadata"]
        write_npz(path, **arrays)
        with pytest.raises(ValueError, match="no 'metadata' array"):
            checkpoint.load(path)

    @pytest.mark.parametrize(
        ("raw", "match"),
        [
            (np.frombuffer(b"{not json", dtype=np.uint8), "not valid UTF-8 JSON"),
            (np.frombuffer(b"\xff\xfe", dtype=np.uint8), "not valid UTF-8 JSON"),
            (np.frombuffer(b"[1, 2]", dtype=np.uint8), "JSON object"),
            (np.zeros(3, dtype=np.float32), "uint8"),
        ],
    )
    def test_unparsable_metadata(self, saved, raw, match):
        path, _, _ = saved
        write_npz(path, **{**arrays_of(path), "metadata": raw})
        with pytest.raises(ValueError, match=match):
            checkpoint.load(path)

    @pytest.mark.parametrize(
        "key", ["format", "format_version", "kdcore_version", "model", "optimizer", "config", "epoch"]
    )
    def test_missing_metadata_key(self, saved, key):
        path, _, _ = saved
        arrays = arrays_of(path)
        metadata = metadata_of(arrays)
        del metadata[key]
        write_npz(path, **with_metadata(arrays, metadata))
        with pytest.raises(ValueError, match=f"lacks the key\\(s\\) '{key}'"):
            checkpoint.load(path)

    @pytest.mark.parametrize("key", ["sizes", "dtype", "dropout_rng_state"])
    def test_missing_model_key(self, saved, key):
        path, _, _ = saved
        arrays = arrays_of(path)
        metadata = metadata_of(arrays)
        del metadata["model"][key]
        write_npz(path, **with_metadata(arrays, metadata))
        with pytest.raises(ValueError, match=f"'model' lacks the key\\(s\\) '{key}'"):
            checkpoint.load(path)

    @pytest.mark.parametrize(
        ("change", "match"),
        [
            ({"format": "something-else"}, "'format'"),
            ({"format_version": 99}, "format_version 99"),
            ({"epoch": -1}, "'epoch'"),
            ({"config": [1]}, "'config'"),
            ({"optimizer": {"name": "rmsprop"}}, "optimizer"),
            ({"dataset": 3}, "'dataset'"),
            ({"dataset": ""}, "'dataset'"),
            ({"dataset": ["mnist"]}, "'dataset'"),
        ],
    )
    def test_bad_metadata_values(self, saved, change, match):
        path, _, _ = saved
        arrays = arrays_of(path)
        write_npz(path, **with_metadata(arrays, {**metadata_of(arrays), **change}))
        with pytest.raises(ValueError, match=match):
            checkpoint.load(path)

    @pytest.mark.parametrize(
        ("change", "match"),
        [
            ({"sizes": [5, 0, 3]}, "sizes"),
            ({"activation": "gelu"}, "activation"),
            ({"dtype": "int8"}, "dtype"),
            ({"input_dropout": 1.5}, "input_dropout"),
            ({"max_norm": -2}, "max_norm"),
        ],
    )
    def test_invalid_model_description(self, saved, change, match):
        path, _, _ = saved
        arrays = arrays_of(path)
        metadata = metadata_of(arrays)
        metadata["model"].update(change)
        write_npz(path, **with_metadata(arrays, metadata))
        with pytest.raises(ValueError, match=f"metadata 'model' is invalid: {match}"):
            checkpoint.load(path)

    def test_sizes_disagreeing_with_the_arrays(self, saved):
        path, _, _ = saved
        arrays = arrays_of(path)
        metadata = metadata_of(arrays)
        metadata["model"]["sizes"] = [5, 9, 6, 3]
        write_npz(path, **with_metadata(arrays, metadata))
        with pytest.raises(ValueError, match=r"param0 has shape \(5, 8\) .* need shape \(5, 9\)"):
            checkpoint.load(path)

    def test_wrong_param_dtype(self, saved):
        path, _, _ = saved
        arrays = arrays_of(path)
        write_npz(path, **{**arrays, "param1": arrays["param1"].astype(np.float64)})
        with pytest.raises(ValueError, match=r"param1 has shape .* dtype float64"):
            checkpoint.load(path)

    def test_missing_param(self, saved):
        path, _, _ = saved
        arrays = arrays_of(path)
        del arrays["param5"]
        write_npz(path, **arrays)
        with pytest.raises(ValueError, match="no array 'param5'"):
            checkpoint.load(path)

    def test_unexpected_array(self, saved):
        path, _, _ = saved
        write_npz(path, **arrays_of(path), param6=np.zeros(3, dtype=np.float32))
        with pytest.raises(ValueError, match=r"unexpected array.*'param6'"):
            checkpoint.load(path)

    def test_optimizer_state_of_the_wrong_shape(self, saved):
        path, _, _ = saved
        arrays = arrays_of(path)
        write_npz(path, **{**arrays, "optimizer_velocity0": np.zeros((2, 2), dtype=np.float32)})
        with pytest.raises(ValueError, match=r"optimizer: .*velocity0 has shape"):
            checkpoint.load(path)

    def test_optimizer_arrays_without_an_optimizer(self, saved):
        path, _, _ = saved
        arrays = arrays_of(path)
        write_npz(path, **with_metadata(arrays, {**metadata_of(arrays), "optimizer": None}))
        with pytest.raises(ValueError, match="no optimizer"):
            checkpoint.load(path)

    def test_message_names_the_file(self, tmp_path):
        path = tmp_path / "weird name.npz"
        path.write_bytes(b"PK\x03\x04 not really a zip")
        with pytest.raises(ValueError) as error:
            checkpoint.load(path)
        assert str(path) in str(error.value)


class TestDataset:
    """Checkpoints record the data set they were trained on (figures and resumes read it back)."""

    def test_round_trip(self, tmp_path):
        model, optimizer = trained(SGD(lr=0.1))
        path = checkpoint.save(tmp_path / "m.npz", model, optimizer, dataset="fashion-mnist")
        assert checkpoint.load(path).dataset == "fashion-mnist"

    def test_not_given_is_none(self, saved):
        path, _, _ = saved
        assert checkpoint.load(path).dataset is None

    def test_a_checkpoint_from_before_the_field_loads_with_none(self, saved):
        path, model, _ = saved
        arrays = arrays_of(path)
        metadata = metadata_of(arrays)
        del metadata["dataset"]
        for key in ("input_dropout", "max_norm"):  # the model options came later too
            del metadata["model"][key]
        write_npz(path, **with_metadata(arrays, metadata))
        loaded = checkpoint.load(path)
        assert loaded.dataset is None
        assert loaded.model.input_dropout == 0.0 and loaded.model.max_norm is None
        for a, b in zip(loaded.model.params, model.params, strict=True):
            np.testing.assert_array_equal(a, b)

    @pytest.mark.parametrize("bad", ["", "   ", 7, ["mnist"], "line\nbreak"])
    def test_save_refuses_a_bad_name_before_writing(self, tmp_path, bad):
        with pytest.raises(ValueError, match="dataset"):
            checkpoint.save(tmp_path / "m.npz", MLP([2, 2]), dataset=bad)
        assert not (tmp_path / "m.npz").exists()

    def test_model_options_round_trip(self, tmp_path):
        model = MLP([4, 6, 2], dropout=0.5, input_dropout=0.2, max_norm=3.5, seed=1)
        loaded = checkpoint.load(checkpoint.save(tmp_path / "m.npz", model)).model
        assert loaded.config() == model.config()
