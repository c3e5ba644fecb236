"""kdcore.verify.binding and the command line around it: real code checked as it is written.

A loss is bound by parameter name (with the common aliases), classes are constructed (one instance per
temperature when T is a constructor argument), and anything that cannot be called as a loss is a usage
error — exit code 2 on the command line — never a verdict that the loss is wrong.
"""

from __future__ import annotations

import functools
import io
import textwrap

import numpy as np
import pytest

import kdcore
from kdcore.cli import main
from kdcore.verify import check_distillation_loss, check_soft_loss, run_check
from kdcore.verify.binding import ALIASES, BindingError, bind


def soft(student_logits, teacher_logits, T):
    return T**2 * kdcore.kl_divergence(student_logits, teacher_logits, T)


def soft_grad(student_logits, teacher_logits, T):
    return T**2 * kdcore.kl_divergence_grad(student_logits, teacher_logits, T)


def called_as(report) -> str:
    (note,) = [n for n in report.notes if n.code == "called-as"]
    return note.message


class TestBindByName:
    def test_keyword_arguments_in_any_order(self):
        seen = {}

        def kd(student_logits, teacher_logits, labels, alpha=0.1, T=10.0):
            seen.setdefault("pairs", set()).add((T, alpha))
            return kdcore.distillation_loss(student_logits, teacher_logits, labels, T, alpha)

        def kd_grad(student_logits, teacher_logits, labels, alpha=0.1, T=10.0):
            return kdcore.distillation_loss_grad(student_logits, teacher_logits, labels, T, alpha)

        report = check_distillation_loss(kd, "numpy", grad_fn=kd_grad)
        assert report.ok, report
        # every (T, α) of the battery reached the right parameter: α never exceeds 1, T takes 20
        assert {case.T for case in report.cases} == {T for T, _ in seen["pairs"]}
        assert all(0.0 <= alpha <= 1.0 for _, alpha in seen["pairs"])

    def test_aliases(self):
        def kd(y_t, tau, y_s):  # teacher first, temperature in the middle
            return soft(y_s, y_t, tau)

        binding = bind(kd, "soft")
        assert binding.roles == {
            "student_logits": ("call", "y_s"),
            "teacher_logits": ("call", "y_t"),
            "T": ("call", "tau"),
        }
        assert check_soft_loss(kd, "numpy", grad_fn=lambda y_t, tau, y_s: soft_grad(y_s, y_t, tau)).ok

    def test_aliases_are_distinct(self):
        names = [name for aliases in ALIASES.values() for name in aliases]
        assert len(names) == len(set(names))

    def test_unrecognised_names_bind_by_position_and_say_so(self):
        report = check_soft_loss(
            lambda a, b, c: soft(a, b, c), "numpy", grad_fn=lambda a, b, c: soft_grad(a, b, c)
        )
        assert report.ok
        note = next(n for n in report.notes if n.code == "called-as")
        assert note.evidence == {"bound_by_position": ["a", "b", "c"]}

    def test_ambiguous_names_are_refused(self):
        with pytest.raises(BindingError, match="ambiguous: parameters 'logits' and 'outputs'"):
            check_soft_loss(lambda logits, outputs, T: 0.0, "numpy")

    def test_bind_resolves_the_ambiguity(self):
        report = check_soft_loss(
            lambda logits, outputs, T: soft(outputs, logits, T),
            "numpy",
            roles={"student_logits": "outputs", "teacher_logits": "logits"},
            grad_fn=lambda logits, outputs, T: soft_grad(outputs, logits, T),
        )
        assert report.ok

    def test_unknown_role_in_bind(self):
        with pytest.raises(BindingError, match="not 'alpha'"):
            check_soft_loss(soft, "numpy", roles={"alpha": "x"})

    def test_a_parameter_without_a_value_is_refused(self):
        def kd(student_logits, teacher_logits, T, reduction):
            return soft(student_logits, teacher_logits, T)

        with pytest.raises(BindingError, match=r"parameter 'reduction' .* --arg reduction=VALUE"):
            check_soft_loss(kd, "numpy")
        assert check_soft_loss(kd, "numpy", args={"reduction": "batchmean"}).ok

    def test_arg_for_an_unknown_parameter(self):
        with pytest.raises(BindingError, match="has no parameter 'redution'"):
            check_soft_loss(soft, "numpy", args={"redution": "mean"})

    def test_arg_fixing_the_temperature_runs_the_battery_there(self):
        report = check_soft_loss(soft, "numpy", args={"T": 3.0}, grad_fn=soft_grad)
        assert report.ok and {case.T for case in report.cases} == {3.0}
        assert "fixed-parameters" in {note.code for note in report.notes}

    def test_temperature_built_in(self):
        def kd(student_logits, teacher_logits):
            return soft(student_logits, teacher_logits, 2.0)

        with pytest.raises(BindingError, match=r"which parameter .* is T.*--T VALUE"):
            check_soft_loss(kd, "numpy")
        report = check_soft_loss(kd, "numpy", T=2.0)
        assert report.ok and {case.T for case in report.cases} == {2.0}
        assert check_soft_loss(kd, "numpy", T=3.0).codes == ("value-mismatch",)

    def test_fixed_temperature_one_is_said_to_hide_t2(self):
        report = check_soft_loss(lambda z, v: kdcore.kl_divergence(z, v), "numpy", T=1.0)
        assert report.ok  # KL alone, at T = 1, is T²·KL
        note = next(n for n in report.notes if n.code == "fixed-parameters")
        assert "cannot be detected" in note.message

    def test_calling_convention_is_shown(self):
        def kd(teacher_logits, student_logits, *, temperature=4.0, reduction="batchmean"):
            return soft(student_logits, teacher_logits, temperature)

        assert called_as(check_soft_loss(kd, "numpy")) == (
            "kd(student_logits=student_logits, teacher_logits=teacher_logits, temperature=T)"
        )


