"""Shared test set-up: hypothesis profiles and paths to the real data sets."""

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# "ci" (the default) is deterministic: the same examples on every run and machine, so a red CI is
# reproducible. "deep" searches much harder; run it by hand: HYPOTHESIS_PROFILE=deep make test.
settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile("deep", max_examples=2000, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

REPO = Path(__file__).resolve().parents[1]
# ../shared/ sits beside the checkout on the developers' machines and in CI; a user's clone has none.
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture
def rng():
    """A fresh, seeded generator per test: deterministic and independent of test order."""
    return np.random.default_rng(20150309)  # the date Hinton et al. posted the paper


# ------------------------------------------------------------- models shared by the figure and sweep tests
# Tiny budgets (a teacher of 2 epochs, students of 1), trained once per session: the tests that use them
# check plumbing and plotted numbers, not accuracy.


@pytest.fixture(scope="session")
def teacher():
    """A 64-16-10 digits teacher after 2 epochs."""
    pytest.importorskip("sklearn")
    from kdcore.sweeps import train_teacher

    return train_teacher(hidden=(16,), epochs=2)


@pytest.fixture(scope="session")
def sure_teacher():
    """A 64-32-10 teacher after 10 epochs: confident enough to have look-alikes below 1 % at T = 1."""
    pytest.importorskip("sklearn")
    from kdcore.sweeps import train_teacher

    return train_teacher(hidden=(32,), epochs=10)


@pytest.fixture(scope="session")
def sweep(teacher):
    """A 2 × 2 × 2 (T, α, seed) sweep record, its axes deliberately unsorted."""
    from kdcore.sweeps import run_sweep

    return run_sweep(
        temperatures=[4.0, 1.0],
        alphas=[0.5, 0.0],
        seeds=[0, 1],
        teacher=teacher,
        student_hidden=(4,),
        epochs=1,
    )


@pytest.fixture(scope="session")
def capacity(teacher):
    """A width sweep over widths 2 and 4, two seeds."""
    from kdcore.sweeps import run_capacity

    return run_capacity(widths=(2, 4), teacher=teacher, seeds=(0, 1), epochs=1)


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No $KDCORE_DATA, an empty home, and an empty stand-in for /usr/share/datasets."""
    home, system = tmp_path / "home", tmp_path / "system"
    home.mkdir()
    system.mkdir()
    monkeypatch.delenv("KDCORE_DATA", raising=False)
    monkeypatch.setenv("HOME", str(home))
    from kdcore.data import locate  # imported here: most test files never need kdcore.data

    monkeypatch.setattr(locate, "_SYSTEM_DATA_DIR", system)
    return {"home": home, "cache": home / ".cache" / "kdcore", "system": system, "tmp": tmp_path}
