r"""Binding: how the checker calls a loss as it is written — by parameter name, not by position.

Real distillation losses come as functions with keyword arguments, ``functools.partial`` objects, bound
methods, ``nn.Module`` classes or instances. :func:`bind` looks at the callable's signature and decides,
once and before any case runs, which parameter receives each *role*:

===================  ======================================================================================
role                 parameter names recognised (exact spelling)
===================  ======================================================================================
``student_logits``   student_logits, logits_student, student_logit, student_outputs, student_output,
                     student, s_logits, logits_s, out_s, y_s, logits, outputs, output, input, y_pred,
                     preds, pred, s, z
``teacher_logits``   teacher_logits, logits_teacher, teacher_logit, teacher_outputs, teacher_output,
                     teacher, t_logits, logits_t, out_t, y_t, target_logits, t, v
``labels``           labels, label, target, targets, y, y_true, gt, hard_labels  (distillation only)
``T``                T, temperature, tau, temp
``alpha``            alpha, lambda_, lam, lmbda  (distillation, dkd)
``beta``             beta, jsd_beta  (jsd, dkd)
``skew``             skew, skew_alpha, skew_lambda; for the skew kinds also α's names (DistiLLM's ``lam``)
``mask``             mask, loss_mask, attention_mask, padding_mask, valid_mask, token_mask, keep  (token
                     kinds; bool, True where a position counts; ``labels`` there hold -100 at padding)
``teacher_values``   (topk) teacher_values, teacher_topk_logprobs, teacher_topk_logps, topk_logprobs,
                     topk_values, target_values, sparse_values, logprobs, … and the teacher logits' names
``teacher_indices``  (topk) teacher_indices, teacher_topk_indices, topk_ids, topk_indices, target_ids,
                     sparse_ids, indices, ids, idx, token_ids
===================  ======================================================================================

The token-level kinds (``reverse-kl``, ``jsd``, ``skew-kl``, ``skew-reverse-kl``, ``topk``) take ``labels``,
``mask`` and ``T`` only by name: a loss may lack them (it then runs on unpadded cases, at T = 1).

A role that no parameter is named after takes the next *required* positional parameter, in the order
``student_logits, teacher_logits[, labels], T[, alpha]`` — so ``lambda z, v, T: ...`` and
``def kd(a, b, c)`` work as before. Two parameters claiming one role, or one parameter claiming two, is
refused (:class:`BindingError`), as is a required parameter left without a value: name it with
``args={"name": value}`` (``--arg name=value``), or say which parameter holds a role with
``roles={"T": "name"}`` (``--bind T=name``).

A class is constructed first (``init={...}``, ``--init``). When the temperature or α is a parameter of the
constructor rather than of the call (``KDLoss(T=4)(student, teacher)``), a fresh instance is built for each
temperature and weight of the battery — unless you fix its value in ``init``, in which case the whole battery
runs at that value. An instance's temperature is read from its attribute (``loss.T``, ``loss.temperature``,
``loss.tau``). ``Class.forward`` (the function, not bound) is taken to mean the class.

Examples
--------
>>> from kdcore.verify.binding import bind
>>> def kd(student, teacher, labels, alpha=0.1, T=10.0):
...     return 0.0
>>> binding = bind(kd, "distillation")
>>> binding.describe()
'kd(student=student_logits, teacher=teacher_logits, labels=labels, T=T, alpha=alpha)'
>>> bind(lambda logits, outputs, T: 0.0, "soft")
Traceback (most recent call last):
...
kdcore.verify.binding.BindingError: ambiguous: parameters 'logits' and 'outputs' of <lambda>(logits, outputs, T) both look like student_logits; say which with --bind student_logits=NAME (Python: roles={'student_logits': NAME})
"""

from __future__ import annotations

import functools
import inspect
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ALIASES", "ROLES", "Binding", "BindingError", "bind", "function_name"]

