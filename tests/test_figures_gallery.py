"""kdcore.figures.gallery: write_all (``kdcore figures``) writes every figure, with or without inputs."""

import dataclasses
import json

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")  # the digits data set

from kdcore import checkpoint, figures, sweep_file

# Small enough that write_all takes a few seconds; every code path of the full budget still runs.
# The teacher is trained a little longer than elsewhere: dark_knowledge needs one sure enough of itself to
# hide its look-alikes below 1 % at T = 1.
TINY = figures.Budget(
    teacher_hidden=(32,),
    teacher_epochs=10,
    student_epochs=1,
    sweep_temperatures=(1.0, 4.0),
    sweep_alphas=(0.5,),
    sweep_seeds=(0,),
    sweep_student_hidden=(4,),
    capacity_widths=(2, 4),
    capacity_seeds=(0,),
    divergence_betas=(0.5, 0.99),
    divergence_shown=(0.99,),
    divergence_steps=20,
)


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    """write_all with the tiny budget and no inputs: (its folder, the paths it returned)."""
    out = tmp_path_factory.mktemp("gallery")
    return out, figures.write_all(out, budget=TINY)


class TestWriteAll:
    def test_writes_every_figure_and_the_data_behind_them(self, gallery, tmp_path):
        out, paths = gallery
        data = [
            out / "dark_knowledge.json",
            out / "capacity_curve.json",
            out / "temperature_sweep.json",
            out / "divergence_fits.json",
        ]
        assert paths == [*(out / f"{name}.png" for name in figures.FIGURES), *data]
        for path in paths[: len(figures.FIGURES)]:
            assert path.stat().st_size > 10_000
        assert sweep_file.load_sweep(out / "temperature_sweep.json")["temperatures"] == [1.0, 4.0]
        # The saved data redraw the same figures, byte for byte.
        examples = json.loads((out / "dark_knowledge.json").read_text())
        capacity = json.loads((out / "capacity_curve.json").read_text())
        fits = json.loads((out / "divergence_fits.json").read_text())
        assert fits["steps"] == TINY.divergence_steps
        for name, figure in [
            ("divergence_fits", figures.divergence_fits(fits)),
            ("dark_knowledge", figures.dark_knowledge(examples)),
            ("capacity_curve", figures.capacity_curve(capacity)),
            ("temperature_sweep", figures.temperature_sweep(out / "temperature_sweep.json")),
        ]:
            again = figures.save_figure(figure, tmp_path / f"{name}.png")
            assert again.read_bytes() == (out / f"{name}.png").read_bytes(), name

    def test_same_inputs_same_bytes(self, gallery, tmp_path):
        again = figures.write_all(tmp_path, budget=TINY)
        assert [p.read_bytes() for p in again] == [p.read_bytes() for p in gallery[1]]

    def test_cross_validated_sweep(self, tmp_path):
        budget = dataclasses.replace(TINY, sweep_folds=2, sweep_temperatures=(4.0,), capacity_widths=(2,))
        figures.write_all(tmp_path, budget=budget)
        record = sweep_file.load_sweep(tmp_path / "temperature_sweep.json")
        assert record["evaluation"] == {"folds": 2, "images": 1797}

    def test_with_a_checkpoint_and_a_sweep_file(self, tmp_path, sure_teacher, sweep):
        teacher_path = checkpoint.save(tmp_path / "teacher.npz", sure_teacher)
        sweep_path = sweep_file.save_sweep(sweep, tmp_path / "sweep.json")
        out = tmp_path / "svg"
        paths = figures.write_all(out, "svg", checkpoint=teacher_path, sweep_json=sweep_path, budget=TINY)
        assert paths == [
            *(out / f"{name}.svg" for name in figures.FIGURES),
            out / "dark_knowledge.json",
            out / "capacity_curve.json",
            out / "divergence_fits.json",
        ]
        assert all(path.read_text().startswith("<?xml") for path in paths[: len(figures.FIGURES)])
        capacity = json.loads((out / "capacity_curve.json").read_text())
        assert capacity["teacher_sizes"] == [64, 32, 10]  # the checkpoint's

    def test_bad_format_and_bad_sweep(self, tmp_path):
        with pytest.raises(ValueError, match="fmt"):
            figures.write_all(tmp_path, "jpg")
        bad = tmp_path / "bad.json"
        bad.write_text("{}")
        with pytest.raises(ValueError, match=r"bad\.json"):
            figures.write_all(tmp_path / "out", sweep_json=bad, budget=TINY)
