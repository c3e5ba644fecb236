"""Tests of kdcore.data.locate: the look-up order of the IDX files, and the message when they are nowhere."""

import re
from pathlib import Path

import pytest
from idx_files import IDX_STEMS, write_split

from kdcore.data import load, locate


class TestLookUpOrder:
    """Each candidate directory gets different labels, so the labels tell which one was read."""

    def candidates(self, isolated, monkeypatch):
        env = isolated["tmp"] / "env"
        monkeypatch.setenv("KDCORE_DATA", str(env))
        return {
            "env": env,
            "env/name": env / "mnist",
            "cache": isolated["cache"] / "mnist",
            "system": isolated["system"] / "mnist",
        }

    def test_order_env_then_env_name_then_cache_then_system(self, isolated, monkeypatch):
        dirs = self.candidates(isolated, monkeypatch)
        for label, directory in enumerate(dirs.values()):
            write_split(directory, "test", [label])
        for label, directory in enumerate(dirs.values()):
            _, labels = load("mnist", "test")
            assert labels.tolist() == [label], f"expected the copy in {directory}"
            for stem in IDX_STEMS["test"]:  # remove this copy: the next one in line must be found
                (directory / f"{stem}.gz").unlink()
        with pytest.raises(FileNotFoundError):
            load("mnist", "test")

    def test_system_directory_is_debians(self):
        assert Path("/usr/share/datasets") == locate._SYSTEM_DATA_DIR

    def test_data_dir_comes_first(self, isolated, monkeypatch):
        dirs = self.candidates(isolated, monkeypatch)
        for label, directory in enumerate(dirs.values()):
            write_split(directory, "test", [label])
        explicit = isolated["tmp"] / "explicit"
        write_split(explicit, "test", [9])
        assert load("mnist", "test", data_dir=explicit)[1].tolist() == [9]
        assert load("mnist", "test", data_dir=str(explicit))[1].tolist() == [9]

    def test_data_dir_name_subdirectory(self, isolated):
        explicit = isolated["tmp"] / "datasets"
        write_split(explicit / "mnist", "test", [8])
        write_split(explicit / "fashion-mnist", "test", [7])
        assert load("mnist", "test", data_dir=explicit)[1].tolist() == [8]
        assert load("fashion-mnist", "test", data_dir=explicit)[1].tolist() == [7]

    def test_data_dir_is_exclusive(self, isolated):
        """An explicit path with nothing in it fails, even though a copy sits in the cache."""
        write_split(isolated["cache"] / "mnist", "test", [1])
        empty = isolated["tmp"] / "typo"
        with pytest.raises(FileNotFoundError, match=re.escape(str(empty))) as info:
            load("mnist", "test", data_dir=empty)
        assert str(isolated["cache"] / "mnist") not in str(info.value).split("Searched")[1]

    def test_data_dir_expands_tilde(self, isolated):
        write_split(isolated["home"] / "my-data", "test", [4])
        assert load("mnist", "test", data_dir="~/my-data")[1].tolist() == [4]

    def test_env_expands_tilde_and_ignores_empty(self, isolated, monkeypatch):
        write_split(isolated["home"] / "env-data", "test", [5])
        write_split(isolated["system"] / "mnist", "test", [6])
        monkeypatch.setenv("KDCORE_DATA", "~/env-data")
        assert load("mnist", "test")[1].tolist() == [5]
        monkeypatch.setenv("KDCORE_DATA", "")
        assert load("mnist", "test")[1].tolist() == [6]

    def test_one_directory_must_hold_both_files_of_a_split(self, isolated, monkeypatch):
        env = isolated["tmp"] / "env"
        monkeypatch.setenv("KDCORE_DATA", str(env))
        write_split(env, "test", [1])
        (env / "t10k-labels-idx1-ubyte.gz").unlink()
        write_split(isolated["cache"] / "mnist", "test", [2])
        assert load("mnist", "test")[1].tolist() == [2]  # env has images only: skipped

    def test_splits_are_found_independently(self, isolated, monkeypatch):
        write_split(isolated["cache"] / "mnist", "test", [1])
        write_split(isolated["system"] / "mnist", "train", [2])
        assert load("mnist", "test")[1].tolist() == [1]
        assert load("mnist", "train")[1].tolist() == [2]

    def test_data_sets_do_not_mix(self, isolated):
        write_split(isolated["cache"] / "fashion-mnist", "test", [1])
        with pytest.raises(FileNotFoundError):
            load("mnist", "test")


class TestNotFoundMessage:
    def test_says_which_files_to_put_where(self, isolated):
        with pytest.raises(FileNotFoundError) as info:
            load("mnist", "train")
        message = str(info.value)
        assert "train-images-idx3-ubyte.gz" in message
        assert "train-labels-idx1-ubyte.gz" in message
        assert "t10k" not in message  # only the split that was asked for
        assert f"Put them in {isolated['cache'] / 'mnist'}" in message
        assert "$KDCORE_DATA" in message
        assert "kdcore data download mnist" in message
        assert str(isolated["system"] / "mnist") in message  # every searched directory is listed

    def test_lists_what_each_directory_lacks(self, isolated):
        write_split(isolated["cache"] / "mnist", "test", [1])
        (isolated["cache"] / "mnist" / "t10k-images-idx3-ubyte.gz").unlink()
        with pytest.raises(FileNotFoundError) as info:
            load("mnist", "test")
        lines = str(info.value).splitlines()
        assert f"    {isolated['cache'] / 'mnist'}  (missing t10k-images-idx3-ubyte(.gz))" in lines
        assert f"    {isolated['system'] / 'mnist'}  (no such directory)" in lines

    def test_fashion_mnist_mentions_the_debian_package(self, isolated):
        with pytest.raises(FileNotFoundError, match="kdcore data download fashion-mnist") as info:
            load("fashion-mnist", "test")
        assert "dataset-fashion-mnist" in str(info.value)