_TOKEN_ROLES = ("student_logits", "teacher_logits", "T", "labels", "mask")
ROLES = {
    "soft": ("student_logits", "teacher_logits", "T"),
    "distillation": ("student_logits", "teacher_logits", "labels", "T", "alpha"),
    "reverse-kl": _TOKEN_ROLES,
    "jsd": (*_TOKEN_ROLES, "beta"),
    "skew-kl": (*_TOKEN_ROLES, "skew"),
    "skew-reverse-kl": (*_TOKEN_ROLES, "skew"),
    "dkd": ("student_logits", "teacher_logits", "labels", "T", "alpha", "beta"),
    "topk": ("student_logits", "teacher_values", "teacher_indices", "T", "labels", "mask"),
}
# Roles a loss may lack. A token-level loss without labels or mask is run on the unpadded cases only; one
# without a temperature computes at T = 1 (DistiLLM's and MiniLLM's losses have none).
OPTIONAL_ROLES = {
    kind: ("labels", "mask", "T") for kind in ("reverse-kl", "jsd", "skew-kl", "skew-reverse-kl", "topk")
}
# The numbers of the battery a loss may take as parameters, constructor arguments or built-in values.
SCALAR_ROLES = ("T", "alpha", "beta", "skew")

ALIASES: dict[str, tuple[str, ...]] = {
    "student_logits": (
        "student_logits", "logits_student", "student_logit", "student_outputs", "student_output", "student",
        "s_logits", "logits_s", "out_s", "y_s", "logits", "outputs", "output", "input", "y_pred", "preds",
        "pred", "s", "z",
    ),
    "teacher_logits": (
        "teacher_logits", "logits_teacher", "teacher_logit", "teacher_outputs", "teacher_output", "teacher",
        "t_logits", "logits_t", "out_t", "y_t", "target_logits", "t", "v",
    ),
    "labels": ("labels", "label", "target", "targets", "y", "y_true", "gt", "hard_labels"),
    "T": ("T", "temperature", "tau", "temp"),
    "alpha": ("alpha", "lambda_", "lam", "lmbda"),
    "beta": ("beta", "jsd_beta"),
    "skew": ("skew", "skew_alpha", "skew_lambda"),
    "mask": ("mask", "loss_mask", "attention_mask", "padding_mask", "valid_mask", "token_mask", "keep"),
    # --kind topk: the teacher as (values, indices) of its k largest entries; the values' names also take the
    # teacher logits' names (a loss may call its top-k values teacher_logits).
    "teacher_values": (
        "teacher_values", "teacher_topk_logprobs", "teacher_topk_log_probs", "teacher_topk_logps",
        "teacher_topk_values", "teacher_topk_logits", "teacher_logprobs", "teacher_log_probs", "topk_logprobs",
        "topk_log_probs", "topk_logps", "topk_values", "target_values", "target_logprobs", "sparse_values",
        "logprobs", "log_probs",
    ),
    "teacher_indices": (
        "teacher_indices", "teacher_topk_indices", "teacher_topk_ids", "teacher_ids", "teacher_token_ids",
        "topk_indices", "topk_ids", "topk_idx", "target_ids", "target_indices", "sparse_ids", "indices", "ids",
        "idx", "token_ids",
    ),
}  # fmt: skip
# Attributes an *instance* may keep its fixed temperature and weights in.
_ATTRIBUTES = {role: ALIASES[role] for role in SCALAR_ROLES}
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


class BindingError(TypeError):
    """The loss cannot be called as the kind of loss asked for: a usage problem, not a wrong loss."""


def function_name(fn: Any) -> str:
    """``module:qualname`` of a function, method, partial, class or instance, for reports."""
    if isinstance(fn, functools.partial):
        return f"partial({function_name(fn.func)})"
    target = fn if (inspect.isroutine(fn) or inspect.isclass(fn)) else type(fn)
    module = getattr(target, "__module__", None)
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or repr(target)
    return f"{module}:{name}" if module and module != "__main__" else name


