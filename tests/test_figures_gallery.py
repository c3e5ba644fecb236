"""kdcore.figures.gallery: write_all (``kdcore figures``) writes every figure, with or without inputs."""

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")  # the digits data set

from kdcore import checkpoint, figures

# Small enough that write_all takes a few seconds; every code path of the full budget still runs.
TINY = figures.Budget(
    teacher_hidden=(16,),
    teacher_epochs=2,
    student_epochs=1,
    sweep_temperatures=(1.0, 4.0),
    sweep_alphas=(0.5,),
    sweep_seeds=(0,),
    sweep_student_hidden=(4,),
    capacity_widths=(2, 4),
    capacity_seeds=(0,),
)


class TestWriteAll:
    def test_writes_every_figure_and_the_sweep(self, tmp_path):
        paths = figures.write_all(tmp_path / "out", budget=TINY)
        expected = [tmp_path / "out" / f"{name}.png" for name in figures.FIGURES]
        assert paths == [*expected, tmp_path / "out" / "temperature_sweep.json"]
        for path in paths[:-1]:
            assert path.stat().st_size > 10_000
        assert figures.load_sweep(paths[-1])["temperatures"] == [1.0, 4.0]

    def test_with_a_checkpoint_and_a_sweep_file(self, tmp_path, teacher, sweep):
        teacher_path = checkpoint.save(tmp_path / "teacher.npz", teacher)
        sweep_path = figures.save_sweep(sweep, tmp_path / "sweep.json")
        paths = figures.write_all(
            tmp_path / "svg", "svg", checkpoint=teacher_path, sweep_json=sweep_path, budget=TINY
        )
        assert paths == [tmp_path / "svg" / f"{name}.svg" for name in figures.FIGURES]
        assert all(path.read_text().startswith("<?xml") for path in paths)

    def test_bad_format_and_bad_sweep(self, tmp_path):
        with pytest.raises(ValueError, match="fmt"):
            figures.write_all(tmp_path, "jpg")
        bad = tmp_path / "bad.json"
        bad.write_text("{}")
        with pytest.raises(ValueError, match=r"bad\.json"):
            figures.write_all(tmp_path / "out", sweep_json=bad, budget=TINY)