class TestPartialsMethodsClasses:
    def test_partial_keyword_fixes_the_temperature(self):
        def kd(student_logits, teacher_logits, T):
            return soft(student_logits, teacher_logits, T)

        report = check_soft_loss(functools.partial(kd, T=2.0), "numpy")
        assert report.ok and {case.T for case in report.cases} == {2.0}

    def test_partial_of_another_argument(self):
        def kd(student_logits, teacher_logits, T, scale):
            return scale * soft(student_logits, teacher_logits, T)

        assert check_soft_loss(functools.partial(kd, scale=1.0), "numpy").ok
        assert check_soft_loss(functools.partial(kd, scale=0.5), "numpy").codes == ("value-mismatch",)

    def test_class_with_the_temperature_in_its_constructor(self):
        built = []

        class DistillKL:
            def __init__(self, T):
                built.append(T)
                self.T = T

            def __call__(self, y_s, y_t):
                return soft(y_s, y_t, self.T)

        report = check_soft_loss(DistillKL, "numpy")
        assert report.ok
        assert sorted(set(built)) == sorted({spec.T for spec in kdcore.verify.BATTERY})
        assert called_as(report) == "DistillKL(T=T)(y_s=student_logits, y_t=teacher_logits)"

    def test_class_with_init_arguments(self):
        class KD:
            def __init__(self, temperature, scale):
                self.temperature, self.scale = temperature, scale

            def __call__(self, logits, teacher_logits):
                return self.scale * soft(logits, teacher_logits, self.temperature)

        with pytest.raises(BindingError, match="needs the constructor argument 'scale'"):
            check_soft_loss(KD, "numpy")
        assert check_soft_loss(KD, "numpy", init={"scale": 1.0}).ok
        fixed = check_soft_loss(KD, "numpy", init={"scale": 1.0, "temperature": 4.0})
        assert fixed.ok and {case.T for case in fixed.cases} == {4.0}

    def test_failing_constructor_is_a_usage_error(self):
        class Broken:
            def __init__(self, T):
                raise RuntimeError("needs a GPU")

            def __call__(self, y_s, y_t):
                return 0.0

        with pytest.raises(BindingError, match=r"constructing Broken.*RuntimeError: needs a GPU"):
            check_soft_loss(Broken, "numpy")

    def test_instance_temperature_is_read_from_its_attribute(self):
        class DistillKL:
            def __init__(self, temperature):
                self.temperature = temperature

            def __call__(self, y_s, y_t):
                return soft(y_s, y_t, self.temperature)

        report = check_soft_loss(DistillKL(5.0), "numpy")
        assert report.ok and {case.T for case in report.cases} == {5.0}

    def test_bound_method(self):
        class Trainer:
            def __init__(self):
                self.calls = 0

            def kd_loss(self, student_logits, teacher_logits, T):
                self.calls += 1
                return soft(student_logits, teacher_logits, T)

        trainer = Trainer()
        assert check_soft_loss(trainer.kd_loss, "numpy").ok
        assert trainer.calls > 0

    def test_unbound_method_means_its_class(self):
        report = check_soft_loss(ModuleLevelLoss.forward, "numpy")
        assert report.ok
        assert called_as(report) == "ModuleLevelLoss(T=T).forward(y_s=student_logits, y_t=teacher_logits)"

    def test_local_unbound_method_is_refused(self):
        class Local:
            def forward(self, y_s, y_t, T):
                return 0.0

        with pytest.raises(BindingError, match="first parameter is self"):
            check_soft_loss(Local.forward, "numpy")

    def test_a_class_called_as_a_function_is_a_usage_error(self):
        def factory(student_logits, teacher_logits, T):
            return lambda: 0.0  # builds a loss instead of computing one

        with pytest.raises(BindingError, match="returned 'function', not a number"):
            check_soft_loss(factory, "numpy")