def _short_name(fn: Any) -> str:
    """The name without its module, nor the enclosing function of a local one."""
    return function_name(fn).rpartition(":")[2].rpartition(".<locals>.")[2]


def _signature(fn: Callable) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins and C functions have none
        return None


def _call_target(instance: Any) -> Callable:
    """What to read the call signature from: ``forward`` of a module (its ``__call__`` is ``*args``)."""
    forward = getattr(type(instance), "forward", None)
    if forward is not None and callable(forward):
        return instance.forward
    return instance


@dataclass(frozen=True)
class Binding:
    """A loss and how to call it: each role's parameter, the fixed arguments, the fixed T and α.

    ``call(student_logits, teacher_logits, labels, T, alpha)`` calls the loss (``labels`` and ``alpha`` are
    ignored for a soft loss). ``fixed`` holds the temperature or weight when the loss has one built in; then
    the battery runs at that value.
    """

    target: Any  # what the user gave: function, partial, method, class or instance
    kind: str
    roles: dict[str, tuple[str, str]]  # role -> ("call" | "init", parameter name)
    positional: tuple[str, ...]  # call parameters that must be passed positionally (POSITIONAL_ONLY / no sig)
    args: dict[str, Any] = field(default_factory=dict)  # fixed call arguments
    init: dict[str, Any] = field(default_factory=dict)  # constructor arguments (classes)
    fixed: dict[str, float] = field(default_factory=dict)  # role -> value, for T, α, β, skew built in
    by_position: tuple[str, ...] = ()  # parameters bound by position, for the report
    method: str | None = None  # for a class: the method to call ("forward" for Class.forward), else __call__

    def __post_init__(self) -> None:
        object.__setattr__(self, "_instances", {})

    def _callable(self, scalars: Mapping[str, float]) -> Callable:
        if not inspect.isclass(self.target):
            return self.target
        init = dict(self.init)
        for role, value in scalars.items():
            where = self.roles.get(role)
            if where is not None and where[0] == "init":
                init[where[1]] = value
        key = tuple(sorted((name, repr(value)) for name, value in init.items()))
        instances = self._instances  # type: ignore[attr-defined]
        if key not in instances:
            try:
                instance = self.target(**init)
            except Exception as error:
                raise BindingError(
                    f"constructing {_short_name(self.target)}({_format(init)}) failed: "
                    f"{type(error).__name__}: {error}"
                ) from None
            instances[key] = getattr(instance, self.method) if self.method else instance
        return instances[key]

    def construct(self, scalars: list[Mapping[str, float]]) -> None:
        """Build the instances for these values of T, α… now, so that a failing constructor is a usage error."""
        unique = {tuple(values.get(role, 0.0) for role in SCALAR_ROLES): values for values in scalars}
        for key in sorted(unique):  # the smallest temperature first, so that its failure is the one reported
            self._callable(unique[key])

    def evidence(self) -> dict[str, Any]:
        """What the report shows about the binding: the parameters bound by position, if any."""
        return {"bound_by_position": list(self.by_position)} if self.by_position else {}

    def call(self, values: Mapping[str, Any]) -> Any:
        """Call the loss with the battery's ``values`` of its roles (logits, labels, mask, T, α, β, skew)."""
        fn = self._callable({role: values[role] for role in SCALAR_ROLES if role in values})
        keyword = dict(self.args)
        by_name = {}
        for role in ROLES[self.kind]:
            where, name = self.roles.get(role, ("", ""))
            if where == "call" and role in values:
                by_name[name] = values[role]
        keyword.update(by_name)
        positional = [keyword.pop(name) for name in self.positional]
        return fn(*positional, **keyword)

    def describe(self) -> str:
        """How the loss is called, e.g. ``kd(student=student_logits, ..., T=T)``."""
        parts = []
        for role in ROLES[self.kind]:
            if role in self.fixed:
                continue
            where, name = self.roles.get(role, ("", ""))
            if where == "call":
                parts.append(f"{name}={role}")
        parts += [f"{name}={value!r}" for name, value in self.args.items()]
        text = f"{_short_name(self.target)}"
        if inspect.isclass(self.target):
            init = [f"{name}={value!r}" for name, value in self.init.items()]
            init += [f"{name}={role}" for role, (where, name) in self.roles.items() if where == "init"]
            text += f"({', '.join(init)})" + (f".{self.method}" if self.method else "")
        text += f"({', '.join(parts)})"
        if self.fixed:
            text += " with " + ", ".join(f"{role} = {value:g} fixed" for role, value in self.fixed.items())
        return text


