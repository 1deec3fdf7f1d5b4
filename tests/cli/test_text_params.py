"""Parameters taken as typed (payretry/cli/_text.py): a TextCommand hands its function the same
values typer's own coercion does, for the kinds it takes over (texts, repeatable texts, flags),
and leaves every other kind to typer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from payretry.cli._text import TextArgument, TextCommand, TextOption, TextsOption


def _app(cls: type[TextCommand] | None) -> typer.Typer:
    app = typer.Typer()

    def show(
        name: Annotated[str, typer.Argument()],
        note: Annotated[str | None, typer.Option("--note")] = None,
        tags: Annotated[list[str] | None, typer.Option("--tag")] = None,
        counts: Annotated[list[int] | None, typer.Option("--count")] = None,
        size: Annotated[int, typer.Option("--size")] = 1,
        path: Annotated[Path | None, typer.Option("--path")] = None,
        loud: Annotated[bool, typer.Option("--loud")] = False,
    ) -> None:
        print(repr((name, note, tags, counts, size, path, loud)))

    app.command("show", cls=cls)(show)

    @app.command("other")
    def other() -> None:  # a second command, so "show" is a subcommand as in payretry
        pass

    return app


CASES = [
    ["show", "n"],
    ["show", "n", "--note", "a b", "--tag", "x", "--tag", "y=z", "--loud"],
    ["show", "n", "--note", "", "--tag", ""],
    ["show", "n", "--count", "3", "--count", "4", "--size", "7", "--path", "d/f"],
    ["show", "n", "--count", "x"],
    ["show", "n", "--size", "1.5"],
    ["show"],
    ["show", "n", "--tag"],
]


@pytest.mark.parametrize("argv", CASES, ids=[" ".join(c) for c in CASES])
def test_a_text_command_gives_what_typer_gives(argv: list[str]) -> None:
    runner = CliRunner()
    ours = runner.invoke(_app(TextCommand), argv)
    typers = runner.invoke(_app(None), argv)
    assert (ours.exit_code, ours.output) == (typers.exit_code, typers.output)


def test_only_texts_and_flags_are_taken_over() -> None:
    command = typer.main.get_command(_app(TextCommand))
    show = command.commands["show"]  # type: ignore[attr-defined]
    kinds = {p.name: type(p) for p in show.params}
    assert kinds["name"] is TextArgument
    assert kinds["note"] is TextOption and kinds["loud"] is TextOption
    assert kinds["tags"] is TextsOption
    for coerced in ("counts", "size", "path"):
        assert kinds[coerced] not in (TextArgument, TextOption, TextsOption), coerced