class ModuleLevelLoss:
    def __init__(self, T=2.0):
        self.T = T

    def forward(self, y_s, y_t):
        return soft(y_s, y_t, self.T)


# ------------------------------------------------------------------------------------------------------
# The command line

LOSSES = """
import functools
import numpy as np

def log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))

def kl(s, t, T):
    log_p, log_q = log_softmax(s / T), log_softmax(t / T)
    return T**2 * np.mean(np.sum(np.exp(log_q) * (log_q - log_p), axis=-1))

def hard(s, y):
    return -np.mean(log_softmax(s)[np.arange(len(y)), y])

def kd_loss(student_logits, teacher_logits, labels, alpha=0.1, T=10.0):
    return alpha * hard(student_logits, labels) + (1 - alpha) * kl(student_logits, teacher_logits, T)

def soft_weighted(student_logits, teacher_logits, labels, alpha=0.1, T=10.0):
    return (1 - alpha) * hard(student_logits, labels) + alpha * kl(student_logits, teacher_logits, T)

def unscaled(y_s, y_t, tau):
    return kl(y_s, y_t, tau) / tau**2

def ambiguous(logits, outputs, T):
    return kl(logits, outputs, T)

class KDLoss:
    def __init__(self, temperature=4.0, alpha=0.9):
        self.temperature, self.alpha = temperature, alpha
    def forward(self, student_logits, teacher_logits, labels):
        return self.alpha * hard(student_logits, labels) + (1 - self.alpha) * kl(
            student_logits, teacher_logits, self.temperature)

class Broken:
    def __init__(self, T):
        raise RuntimeError("no GPU here")
    def __call__(self, y_s, y_t):
        return 0.0

partial_kd = functools.partial(kd_loss, alpha=0.5)
"""


@pytest.fixture
def losses(tmp_path):
    path = tmp_path / "real_losses.py"
    path.write_text(textwrap.dedent(LOSSES), encoding="utf-8")
    return path


def cli(capsys, *argv):
    code = main(["check", *argv, "--framework", "numpy"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


class TestCommandLine:
    def test_keyword_argument_loss_without_a_wrapper(self, losses, capsys):
        code, output = cli(capsys, f"{losses}:kd_loss", "--kind", "distillation")
        assert code == 0, output
        assert "called as   kd_loss(student_logits=student_logits, teacher_logits=teacher_logits" in output

    def test_class_with_init(self, losses, capsys):
        code, output = cli(capsys, f"{losses}:KDLoss", "--kind", "distillation")
        assert code == 0, output
        assert "KDLoss(temperature=T, alpha=alpha).forward(" in output
        code, output = cli(
            capsys, f"{losses}:KDLoss", "--init", "temperature=4", "alpha=0.9", "--kind", "distillation"
        )
        assert code == 0 and "[fixed-parameters]" in output, output

    def test_class_forward_target(self, losses, capsys):
        code, output = cli(capsys, f"{losses}:KDLoss.forward", "--kind", "distillation")
        assert code == 0, output

    def test_conventions(self, losses, capsys):
        code, output = cli(capsys, f"{losses}:soft_weighted", "--kind", "distillation")
        assert code == 1 and "[alpha-swapped]" in output and "--alpha-on soft" in output
        assert cli(capsys, f"{losses}:soft_weighted", "--kind", "distillation", "--alpha-on", "soft")[0] == 0
        assert cli(capsys, f"{losses}:unscaled")[0] == 1
        assert cli(capsys, f"{losses}:unscaled", "--no-t2")[0] == 0

    def test_partial_target(self, losses, capsys):
        code, output = cli(capsys, f"{losses}:partial_kd", "--kind", "distillation")
        assert code == 0 and "alpha = 0.5 fixed" in output, output

    def test_arg_bind_and_fixed_values(self, losses, capsys):
        assert cli(capsys, f"{losses}:kd_loss", "--kind", "distillation", "--arg", "alpha=0.3")[0] == 0
        code, output = cli(capsys, f"{losses}:ambiguous")
        assert code == 2 and "--bind student_logits=NAME" in output
        assert cli(capsys, f"{losses}:ambiguous", "--bind", "student_logits=logits")[0] == 0

    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            (["{file}:Broken"], "constructing Broken(T=0.5) failed: RuntimeError: no GPU here"),
            (["{file}:kd_loss"], "parameter 'labels' of kd_loss"),  # a distillation loss checked as soft
            (["{file}:kd_loss", "--arg", "nope=1"], "has no parameter 'nope'"),
            (["{file}:kd_loss", "--arg", "oops"], "--arg takes NAME=VALUE"),
            (["{file}:unscaled", "--alpha", "0.5"], "--alpha is for --kind distillation or dkd"),
            (["{file}:unscaled", "--T", "-1"], "T must be a positive finite number"),
            (["{file}:KDLoss", "--init", "temperature=4"], "check it with --kind distillation"),
        ],
    )
    def test_usage_errors_exit_2_in_one_line(self, losses, capsys, argv, message):
        argv = [a.format(file=losses) for a in argv]
        code, output = cli(capsys, *argv)
        assert code == 2, output
        assert len(output.strip().splitlines()) == 1 and "Traceback" not in output
        assert message in output, output

    def test_help_explains_the_calling_convention(self, capsys):
        with pytest.raises(SystemExit) as exit_status:
            main(["check", "--help"])
        assert exit_status.value.code == 0
        text = capsys.readouterr().out
        for needle in (
            "passed by NAME",
            "teacher_logits, y_t",
            "--init T=4 alpha=0.9",
            "--alpha-on soft",
            "exit",
        ):
            assert needle in text

    def test_run_check_passes_the_options(self, losses):
        stream = io.StringIO()
        code = run_check(f"{losses}:unscaled", "numpy", "soft", stream=stream, t2_scaling=False)
        assert code == 0, stream.getvalue()