def _format(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in values.items())


def _matches(name: str, role: str, kind: str) -> bool:
    if role not in ROLES[kind]:
        return False
    # DistiLLM calls its skew `lam`: where α is no role of its own, α's names mean the skew.
    borrowed = ALIASES["alpha"] if role == "skew" and "alpha" not in ROLES[kind] else ()
    if role == "teacher_values":  # --kind topk: top-k values may be called teacher_logits, y_t, ...
        borrowed = ALIASES["teacher_logits"]
    return name in ALIASES[role] or name in borrowed


def _parameters(signature: inspect.Signature | None) -> list[inspect.Parameter]:
    if signature is None:
        return []
    return [
        p
        for p in signature.parameters.values()
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]


def _assign(
    where: str,
    parameters: list[inspect.Parameter],
    kind: str,
    roles_wanted: list[str],
    explicit: Mapping[str, str],
    given: Mapping[str, Any],
    owner: str,
) -> dict[str, tuple[str, str]]:
    """Roles found by name (or by ``explicit``) among ``parameters``; refuses ambiguity."""
    found: dict[str, tuple[str, str]] = {}
    names = {p.name for p in parameters}
    for role, name in explicit.items():
        if role in roles_wanted and name in names:
            found[role] = (where, name)
    claimed = {name for _, name in found.values()}
    for role in roles_wanted:
        if role in found:
            continue
        candidates = [p.name for p in parameters if _matches(p.name, role, kind) and p.name not in claimed]
        if len(candidates) > 1:
            quoted = " and ".join(repr(name) for name in candidates)
            raise BindingError(
                f"ambiguous: parameters {quoted} of {owner} both look like {role}; "
                f"say which with --bind {role}=NAME (Python: roles={{{role!r}: NAME}})"
            )
        if candidates:
            found[role] = (where, candidates[0])
            claimed.add(candidates[0])
    return found


def _instance_value(instance: Any, role: str) -> float | None:
    for attribute in _ATTRIBUTES[role]:
        value = getattr(instance, attribute, None)
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return float(value)
    return None


