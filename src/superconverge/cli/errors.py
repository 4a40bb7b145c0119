"""One error convention for every command: a one-line message and an exit status, never a traceback.

- exit 2, a usage error: a bad flag, value, path or config (``ValueError``, a missing file).
- exit 1, a failure while running: divergence, a damaged file (``RuntimeError``, other OS errors).
- exit 130: interrupted with Ctrl-C.

The library raises ordinary exceptions whose messages name its own arguments
(``start_lr must be positive``); :func:`in_cli_terms` rewrites those names into the
command's flags (``--start-lr must be positive``) so the user reads the words they typed.
Set ``SUPERCONVERGE_TRACEBACK=1`` to get the original exception and its traceback instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

import click

USAGE, FAILURE, INTERRUPTED = 2, 1, 130


class CliError(click.ClickException):
    """A one-line ``Error: ...`` on stderr with the given exit status (no usage banner)."""

    def __init__(self, message: str, exit_code: int = USAGE) -> None:
        super().__init__(" ".join(message.split()))  # one line, whatever the library wrote
        self.exit_code = exit_code


def in_cli_terms(message: str, params: Iterable[click.Parameter]) -> str:
    """Name flags, not Python arguments: ``batch_size must`` -> ``--batch-size must``.

    Only ``name=`` and ``name must`` are rewritten, so ordinary words in a message stay.
    """
    for param in params:
        flags = [o for o in getattr(param, "opts", []) if o.startswith("--")]
        if not isinstance(param, click.Option) or not flags or not param.name:
            continue
        message = re.sub(rf"(?<![\w-]){re.escape(param.name)}(?=(=| must\b))", flags[0], message)
    return message


def as_cli_error(err: BaseException, params: Iterable[click.Parameter] = ()) -> CliError:
    """The exit status and one-line message for an exception raised by a command."""
    if isinstance(err, KeyboardInterrupt):
        return CliError("interrupted", INTERRUPTED)
    if isinstance(err, (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError)):
        return CliError(in_cli_terms(str(err), params), USAGE)
    if isinstance(err, (RuntimeError, OSError)):
        return CliError(in_cli_terms(str(err), params), FAILURE)
    return CliError(f"unexpected {type(err).__name__}: {err} (this is a bug in superconverge; rerun with "
                    "SUPERCONVERGE_TRACEBACK=1 to see where)", FAILURE)


class ErrorReportingGroup(click.Group):
    """A click group whose commands turn every exception into :class:`CliError`."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except (Exception, KeyboardInterrupt) as err:
            if os.environ.get("SUPERCONVERGE_TRACEBACK") == "1":
                raise  # for developers: the original exception and its traceback
            command = self.get_command(ctx, ctx.invoked_subcommand or "")
            raise as_cli_error(err, command.params if command else ()) from None
