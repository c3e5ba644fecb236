"""kdcore._arrays: the shared validators and the one error rule every module follows.

Wrong *type* → TypeError; right type, wrong *value* → ValueError; the message names the parameter and the
value. The same parameter gets the same error wherever it is checked (issue: ``MLP(seed="a")`` used to raise
ValueError where ``make_synthetic(seed="a")`` raised TypeError).
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from kdcore import MLP
from kdcore._arrays import check_choice, check_int, check_real
from kdcore.data import make_synthetic
from kdcore.optim import SGD


class TestCheckInt:
    @pytest.mark.parametrize("value", [0, 7, np.int64(3), np.uint8(2)])
    def test_accepts_integers(self, value):
        assert check_int(value, "n", 0) == int(value) and type(check_int(value, "n", 0)) is int

    @pytest.mark.parametrize("value", ["a", 1.5, 2.0, True, None, np.float64(1.0)])
    def test_wrong_type(self, value):
        with pytest.raises(TypeError, match=re.escape(f"n must be an integer ≥ 0, got n={value!r}")):
            check_int(value, "n", 0)

    def test_wrong_value(self):
        with pytest.raises(ValueError, match="n must be an integer ≥ 1, got n=0"):
            check_int(0, "n", 1)


class TestCheckReal:
    def test_interval(self):
        assert check_real(0, "x", 0.0, 1.0) == 0.0
        with pytest.raises(ValueError, match=r"x must be a number in \(0, 1\], got x=0"):
            check_real(0, "x", 0.0, 1.0, open_low=True)
        with pytest.raises(ValueError, match="got x=nan"):
            check_real(math.nan, "x")
        with pytest.raises(ValueError, match="got x=inf"):
            check_real(math.inf, "x")

    @pytest.mark.parametrize("value", ["0.5", None, True, [0.5]])
    def test_wrong_type(self, value):
        with pytest.raises(TypeError, match="x must be a number"):
            check_real(value, "x", 0.0, 1.0)


class TestCheckChoice:
    def test_rule(self):
        assert check_choice("mean", "reduction", ("mean", "sum")) == "mean"
        with pytest.raises(ValueError, match="got reduction='batchmean'"):
            check_choice("batchmean", "reduction", ("mean", "sum"))
        with pytest.raises(TypeError, match="got reduction=None"):
            check_choice(None, "reduction", ("mean", "sum"))


class TestOneRuleAcrossModules:
    @pytest.mark.parametrize(
        ("value", "error"), [("a", TypeError), (1.5, TypeError), (True, TypeError), (-1, ValueError)]
    )
    def test_seed(self, value, error):
        for make in (lambda: MLP([3, 2], seed=value), lambda: make_synthetic(10, seed=value)):
            with pytest.raises(error, match=f"seed=({value!r})"):
                make()

    def test_dropout_and_learning_rate(self):
        with pytest.raises(TypeError, match=re.escape("dropout='0.5'")):
            MLP([3, 2], dropout="0.5")
        with pytest.raises(ValueError, match=re.escape("dropout=1.0")):
            MLP([3, 2], dropout=1.0)
        with pytest.raises(TypeError, match=re.escape("lr='0.1'")):
            SGD(lr="0.1")
        with pytest.raises(ValueError, match=re.escape("lr=-0.1")):
            SGD(lr=-0.1)
