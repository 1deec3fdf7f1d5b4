"""The root group: payretry's errors and the parser's as one line and a documented exit code,
and the commands named in payretry.cli (see _lazy.py), each imported when it is first used."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from functools import partial
from typing import Any, ClassVar, NoReturn

import typer
from typer.core import TyperGroup

from payretry.cli._context import AppContext
from payretry.cli._lazy import Lazy, LazyCommands
from payretry.cli._output import JSON_MODE, render_error
from payretry.cli._text import help_as_typed, text_as_typed
from payretry.errors import InvalidInput, PayretryError, UsageError

try:  # typer vendors click since 0.2x; before, it used click itself
    from typer._click import Context
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
    from typer._click.exceptions import UsageError as ParserError
    from typer._click.formatting import HelpFormatter
    from typer._click.utils import make_default_short_help
except ImportError:  # pragma: no cover - an older typer
    from click import Context  # type: ignore[assignment]
    from click.exceptions import ClickException, NoArgsIsHelpError  # type: ignore[assignment]
    from click.exceptions import UsageError as ParserError  # type: ignore[assignment]
    from click.formatting import HelpFormatter  # type: ignore[assignment]
    from click.utils import make_default_short_help  # type: ignore[no-redef]


def _short_help(summary: str, limit: int) -> str:
    """What click's listing shows for a command whose help starts with `summary`."""
    return make_default_short_help(summary, limit).strip()


_ARGV: ContextVar[tuple[str, ...]] = ContextVar("payretry_argv", default=())


def _wants_json(argv: tuple[str, ...]) -> bool:
    """Whether --json was typed (before any `--`): a parse error comes before its callback."""
    given = argv[: argv.index("--")] if "--" in argv else argv
    return "--json" in given


def _not_utf8(argv: list[str]) -> InvalidInput | None:
    """An argument that was not UTF-8 (Python keeps its bytes as lone surrogates, which no
    database or terminal accepts), named by the option it belongs to."""
    for index, arg in enumerate(argv):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            if arg.startswith("--") and "=" in arg:
                name = arg.split("=", 1)[0]
            elif index and argv[index - 1].startswith("-"):
                name = argv[index - 1]
            else:
                name = f"argument {index + 1}"
            return InvalidInput("is not UTF-8 text", field=name)
    return None


def _field_of(exc: ClickException) -> str | None:
    """The option or argument a parser error is about, as typed (`--limit`, `TRANSACTION_ID`)."""
    option = getattr(exc, "option_name", None)
    if option:
        return str(option)
    param = getattr(exc, "param", None)
    if param is None:
        return None
    if getattr(param, "param_type_name", None) == "option":
        longest = [o for o in param.opts if o.startswith("--")] or param.opts
        return str(longest[0])
    return str(param.name) if param.name else None


def _command_path(root: Context, argv: tuple[str, ...]) -> str:
    """The command the arguments name (`payretry events list`), for an error that does not
    carry its context (the parser's "requires an argument")."""
    path, command = [root.command_path], root.command
    for token in argv:
        commands = getattr(command, "commands", None)
        if not commands:
            break
        if token in commands:
            path.append(token)
            command = commands[token]
    return " ".join(path)


def _usage(exc: ClickException, root: Context | None = None) -> NoReturn:
    """A parser error as payretry reports errors: one line (and the usual hint) on stderr;
    with --json, the error document on stdout and the line on stderr."""
    as_json = JSON_MODE.get() or _wants_json(_ARGV.get())
    ctx = getattr(exc, "ctx", None)
    hint = None
    if not as_json:
        if ctx is not None:
            hint = f"Try '{ctx.command_path} --help' for help."
        elif root is not None:
            hint = f"Try '{_command_path(root, _ARGV.get())} --help' for help."
    render_error(UsageError(exc.format_message(), field=_field_of(exc)), as_json=as_json, hint=hint)
    raise typer.Exit(exc.exit_code)


class PayretryGroup(TyperGroup):
    """Turns payretry's errors, and the parser's, into a one-line message and a documented
    exit code. A subclass names its commands in `lazy_commands`: listed by their summaries,
    each built from its module when it is looked up."""

    lazy_commands: ClassVar[tuple[Lazy, ...]] = ()

    def __init__(self, **attrs: Any) -> None:
        attrs["params"] = text_as_typed(attrs.get("params"))  # no pydantic for --db and such
        super().__init__(**attrs)
        self.commands = LazyCommands(self.lazy_commands, eager=self.commands)

    def get_help_option(self, ctx: Context) -> Any:
        return help_as_typed(super().get_help_option(ctx))

    def list_commands(self, ctx: Context) -> list[str]:
        return list(self.commands)  # the names only: nothing is imported

    def format_commands(self, ctx: Context, formatter: HelpFormatter) -> None:
        """click's listing, with the summary of a command not yet built in place of its help
        (the same text: see payretry/cli/_lazy.py)."""
        commands = self.commands
        assert isinstance(commands, LazyCommands)
        rows: list[tuple[str, Callable[[int], str]]] = []
        for name in self.list_commands(ctx):
            if commands.loaded(name) or name not in commands.entries:
                command = commands[name]
                if not command.hidden:
                    rows.append((name, command.get_short_help_str))
            else:
                rows.append((name, partial(_short_help, commands.entries[name].summary)))
        if rows:
            limit = formatter.width - 6 - max(len(name) for name, _ in rows)
            with formatter.section("Commands"):
                formatter.write_dl([(name, short(limit)) for name, short in rows])

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        argv_token, json_token = _ARGV.set(tuple(argv)), JSON_MODE.set(False)
        try:
            bad = _not_utf8(argv)
            if bad is not None:
                render_error(bad, as_json=_wants_json(tuple(argv)))
                sys.exit(bad.exit_code)
            return super().main(
                argv,
                prog_name,
                complete_var,
                standalone_mode,
                windows_expand_args,
                **extra,
            )
        finally:
            _ARGV.reset(argv_token)
            JSON_MODE.reset(json_token)

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: Context | None = None,
        **extra: Any,
    ) -> Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except NoArgsIsHelpError:
            raise
        except ParserError as exc:
            _usage(exc)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except PayretryError as exc:
            render_error(exc)
            ctx.exit(exc.exit_code)
        except (typer.Exit, typer.Abort):
            raise
        except NoArgsIsHelpError:
            raise  # a group given no command: its help, as click shows it
        except ParserError as exc:
            _usage(exc, ctx)
        except Exception as exc:
            app_ctx = ctx.find_object(AppContext)
            if app_ctx is not None and app_ctx.debug:
                raise
            render_error(
                PayretryError(
                    f"internal error: {type(exc).__name__}: {exc} "
                    "(run with --debug for a traceback)"
                )
            )
            ctx.exit(1)
        finally:
            app_ctx = ctx.find_object(AppContext)
            if app_ctx is not None:
                app_ctx.close()
