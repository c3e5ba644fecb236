r"""``kdcore check``: import a target, check it, print the report, return the exit code."""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from .adapters import FRAMEWORKS, FrameworkNotInstalledError, get_adapter
from .checks import KINDS, check_distillation_loss, check_divergence_loss, check_soft_loss
from .running import describe_exception
from .topk_check import check_topk_loss
from .topk_family import TOPK_CONVENTIONS

__all__ = ["UsageError", "import_target", "parse_assignments", "run_check"]


class UsageError(Exception):
    """A problem with what the user asked for (exit code 2), as opposed to a problem with their loss."""


@contextlib.contextmanager
def _on_sys_path(directory: str) -> Iterator[None]:
    """Put ``directory`` first on sys.path for the import (as ``python -m`` does with the cwd)."""
    sys.path.insert(0, directory)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(directory)


def import_target(target: str) -> tuple[Callable, str]:
    """Resolve ``module:function`` or ``path/to/file.py:function`` to the function and a display name."""
    if not isinstance(target, str) or ":" not in target:
        raise UsageError(
            f"target must be MODULE:FUNCTION or path/to/file.py:FUNCTION, got {target!r} (no ':' in it)"
        )
    location, _, attribute = target.rpartition(":")  # rpartition: a Windows path has a ':' of its own
    if not location or not attribute:
        raise UsageError(f"target must be MODULE:FUNCTION or path/to/file.py:FUNCTION, got {target!r}")
    is_file = location.endswith(".py") or os.sep in location or "/" in location
    try:
        if is_file:
            path = Path(location)
            if not path.is_file():
                raise UsageError(f"file not found: {location}")
            module_name = f"_kdcore_check_{path.stem}"
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                raise UsageError(f"cannot import {location} as a Python module")
            module = importlib.util.module_from_spec(spec)
            with _on_sys_path(str(path.resolve().parent)):
                spec.loader.exec_module(module)
        else:
            with _on_sys_path(os.getcwd()):
                try:
                    module = importlib.import_module(location)
                except ModuleNotFoundError as error:
                    if error.name is not None and location.startswith(error.name):
                        raise UsageError(f"module not found: {location} ({error})") from None
                    raise
    except UsageError:
        raise
    except Exception as error:  # the module itself failed: a syntax error, a missing dependency…
        raise UsageError(f"importing {location} failed: {describe_exception(error)}") from None
    value: Any = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            available = sorted(
                name for name, item in vars(module).items() if callable(item) and not name.startswith("_")
            )
            raise UsageError(
                f"function not found: {location} has no attribute {attribute!r}"
                + (f" (callables in it: {', '.join(available)})" if available else "")
            )
        value = getattr(value, part)
    if not callable(value):
        raise UsageError(f"{target} is not callable (it is a {type(value).__name__})")
    return value, target


def parse_assignments(items: Sequence[str] | None, option: str) -> dict[str, Any]:
    """``["T=4", "name='x'"]`` → ``{"T": 4, "name": "x"}``: Python literals where they parse, else strings."""
    values: dict[str, Any] = {}
    for item in items or ():
        name, equals, text = item.partition("=")
        if not equals or not name.strip().isidentifier():
            raise UsageError(f"{option} takes NAME=VALUE, got {option} {item!r}")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text  # a bare word: a string, as the shell would give it
        values[name.strip()] = value
    return values


def _check_options(
    kind: str,
    alpha: float | None,
    alpha_on: str,
    beta: float | None,
    skew: float | None,
    weight_on: str | None,
    topk_convention: str | None = None,
) -> None:
    """Refuse an option the kind has no use for, before anything is imported or run."""
    if alpha_on != "hard" and kind != "distillation":
        raise UsageError("--alpha-on is for --kind distillation")
    if alpha is not None and kind not in ("distillation", "dkd"):
        raise UsageError(f"--alpha is for --kind distillation or dkd (a {kind} loss has no α)")
    if beta is not None and kind not in ("jsd", "dkd"):
        raise UsageError(f"--beta is for --kind jsd or dkd (a {kind} loss has no β)")
    if skew is not None and kind not in ("skew-kl", "skew-reverse-kl"):
        raise UsageError(f"--skew is for --kind skew-kl or skew-reverse-kl (a {kind} loss has no skew)")
    if weight_on is not None and kind != "jsd":
        raise UsageError("--beta-on is for --kind jsd")
    if topk_convention is not None and kind != "topk":
        raise UsageError("--topk-convention is for --kind topk")
    if topk_convention is not None and topk_convention not in TOPK_CONVENTIONS:
        raise UsageError(
            f"--topk-convention must be one of {', '.join(TOPK_CONVENTIONS)}, got {topk_convention!r}"
        )


