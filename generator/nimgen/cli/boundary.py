"""What every command shares: the one place that turns errors into exit codes, and the global options.

`--debug` and `--no-color` are accepted before or after the subcommand (`nimgen --debug render` and
`nimgen render --debug`); `NO_COLOR` (https://no-color.org) turns colour off as `--no-color` does.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from nimgen.errors import NimgenError, UserError

EXIT_USER_ERROR = 1
EXIT_INTERNAL_ERROR = 3
EXIT_INTERRUPTED = 130
_DEBUG = "nimgen.debug"
F = TypeVar("F", bound=Callable[..., Any])


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_root().meta[_DEBUG] = True


def _set_no_color(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value or os.environ.get("NO_COLOR"):
        # A subcommand's context copies its parent's colour setting when it is created: set both.
        ctx.color = False
        ctx.find_root().color = False


def global_options(command: F) -> F:
    """`--debug` and `--no-color`, on the group and on every subcommand."""
    command = click.option("--no-color", is_flag=True, expose_value=False, is_eager=True, callback=_set_no_color,
                           help="No colour, also in error messages (as NO_COLOR=1 does).")(command)
    return click.option("--debug", is_flag=True, expose_value=False, is_eager=True, callback=_set_debug,
                        help="Show a traceback for unexpected errors.")(command)


def colour_on_stdout() -> bool:
    """Whether text for stdout may carry colour: a terminal, and neither --no-color nor NO_COLOR."""
    # click's own test: what click.echo uses to decide whether to strip colour from the same stream.
    return not click.utils.should_strip_ansi(sys.stdout, click.get_current_context().color)  # type: ignore[attr-defined]


def format_option(*choices: str, help_text: str) -> Callable[[F], F]:
    """`-o/--output FORMAT`: one option name for the report format of every command."""
    return click.option("-o", "--output", "output_format", type=click.Choice(list(choices)), default=choices[0],
                        show_default=True, help=help_text)


def note(text: str) -> None:
    """A line for people on stderr, never mixed into a report on stdout."""
    click.echo(text, err=True)


def environments(given: Sequence[Path]) -> list[Path]:
    """ENV_FILE arguments, or every environment of the repository around the working folder; a note per
    layer file skipped (a shell's `environments/*.yaml` matches `_defaults.yaml` too)."""
    from nimgen.repository import select_environments

    files, layers = select_environments(given, Path.cwd())
    for layer in layers:
        note(f"note: skipped {layer}: a layer merged under every environment, not an environment")
    return files


@contextmanager
def error_boundary() -> Iterator[None]:
    """User errors: message, exit 1. Bugs: one line (traceback with --debug), exit 3."""
    try:
        yield
    except UserError as exc:
        click.secho(f"error: {exc.render()}", fg="red", err=True)
        sys.exit(EXIT_USER_ERROR)
    except NimgenError as exc:
        click.secho(f"internal error: {exc}", fg="red", err=True)
        sys.exit(EXIT_INTERNAL_ERROR)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 - the single boundary for unexpected failures
        if click.get_current_context().find_root().meta.get(_DEBUG):
            traceback.print_exc()
        click.secho(
            f"internal error: {type(exc).__name__}: {exc}\n"
            "this is a bug in nimgen; run again with --debug for a traceback and report it",
            fg="red",
            err=True,
        )
        sys.exit(EXIT_INTERNAL_ERROR)
