"""Parsing shared by several commands: ``--set KEY=VALUE`` and the plot paths they write."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from superconverge.cli.errors import CliError


def parse_sets(items: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` items as a mapping; VALUE is a TOML value, or else a bare word (text).

    >>> parse_sets(["max_lr=0.4", "widths=[64, 128, 128]", "optimizer=adamw", 'precision="bf16"'])
    {'max_lr': 0.4, 'widths': [64, 128, 128], 'optimizer': 'adamw', 'precision': 'bf16'}
    """
    changes: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or not key:
            raise CliError(f"--set takes KEY=VALUE (e.g. --set max_lr=0.4), got {item!r}")
        if not raw:
            raise CliError(f"--set {key}= has no value: write --set {key}=VALUE")
        try:
            changes[key] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            if raw[0] in "[{\"'":  # meant as a list, table or quoted text, but not valid TOML
                raise CliError(f"--set {key}={raw}: not a valid TOML value (lists look like [1, 2], tables "
                               f"like {{gamma = 0.1}}, text like \"bf16\")") from None
            changes[key] = raw  # a bare word is text
    return changes


def plot_target(path: Path | str | None, flag: str) -> Path | None:
    """The file a plot option will really write, checked before any work starts.

    matplotlib adds ``.png`` to a name without an extension; an extension it cannot write
    is a usage error now rather than a lost result later.
    """
    if path is None:
        return None
    from superconverge.report.plots import plot_path

    try:
        return plot_path(path, what=flag)
    except ValueError as err:
        raise CliError(str(err)) from None
