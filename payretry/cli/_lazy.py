"""Commands registered by name, their modules imported on first use.

The root `--help` lists every command with its summary, the first sentence of its help, which
is all the listing can show (click cuts a command's help at its first sentence); the summary is
written beside the name, so listing the commands imports none of them. Running a command, or
asking for its own `--help`, imports its module and builds it as the module's `register(app)`
says, once per process. tests/cli/test_app.py checks every summary against its command.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import typer
import typer.main

if TYPE_CHECKING:
    from typer._click import Command


@dataclass(frozen=True)
class Lazy:
    """One command (or command group): its name, the module under payretry.cli whose
    `register(app)` adds it, and its summary for the root --help."""

    name: str
    module: str
    summary: str


def first_sentence(text: str | None) -> str:
    """What click's listing takes from a help text: its first paragraph up to the first word
    ending in a full stop, whitespace collapsed."""
    words = (text or "").split("\n\n", 1)[0].split()
    for index, word in enumerate(words):
        if word.endswith("."):
            return " ".join(words[: index + 1])
    return " ".join(words)


@cache
def build(module: str, name: str) -> Command:
    """The command `name` as payretry.cli.`module`'s register(app) adds it."""
    found = importlib.import_module(f"payretry.cli.{module}")
    holder = typer.Typer(rich_markup_mode=None, add_completion=False)
    found.register(holder)
    return typer.main.get_group(holder).commands[name]


class LazyCommands(MutableMapping[str, "Command"]):
    """A group's commands: every name known from the start, each built when first looked up.
    Iterating gives the names in the order given; `loaded` tells whether one is built."""

    def __init__(self, entries: tuple[Lazy, ...], eager: MutableMapping[str, Command]) -> None:
        self.entries = {entry.name: entry for entry in entries}
        self._built: dict[str, Command] = dict(eager)

    def loaded(self, name: str) -> bool:
        return name in self._built

    def __getitem__(self, name: str) -> Command:
        command = self._built.get(name)
        if command is None:
            entry = self.entries[name]  # KeyError: no such command
            command = self._built[name] = build(entry.module, entry.name)
        return command

    def __setitem__(self, name: str, command: Command) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        self._built.pop(name, None)
        self.entries.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        yield from (name for name in self._built if name not in self.entries)
        yield from self.entries

    def __len__(self) -> int:
        return len(self._built.keys() | self.entries.keys())

    def __contains__(self, name: object) -> bool:
        return name in self.entries or name in self._built
