r"""``kdcore check``: import a target, check it, print the report, return the exit code."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from .adapters import FRAMEWORKS, FrameworkNotInstalledError, get_adapter
from .checks import KINDS, check_distillation_loss, check_signature, check_soft_loss
from .running import describe_exception

__all__ = ["UsageError", "import_target", "run_check"]


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


def run_check(
    target: str, framework: str, kind: str, as_json: bool = False, stream: IO[str] | None = None
) -> int:
    """Run ``kdcore check``: import ``target``, check it, print the report, and return the exit code.

    Parameters
    ----------
    target : str
        ``package.module:function`` (importable from the current directory or the environment) or
        ``path/to/file.py:function``; ``function`` may be dotted (``module:Class.method``).
    framework : {"torch", "jax", "numpy"}
        What the function is written in.
    kind : {"soft", "distillation"}
        ``soft``: ``fn(student_logits, teacher_logits, T)``; ``distillation``:
        ``fn(student_logits, teacher_logits, labels, T, alpha)``.
    as_json : bool, default False
        Print :meth:`Report.to_json` instead of the readable report.
    stream : file-like, optional
        Where to write; default ``sys.stdout``. Usage errors are written there too, prefixed ``error:``.

    Returns
    -------
    int
        0 when the loss is correct, 1 when the report has findings, 2 on a usage error (module, file or
        function not found, a wrong signature, an unknown or uninstalled framework, an unknown kind).

    Examples
    --------
    >>> from kdcore.verify import run_check
    >>> run_check("kdcore.divergences:kl_divergence", framework="tensorflow", kind="soft")
    error: framework must be one of 'torch', 'jax', 'numpy', got framework='tensorflow'
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
        fn, name = import_target(target)
        try:
            check_signature(fn, kind)
        except TypeError as error:
            raise UsageError(str(error)) from None
        check = check_soft_loss if kind == "soft" else check_distillation_loss
        report = check(fn, framework=framework, name=name)
    except UsageError as error:
        if as_json:
            print(json.dumps({"schema": "kdcore-check-error", "error": str(error)}), file=stream)
        else:
            print(f"error: {error}", file=stream)
        return 2
    print(report.to_json() if as_json else str(report), file=stream)
    return 0 if report.ok else 1
