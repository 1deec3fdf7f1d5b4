"""The documents keep up with the code: every setting in config.example.toml, every command in
the README, and the example config loads to the defaults."""

from __future__ import annotations

import re
from pathlib import Path

import typer

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


def _command_names(group: typer.Typer, prefix: str = "") -> list[str]:
    names = [
        prefix + (c.name or c.callback.__name__)
        for c in group.registered_commands
        if c.callback is not None
    ]
    for sub in group.registered_groups:
        assert sub.typer_instance is not None and sub.name is not None
        names += _command_names(sub.typer_instance, f"{prefix}{sub.name} ")
    return names


def test_the_readme_shows_every_command() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in _command_names(app):
        assert f"payretry {name}" in readme, f"README does not show `payretry {name}`"
