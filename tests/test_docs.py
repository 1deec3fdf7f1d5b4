"""The documents keep up with the code: every setting in config.example.toml, every command in
the README, and the example config loads to the defaults."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer.main

from payretry.cli import app
from payretry.config import KEYS, load_settings

ROOT = Path(__file__).resolve().parent.parent


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"^\[([a-z_.]+)\]\s*$", text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def test_config_example_documents_every_key_and_its_variable() -> None:
    text = (ROOT / "config.example.toml").read_text()
    sections = _sections(text)
    for key in KEYS:
        body = sections.get(key.section, "")
        assert re.search(rf"^#? ?{key.name} =", body, flags=re.M), f"{key.dotted} undocumented"
        assert key.env in body or key.env in text, f"{key.env} not named"


def test_config_example_loads_to_the_defaults() -> None:
    settings = load_settings(str(ROOT / "config.example.toml"), env={})
    for key in KEYS:
        if key.secret:
            continue
        assert settings[key.dotted] == key.default, key.dotted


def _command_names(group: Any, prefix: str = "") -> list[str]:
    """Every command below `group` (the built click group: the root names its commands
    lazily, so the Typer app itself registers none)."""
    names = []
    for name, command in group.commands.items():
        subcommands = getattr(command, "commands", None)
        if subcommands:
            names += _command_names(command, f"{prefix}{name} ")
        else:
            names.append(prefix + name)
    return names


def test_the_readme_shows_every_command() -> None:
    readme = (ROOT / "README.md").read_text()
    names = _command_names(typer.main.get_command(app))
    assert {"queue", "status", "run-due", "events list", "stripe check"} <= set(names)
    for name in names:
        assert f"payretry {name}" in readme, f"README does not show `payretry {name}`"


def test_no_file_holds_a_merge_conflict_marker() -> None:
    root = Path(__file__).resolve().parents[1]
    files = [root / "README.md", root / "config.example.toml", root / "pyproject.toml"]
    for folder in ("payretry", "tests", "scripts", "docs"):
        files += [
            p
            for p in (root / folder).rglob("*")
            if p.suffix in {".py", ".md", ".sh", ".toml", ".html", ".css", ".js", ".ini"}
        ]
    marked = [
        f"{path.relative_to(root)}:{number}"
        for path in files
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if line.startswith(("<<<<<<< ", ">>>>>>> ")) or line == "=" * 7
    ]
    assert marked == []
