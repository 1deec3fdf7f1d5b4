"""Text parameters and flags taken as typed, so the commands that must start fast never
import pydantic.

typer (0.2x) builds, on first use, a pydantic TypeAdapter for every parameter it parses, a `str`
and even `--help` included: one text option costs the import of pydantic and pydantic-core,
some 60 to 75 ms of the 400 ms `payretry status` may take. A text needs no coercion (the parser
hands over a str, or the default None, and PayretryGroup has checked every argument is UTF-8
before parsing), nor does a flag (its bool, or the default). So the root's parameters and those
of a TextCommand skip it, and so does a repeatable text (`list[str] | None`): typer still
builds them, their help, usage and errors. Any other parameter (a number, a range, a path)
keeps typer's coercion; if typer ever builds its
parameters differently, nothing is swapped and commands are only slower (tests/cli/test_app.py
checks that status imports no pydantic)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from typer.core import TyperArgument, TyperCommand, TyperOption

try:  # typer vendors click since 0.2x; before, it used click itself
    from typer._click import Context, Parameter
    from typer._click.exceptions import MissingParameter
except ImportError:  # pragma: no cover - an older typer
    from click import Context, Parameter  # type: ignore[assignment]
    from click.exceptions import MissingParameter  # type: ignore[assignment]

_TEXT: tuple[Any, ...] = (str, str | None)
_TEXTS: tuple[Any, ...] = (list[str], list[str] | None)  # typer gives the first


def _process_as_typed(self: Any, ctx: Context, value: Any) -> Any:
    """typer's process_value without the coercion: required, then the callback."""
    if self.required and self.value_is_missing(value):
        raise MissingParameter(ctx=ctx, param=self)
    if self.callback is not None:
        value = self.callback(ctx, self, value)
    return value


# Subclasses that add no state (a parameter of typer's class can become one in place).
class TextOption(TyperOption):
    process_value = _process_as_typed


class TextArgument(TyperArgument):
    process_value = _process_as_typed


_AS_TEXT: dict[type[Parameter], type[Parameter]] = {
    TyperOption: TextOption,
    TyperArgument: TextArgument,
}


class TextsOption(TyperOption):
    """A repeatable text option (`list[str] | None`, default None): the parser already gives
    what typer's coercion would, a list of the texts given or None when none was."""

    process_value = _process_as_typed


def _is_texts(param: Parameter) -> bool:
    descriptor = getattr(param, "type_descriptor", None)
    return (
        type(param) is TyperOption
        and param.nargs == 1
        and bool(getattr(param, "multiple", False))
        and any(getattr(descriptor, "annotation", None) == texts for texts in _TEXTS)
        and param.default is None
    )


def _is_text(param: Parameter) -> bool:
    """A single text, or a flag (the parser gives its bool, or the default when absent,
    which typer passes through uncoerced in either case once it has built the adapter)."""
    descriptor = getattr(param, "type_descriptor", None)
    annotation = getattr(descriptor, "annotation", None)
    if type(param) not in _AS_TEXT or param.nargs != 1 or getattr(param, "multiple", False):
        return False
    if annotation is bool:
        return bool(getattr(param, "is_flag", False)) and not getattr(param, "count", False)
    return any(annotation == text for text in _TEXT)


def text_as_typed(params: Sequence[Parameter] | None) -> list[Parameter]:
    """`params`, each single `str` or `str | None` one made a TextOption or TextArgument, each
    repeatable `list[str] | None` one a TextsOption (the same object, its class a subclass of
    typer's that only leaves out the coercion)."""
    given = list(params or ())
    for param in given:
        if _is_text(param):
            param.__class__ = _AS_TEXT[type(param)]
        elif _is_texts(param):
            param.__class__ = TextsOption
    return given


def help_as_typed(option: Parameter | None) -> Any:
    """A command's --help flag (built by typer on first use, as its other flags), taken as
    typed: for a command's get_help_option."""
    text_as_typed([option] if option is not None else [])
    return option


class TextCommand(TyperCommand):
    """A typer command whose text parameters and flags are taken as typed (see above)."""

    def __init__(self, name: str | None, **attrs: Any) -> None:
        attrs["params"] = text_as_typed(attrs.get("params"))
        super().__init__(name, **attrs)

    def get_help_option(self, ctx: Context) -> Any:
        return help_as_typed(super().get_help_option(ctx))