# ------------------------------------------------------------------------------------------------------
# Real PyTorch code, from a file, as a new user would point kdcore at it


TORCH_LOSSES = """
import torch
import torch.nn as nn
import torch.nn.functional as F

class DistillKL(nn.Module):
    def __init__(self, T):
        super().__init__()
        self.T = T

    def forward(self, y_s, y_t):
        p_s = F.log_softmax(y_s / self.T, dim=1)
        p_t = F.softmax(y_t / self.T, dim=1)
        return F.kl_div(p_s, p_t, reduction="sum") * (self.T**2) / y_s.shape[0]

def distillation_loss(student_logits, teacher_logits, labels, alpha=0.1, T=10.0):
    soft = nn.KLDivLoss(reduction="batchmean")(
        F.log_softmax(student_logits / T, dim=1), F.softmax(teacher_logits / T, dim=1))
    return alpha * F.cross_entropy(student_logits, labels) + (1 - alpha) * T * T * soft
"""


@pytest.mark.frameworks
class TestTorchCommandLine:
    @pytest.fixture
    def torch_losses(self, tmp_path):
        pytest.importorskip("torch")
        path = tmp_path / "torch_losses.py"
        path.write_text(textwrap.dedent(TORCH_LOSSES), encoding="utf-8")
        return path

    def test_module_class(self, torch_losses, capsys):
        code = main(["check", f"{torch_losses}:DistillKL", "--framework", "torch"])
        output = capsys.readouterr().out
        assert code == 0, output
        assert "called as   DistillKL(T=T).forward(y_s=student_logits, y_t=teacher_logits)" in output

    def test_module_forward_was_wrong_before(self, torch_losses, capsys):
        # Class.forward used to hand the student logits to `self` and call the loss wrong (exit 1).
        assert main(["check", f"{torch_losses}:DistillKL.forward", "--framework", "torch"]) == 0

    def test_keyword_loss(self, torch_losses, capsys):
        argv = [
            "check",
            f"{torch_losses}:distillation_loss",
            "--framework",
            "torch",
            "--kind",
            "distillation",
        ]
        assert main(argv) == 0, capsys.readouterr().out


def test_numpy_arrays_reach_the_loss_unchanged():
    seen = []

    def kd(student_logits, teacher_logits, T):
        seen.append((type(student_logits), student_logits.dtype))
        return soft(student_logits, teacher_logits, T)

    check_soft_loss(kd, "numpy")
    assert {kind for kind, _ in seen} == {np.ndarray}
    assert {dtype for _, dtype in seen} == {np.dtype(np.float32), np.dtype(np.float64)}
