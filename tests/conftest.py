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
