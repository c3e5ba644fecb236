"""kdcore.sweep_file: the sweep record as validated JSON, written atomically and byte-reproducibly."""

import json

import pytest

pytest.importorskip("sklearn")  # the digits data set

from kdcore import sweep_file


class TestSweepFile:
    def test_round_trip_and_same_bytes(self, sweep, tmp_path):
        path = sweep_file.save_sweep(sweep, tmp_path / "sweep.json")
        assert sweep_file.load_sweep(path) == sweep
        again = sweep_file.save_sweep(sweep_file.load_sweep(path), tmp_path / "again.json")
        assert path.read_bytes() == again.read_bytes()
        assert [p.name for p in tmp_path.iterdir()] != []  # no temporary files left behind
        assert sorted(p.name for p in tmp_path.iterdir()) == ["again.json", "sweep.json"]

    def test_file_mode_follows_the_umask(self, sweep, tmp_path):
        plain = tmp_path / "plain.txt"
        plain.write_text("")
        saved = sweep_file.save_sweep(sweep, tmp_path / "sweep.json")
        assert saved.stat().st_mode == plain.stat().st_mode

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            (lambda r: r.update(format="something-else"), "'format'"),
            (lambda r: r.update(format_version=3), "'format_version'"),
            (lambda r: r.pop("evaluation"), "'evaluation'"),
            (lambda r: r.update(evaluation={"folds": 0, "images": 451}), "'evaluation'"),
            (lambda r: r.update(evaluation={"folds": 1}), "'evaluation'"),
            (lambda r: r.pop("alphas"), "missing"),
            (lambda r: r.update(temperatures=[4.0, -1.0]), "'temperatures'"),
            (lambda r: r.update(temperatures=[4.0, 4.0]), "repeat"),
            (lambda r: r.update(alphas=[0.5, 1.5]), "'alphas'"),
            (lambda r: r.update(seeds=[0, True]), "'seeds'"),
            (lambda r: r["accuracy"].pop(), "shape"),
            (lambda r: r["accuracy"][0][0].append(0.5), "shape"),
            (lambda r: r["accuracy"][0][0].__setitem__(0, 1.5), "in \\[0, 1\\]"),
            (lambda r: r.update(baseline_accuracy=[0.5]), "'baseline_accuracy'"),
            (lambda r: r.update(teacher={"sizes": [64, 10]}), "'teacher'"),
            (lambda r: r.update(student={"sizes": [64]}), "'student'"),
            (lambda r: r.update(dataset=7), "'dataset'"),
        ],
    )
    def test_bad_file_raises_naming_it(self, sweep, tmp_path, change, message):
        record = json.loads(json.dumps(sweep))
        change(record)
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(record))
        with pytest.raises(ValueError, match=message) as error:
            sweep_file.load_sweep(path)
        assert str(path) in str(error.value)
        with pytest.raises(ValueError, match=message):
            sweep_file.save_sweep(record, tmp_path / "never.json")
        assert not (tmp_path / "never.json").exists()

    def test_not_json_or_not_an_object(self, tmp_path):
        path = tmp_path / "broken.json"
        path.write_text('{"format": "kdcore-sweep",')
        with pytest.raises(ValueError, match=r"broken\.json.*not JSON"):
            sweep_file.load_sweep(path)
        path.write_text("[1, 2]")
        with pytest.raises(ValueError, match=r"broken\.json.*JSON object"):
            sweep_file.load_sweep(path)
        path.write_bytes(b"\xff\xfe\x00")
        with pytest.raises(ValueError, match=r"broken\.json"):
            sweep_file.load_sweep(path)
        with pytest.raises(FileNotFoundError):
            sweep_file.load_sweep(tmp_path / "absent.json")

    def test_extra_keys_are_kept(self, sweep, tmp_path):
        record = dict(sweep, note="made by hand")
        assert (
            sweep_file.load_sweep(sweep_file.save_sweep(record, tmp_path / "s.json"))["note"]
            == "made by hand"
        )

    def test_a_version_1_file_is_still_read(self, sweep, tmp_path):
        # kdcore 0.1 wrote no "evaluation" (it always used the test split, and did not record its size).
        record = json.loads(json.dumps(sweep))
        record["format_version"] = 1
        del record["evaluation"]
        path = tmp_path / "old.json"
        path.write_text(json.dumps(record))
        assert sweep_file.load_sweep(path)["evaluation"] is None