def bind(
    target: Any,
    kind: str,
    *,
    args: Mapping[str, Any] | None = None,
    init: Mapping[str, Any] | None = None,
    roles: Mapping[str, str] | None = None,
    fixed: Mapping[str, float] | None = None,
    method: str | None = None,
    role_name: str = "the loss",
) -> Binding:
    """Decide how to call ``target`` as a ``kind`` loss; raise :class:`BindingError` when it cannot be.

    Parameters
    ----------
    target : callable or class
        The loss: a function, ``functools.partial``, bound method, callable instance (``nn.Module``) or a
        class to construct.
    kind : {"soft", "distillation"}
    args : mapping, optional
        Fixed values for other parameters of the call (``--arg name=value``). A role's parameter given here
        fixes that role: the battery then runs at that temperature or weight.
    init : mapping, optional
        Constructor arguments when ``target`` is a class (``--init name=value``).
    roles : mapping, optional
        ``{role: parameter name}`` for parameters whose names are not recognised (``--bind T=w``).
    fixed : mapping, optional
        ``{"T": value, "alpha": value}`` built into the loss (``--T``, ``--alpha``): such a role needs no
        parameter, and the battery runs at that value.
    method : str, optional
        For a class: call this method of the instance (``"forward"`` for a ``Class.forward`` target).

    Returns
    -------
    Binding
    """
    args, init, explicit = dict(args or {}), dict(init or {}), dict(roles or {})
    if inspect.isfunction(target) and method is None:
        owner_class = _owner_class(target)
        if owner_class is not None:  # Class.forward: the class is meant, its method called
            target, method = owner_class, target.__name__
    wanted = list(ROLES[kind])
    given = {role: float(value) for role, value in (fixed or {}).items()}
    for role in explicit:
        if role not in wanted:
            raise BindingError(
                f"--bind {role}=...: a {kind} loss has roles {', '.join(wanted)}, not {role!r}"
            )
    if not callable(target):
        raise BindingError(f"{role_name} must be callable, got {type(target).__name__}")
    if init and not inspect.isclass(target):
        raise BindingError(f"--init is for a class; {function_name(target)} is not a class")
    init_parameters: list[inspect.Parameter] = []
    if inspect.isclass(target):
        init_signature = _signature(target)
        init_parameters = _parameters(init_signature)
        # The call signature: forward (or the method named) of the class, without self.
        attribute = method or ("forward" if callable(getattr(target, "forward", None)) else "__call__")
        if attribute == "__call__" and not any("__call__" in vars(k) for k in target.__mro__[:-1]):
            raise BindingError(
                f"instances of {_short_name(target)} are not callable: it has no __call__ or forward"
            )
        call_signature = _signature(getattr(target, attribute))
        call_parameters = _parameters(call_signature)[1:]  # drop self
        method = attribute if attribute != "__call__" else None
        owner = f"{_short_name(target)}.{attribute}"
        call_signature = call_signature.replace(parameters=call_parameters) if call_signature else None
    else:
        call_signature = _signature(_call_target(target))
        call_parameters = _parameters(call_signature)
        owner = _short_name(target)
    owner_text = f"{owner}{call_signature}" if call_signature is not None else owner

    unknown = [name for name in args if call_signature is not None and name not in call_signature.parameters]
    accepts_kwargs = call_signature is not None and any(
        p.kind == inspect.Parameter.VAR_KEYWORD for p in call_signature.parameters.values()
    )
    if unknown and not accepts_kwargs:
        raise BindingError(f"--arg {unknown[0]}=...: {owner_text} has no parameter {unknown[0]!r}")

    found = _assign("call", call_parameters, kind, wanted, explicit, args, owner_text)
    fixed: dict[str, float] = {}
    # A role whose parameter the user fixed with --arg (or a partial's keyword): the battery runs at it.
    preset = dict(target.keywords) if isinstance(target, functools.partial) else {}
    for role in SCALAR_ROLES:
        if role in found and found[role][1] in args:
            fixed[role] = _number(args[found[role][1]], found[role][1])
            del found[role]
        elif role in found and found[role][1] in preset and role not in given:
            fixed[role] = _number(preset[found[role][1]], found[role][1])
            del found[role]
    if inspect.isclass(target):
        rest = [role for role in wanted if role not in found and role not in fixed]
        in_init = _assign("init", init_parameters, kind, [r for r in rest if r in SCALAR_ROLES], explicit,
                          {}, f"{_short_name(target)}{_signature(target)}")  # fmt: skip
        for role, (where, name) in in_init.items():
            if name in init:  # the user fixed it: construct once, run the battery at that value
                fixed[role] = _number(init[name], name)
            else:
                found[role] = (where, name)

    # Roles still unbound take the remaining required positional parameters, in the kind's order.
    claimed = {name for where, name in found.values() if where == "call"} | set(args)
    free = [
        p
        for p in call_parameters
        if p.kind in _POSITIONAL and p.name not in claimed and p.default is inspect.Parameter.empty
    ]
    by_position = []
    optional = OPTIONAL_ROLES.get(kind, ())
    for role in wanted:
        if role in found or role in fixed or role in optional:  # optional roles bind by name only
            continue
        if free:
            name = free.pop(0).name
            found[role] = ("call", name)
            by_position.append(name)
        elif call_signature is None:
            found[role] = ("call", f"#{len(found)}")
    # Instances keep a built-in temperature or weight as an attribute.
    if not inspect.isclass(target):
        owner_object = getattr(target, "__self__", target)
        for role in SCALAR_ROLES:
            if role in wanted and role not in found and role not in fixed:
                value = _instance_value(owner_object, role)
                if value is not None:
                    fixed[role] = value
    for role, value in given.items():  # built in, by the user's word; a parameter for it still gets it
        fixed.setdefault(role, value)
    if "T" in optional and "T" not in found:
        fixed.setdefault("T", 1.0)  # no temperature anywhere: the loss computes at T = 1
    missing = [role for role in wanted if role not in found and role not in fixed and role not in optional]
    if missing:
        role = missing[0]
        hint = f"name the parameter with --bind {role}=NAME (Python: roles={{{role!r}: NAME}})"
        if role in SCALAR_ROLES:
            hint += f", or, if the loss has it built in, give its value with --{role} VALUE ({role}=VALUE)"
        raise BindingError(f"cannot tell which parameter of {owner_text} is {role}: {hint}")
    if role_name != "the loss":
        owner_text = f"{role_name} {owner_text}"
    leftover = [p.name for p in free if p.name not in args]
    if leftover:
        looks_distillation = kind == "soft" and leftover[0] in ALIASES["labels"] + ALIASES["alpha"]
        raise BindingError(
            f"parameter {leftover[0]!r} of {owner_text} gets no value: it is not one of "
            f"{', '.join(wanted)}; give it one with --arg {leftover[0]}=VALUE (Python: args={{...}})"
            + (
                "; or is it a distillation loss? check it with --kind distillation"
                if looks_distillation
                else ""
            )
        )
    if inspect.isclass(target):
        required = [
            p.name
            for p in init_parameters[1:]
            if p.default is inspect.Parameter.empty
            and p.name not in init
            and not any(where == "init" and name == p.name for where, name in found.values())
        ]
        if required:
            raise BindingError(
                f"{_short_name(target)} needs the constructor argument {required[0]!r}: "
                f"give it with --init {required[0]}=VALUE"
            )
    if call_signature is None:
        positional = tuple(name for _, name in found.values())
    else:
        positional = tuple(
            name
            for name in (p.name for p in call_parameters if p.kind == inspect.Parameter.POSITIONAL_ONLY)
            if name in {n for _, n in found.values()} | set(args)
        )
    binding = Binding(target, kind, found, positional, args, init, fixed, tuple(by_position), method)
    if call_signature is not None:
        keyword = {name: None for where, name in found.values() if where == "call"} | dict(args)
        try:
            call_signature.bind(*[keyword.pop(name) for name in positional], **keyword)
        except TypeError as error:
            raise BindingError(f"{owner_text} cannot be called as a {kind} loss: {error}") from None
    return binding


def _owner_class(function: Callable) -> type | None:
    """The class of a method taken from it unbound (``Class.forward``), found by its qualified name."""
    parameters = list(_signature(function).parameters) if _signature(function) else []
    qualname = getattr(function, "__qualname__", "")
    if not parameters or parameters[0] != "self" or "." not in qualname:
        return None
    # The function's own globals: its module, even one imported from a file and not in sys.modules.
    first, *rest = qualname.split(".")[:-1]
    owner: Any = getattr(function, "__globals__", {}).get(first)
    for part in rest:
        owner = getattr(owner, part, None)
    if not inspect.isclass(owner):
        raise BindingError(
            f"{qualname} is a method taken from its class (its first parameter is self): pass the class, "
            "constructed with --init, or an instance"
        )
    return owner


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise BindingError(f"{name} must be a number, got {name}={value!r}")
    return float(value)
