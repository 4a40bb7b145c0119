"""Check a config dataclass's values against its type hints, so a typo fails before any work.

TOML and ``--set`` give strings, numbers, booleans, lists and tables; a frozen config
dataclass calls :func:`check_types` in ``__post_init__`` and gets one clear error per
wrong value (``weight_decay must be a number, got 'abc' (text)``) instead of a
``TypeError`` deep inside the run.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Literal


def did_you_mean(name: str, choices: typing.Iterable[str]) -> str:
    """``"; did you mean 'cosine'?"`` for the closest choice, or ``""``.

    >>> did_you_mean("cosin", ["cosine", "step"])
    "; did you mean 'cosine'?"
    """
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_types(config: Any) -> None:
    """Raise ``ValueError`` naming the first field whose value does not match its type hint.

    Whole numbers are accepted where a float is hinted (TOML writes ``1`` for ``1.0``).
    """
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        problem = _mismatch(value, hints[field.name])
        if problem:
            raise ValueError(f"{field.name} must be {problem}, got {_shown(value)}")


def _mismatch(value: Any, hint: Any) -> str | None:
    """What ``value`` should have been, or None when it fits ``hint``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return None
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if value is None and len(options) < len(args):
            return None
        wanted = [_mismatch(value, a) for a in options]
        if any(w is None for w in wanted):
            return None
        return " or ".join(w for w in wanted if w) + (" (or left out)" if len(options) < len(args) else "")
    if origin is Literal:
        return None if value in args else "one of " + ", ".join(repr(a) for a in args)
    if hint is bool:
        return None if isinstance(value, bool) else "true or false"
    if hint is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else "a whole number"
    if hint is float:
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "a number"
    if hint is str:
        return None if isinstance(value, str) else "text"
    if origin in (tuple, list):
        if not isinstance(value, (tuple, list)):
            return "a list, e.g. [1, 2, 3]"
        if origin is tuple and args and args[-1] is not Ellipsis and len(args) != len(value):
            return f"a list of {len(args)} values"
        item = args[0] if args else Any
        return next((f"a list of items each {m}" for v in value if (m := _mismatch(v, item))), None)
    if origin is dict:
        return None if isinstance(value, dict) else "a table, e.g. {gamma = 0.1}"
    return None


def _shown(value: Any) -> str:
    kind = {str: "text", bool: "a boolean", int: "a whole number", float: "a number", list: "a list",
            tuple: "a list", dict: "a table"}.get(type(value), type(value).__name__)
    return f"{value!r} ({kind})"
