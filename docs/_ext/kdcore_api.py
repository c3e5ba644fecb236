"""The API reference page, generated from the package itself at build time.

``api_reference()`` writes the reStructuredText of docs/api.rst's body from ``kdcore.__all__`` and the public
submodules, so a name another module adds to ``__all__`` appears in the reference without anyone editing a
page. The Sphinx hook appends it to the ``api`` document when Sphinx reads it. Nothing here imports Sphinx
at module level: tests/test_docs.py imports this file to check that every public name is listed.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import sys
from types import ModuleType

# Submodules that are not API: the command line (documented by `kdcore --help`) and `python -m kdcore`.
NOT_API = {"cli", "__main__"}


def _summary(module: ModuleType) -> str:
    doc = inspect.getdoc(module) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def public_submodules(package: ModuleType) -> list[str]:
    """Names of the package's public submodules (``kdcore.figures``, ``kdcore.verify``, ...)."""
    return sorted(
        info.name
        for info in pkgutil.iter_modules(package.__path__)
        if not info.name.startswith("_") and info.name not in NOT_API
    )


def module_members(module: ModuleType) -> list[str]:
    """A module's public names: its ``__all__``, else what it defines (not imports) without a leading _."""
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            name
            for name, value in vars(module).items()
            if not name.startswith("_")
            and (inspect.isfunction(value) or inspect.isclass(value))
            and value.__module__ == module.__name__
        ]
    return sorted(names)


def _doc_comment(module_name: str, name: str) -> str:
    """The ``#:`` comment above ``name = ...`` in the module, or in the submodule that defines it."""
    pattern = re.compile(rf"((?:^#:.*\n)+)^{re.escape(name)}\b\s*[:=]", re.MULTILINE)
    candidates = [
        m for key, m in sorted(sys.modules.items()) if key == module_name or key.startswith(module_name + ".")
    ]
    for module in candidates:
        try:
            source = inspect.getsource(module)
        except (OSError, TypeError):
            continue
        found = pattern.search(source)
        if found:
            return " ".join(line[2:].strip() for line in found.group(1).splitlines())
    return ""


def _value(value: object) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= 100 else text[:97] + "..."


def _directive(qualified: str, value: object, module_name: str) -> list[str]:
    if inspect.isclass(value):
        return [f".. autoclass:: {qualified}", "   :members:", ""]
    if callable(value):
        return [f".. autofunction:: {qualified}", ""]
    # A constant: autodoc would show the docstring of its *type* (numpy.ndarray's, for an array), so the
    # entry is written here, with the value and the module's own ``#:`` comment.
    lines = [f".. py:data:: {qualified}", f"   :value: {_value(value)}", ""]
    comment = _doc_comment(module_name, qualified.rsplit(".", 1)[-1])
    return lines + ([f"   {comment}", ""] if comment else [])


def _heading(text: str, underline: str) -> list[str]:
    return [text, underline * len(text), ""]


def api_reference(package_name: str = "kdcore") -> str:
    """reStructuredText documenting every name of ``package.__all__`` and every public submodule."""
    package = importlib.import_module(package_name)
    lines: list[str] = []
    exported = [name for name in package.__all__ if not name.startswith("__")]
    documented: set[int] = set()

    # Top-level names, grouped by the module that defines them (kdcore.softmax, kdcore.divergences, ...).
    groups: dict[str, list[str]] = {}
    modules_exported = []
    for name in exported:
        value = getattr(package, name)
        if inspect.ismodule(value):
            modules_exported.append(value.__name__.rsplit(".", 1)[-1])
            continue
        groups.setdefault(getattr(value, "__module__", package_name), []).append(name)
    order = {module: i for i, module in enumerate(public_submodules(package))}
    for module_name in sorted(groups, key=lambda m: (order.get(m.rsplit(".", 1)[-1], len(order)), m)):
        module = importlib.import_module(module_name)
        lines += _heading(f"``{package_name}``: from ``{module_name}``", "-")
        if _summary(module):
            lines += [_summary(module), ""]
        lines += [f".. currentmodule:: {package_name}", ""]
        for name in groups[module_name]:
            value = getattr(package, name)
            documented.add(id(value))
            lines += _directive(name, value, module_name)

    # Every public submodule: those exported by name, then the rest. Members already documented at the
    # top level are left out (kdcore.softmax.softmax is kdcore.softmax), so nothing is documented twice.
    for short in sorted(public_submodules(package), key=lambda m: (m not in modules_exported, m)):
        module = importlib.import_module(f"{package_name}.{short}")
        # Only functions and classes are compared by identity: equal constants (small ints) share one object.
        members = [
            name
            for name in module_members(module)
            if not (callable(getattr(module, name)) and id(getattr(module, name)) in documented)
        ]
        if not members:
            continue
        lines += _heading(f"``{module.__name__}``", "-")
        lines += [f".. automodule:: {module.__name__}", "   :no-members:", ""]
        lines += [f".. currentmodule:: {module.__name__}", ""]
        for name in members:
            value = getattr(module, name)
            documented.add(id(value))
            lines += _directive(name, value, module.__name__)
    return "\n".join(lines)


def _append_reference(app, docname: str, source: list[str]) -> None:
    if docname == "api":
        source[0] += "\n\n" + api_reference() + "\n"


def setup(app):
    app.connect("source-read", _append_reference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


def anchors(reference: str) -> list[str]:
    """The HTML ids Sphinx gives the entries of ``api_reference()``'s text, in order."""
    ids, current = [], ""
    for line in reference.splitlines():
        directive = re.match(r"^\.\. (?:auto(\w+)|py:data|currentmodule)::\s*(\S+)", line)
        if not directive:
            continue
        kind, name = directive.groups()
        if line.startswith(".. currentmodule::"):
            current = name
        elif kind == "module":
            ids.append(f"module-{name}")
        else:
            ids.append(f"{current}.{name}")
    return ids


def missing_from_site(html: str, package_name: str = "kdcore") -> list[str]:
    """Entries of the API reference with no anchor in the built page (``id="kdcore.softmax"``, ...)."""
    return [name for name in anchors(api_reference(package_name)) if f'id="{name}"' not in html]


if __name__ == "__main__":
    # `make docs` runs this on the built page: every public name must have made it onto the site.
    from pathlib import Path

    missing = missing_from_site(Path(sys.argv[1]).read_text(encoding="utf-8"))
    if missing:
        sys.exit(f"{sys.argv[1]} lacks: {', '.join(missing)}")
    print(f"{sys.argv[1]}: every public name of kdcore is documented")
