"""What every command shares: settings resolved once, the store opened on first use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import typer

from payretry.config import Settings, load_settings

if TYPE_CHECKING:
    from payretry.store.sql import SqlStore


@dataclass
class AppContext:
    db: str | None = None
    config: str | None = None
    debug: bool = False
    log_format: str | None = None
    log_level: str | None = None
    _settings: Settings | None = None
    _store: SqlStore | None = None
    flags: dict[str, Any] = field(default_factory=dict)

    def set_flag(self, dotted: str, value: Any) -> None:
        """A command's own flag (highest precedence); settings are resolved again."""
        self.flags[dotted] = value
        self._settings = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            flags = {
                "database.url": self.db,
                "log.format": self.log_format,
                "log.level": self.log_level,
                **self.flags,
            }
            self._settings = load_settings(self.config, flags=flags)
            from payretry.logs import setup_logging

            setup_logging(self._settings["log.format"], self._settings["log.level"])
        return self._settings

    @property
    def store(self) -> SqlStore:
        if self._store is None:
            from payretry.store.sql import open_store

            settings = self.settings
            self._store = open_store(
                settings["database.url"],
                auto_migrate=settings["database.auto_migrate"],
                pool_size=settings["database.pool_size"],
                statement_timeout=settings["database.statement_timeout"],
            )
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def get_context(ctx: typer.Context) -> AppContext:
    obj = ctx.find_object(AppContext)
    if obj is None:  # a command invoked on its own, as in some tests
        obj = AppContext()
        ctx.obj = obj
    return obj