def run_check(
    target: str,
    framework: str,
    kind: str,
    as_json: bool = False,
    stream: IO[str] | None = None,
    *,
    args: Mapping[str, Any] | None = None,
    init: Mapping[str, Any] | None = None,
    roles: Mapping[str, str] | None = None,
    t2_scaling: bool | None = None,
    alpha_on: str = "hard",
    T: float | None = None,
    alpha: float | None = None,
    beta: float | None = None,
    skew: float | None = None,
    weight_on: str | None = None,
    topk_convention: str | None = None,
) -> int:
    """Run ``kdcore check``: import ``target``, check it, print the report, and return the exit code.

    Parameters
    ----------
    target : str
        ``package.module:NAME`` (importable from the current directory or the environment) or
        ``path/to/file.py:NAME``. ``NAME`` may be dotted, and may name a function, a ``functools.partial``,
        a class (constructed with ``init``), an instance, or a method (``Class.forward``: the class is
        constructed, then its ``forward`` called).
    framework : {"torch", "jax", "tensorflow", "numpy"}
        What the loss is written in.
    kind : {"soft", "distillation", "reverse-kl", "jsd", "skew-kl", "skew-reverse-kl", "dkd", "topk"}
        ``soft``: student logits, teacher logits, temperature; ``distillation``: also labels and α;
        ``topk``: :func:`kdcore.verify.check_topk_loss`; the others:
        :func:`kdcore.verify.check_divergence_loss`.
    as_json : bool, default False
        Print :meth:`Report.to_json` instead of the readable report.
    stream : file-like, optional
        Where to write; default ``sys.stdout``. Usage errors are written there too, prefixed ``error:``.
    args, init, roles, t2_scaling, alpha_on, T, alpha
        As :func:`kdcore.verify.check_distillation_loss` (``--arg``, ``--init``, ``--bind``, ``--no-t2``,
        ``--alpha-on``, ``--T``, ``--alpha``). ``t2_scaling=None`` is True for ``soft`` and
        ``distillation``, and "either" for the other kinds (``--t2`` / ``--no-t2`` decide).
    beta, skew, weight_on
        As :func:`kdcore.verify.check_divergence_loss` (``--beta``, ``--skew``, ``--beta-on``).
    topk_convention : {"renormalized", "dense_student", "tail"}, optional
        ``--kind topk``: the convention the code claims (``--topk-convention``), as
        :func:`kdcore.verify.check_topk_loss`'s ``convention``.

    Returns
    -------
    int
        0 when the loss is correct, 1 when the report has findings, 2 on a usage error: module, file or
        name not found, a target that cannot be called as a loss of this kind (an ambiguous or missing
        argument, a failing constructor), an unknown or uninstalled framework, an unknown kind.

    Examples
    --------
    >>> from kdcore.verify import run_check
    >>> run_check("kdcore.divergences:kl_divergence", framework="mxnet", kind="soft")
    error: framework must be one of 'torch', 'jax', 'tensorflow', 'numpy', got framework='mxnet'
    2
    """
    stream = sys.stdout if stream is None else stream
    try:
        if kind not in KINDS:
            raise UsageError(f"kind must be one of {', '.join(map(repr, KINDS))}, got kind={kind!r}")
        if framework not in FRAMEWORKS:
            raise UsageError(
                f"framework must be one of {', '.join(map(repr, FRAMEWORKS))}, got framework={framework!r}"
            )
        try:
            get_adapter(framework)  # before the import, so that a missing framework is named as such
        except FrameworkNotInstalledError as error:
            raise UsageError(str(error)) from None
        options: dict[str, Any] = {"args": args, "init": init, "roles": roles, "T": T}
        _check_options(kind, alpha, alpha_on, beta, skew, weight_on, topk_convention)
        if kind == "distillation":
            options.update(alpha=alpha, alpha_on=alpha_on)
        elif kind == "topk":
            options.update(convention=topk_convention)
        elif kind not in ("soft", "distillation"):
            options.update(kind=kind, alpha=alpha, beta=beta, skew=skew, weight_on=weight_on)
        if kind in ("soft", "distillation"):
            t2_scaling = True if t2_scaling is None else t2_scaling
        fn, name = import_target(target)
        check = {
            "soft": check_soft_loss,
            "distillation": check_distillation_loss,
            "topk": check_topk_loss,
        }.get(kind, check_divergence_loss)
        try:
            report = check(fn, framework=framework, name=name, t2_scaling=t2_scaling, **options)
        except (TypeError, ValueError) as error:  # the loss's own errors are caught per case, inside
            raise UsageError(str(error)) from None
    except UsageError as error:
        if as_json:
            print(json.dumps({"schema": "kdcore-check-error", "error": str(error)}), file=stream)
        else:
            print(f"error: {error}", file=stream)
        return 2
    print(report.to_json() if as_json else str(report), file=stream)
    return 0 if report.ok else 1
