"""What every command shares: settings resolved once, and the composition root built from them
on first use (the store opens only when a command needs it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from payretry.config import Settings
    from payretry.store.sql import SqlStore
    from payretry.wiring import Wiring


@dataclass
class AppContext:
    db: str | None = None
    config: str | None = None
    debug: bool = False
    log_format: str | None = None
    log_level: str | None = None
    _settings: Settings | None = None
    _wiring: Wiring | None = None
    flags: dict[str, Any] = field(default_factory=dict)

    def set_flag(self, dotted: str, value: Any) -> None:
        """A command's own flag (highest precedence); settings are resolved again. Commands set
        their flags before they build anything."""
        self.flags[dotted] = value
        self._settings = None
        self.close()

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from payretry.config import load_settings
            from payretry.logs import setup_logging

            flags = {
                "database.url": self.db,
                "log.format": self.log_format,
                "log.level": self.log_level,
                **self.flags,
            }
            self._settings = load_settings(self.config, flags=flags)
            setup_logging(self._settings.log.format, self._settings.log.level)
        return self._settings

    @property
    def wiring(self) -> Wiring:
        if self._wiring is None:
            from payretry.wiring import Wiring

            self._wiring = Wiring(self.settings)
        return self._wiring

    @property
    def store(self) -> SqlStore:
        return self.wiring.store

    def close(self) -> None:
        if self._wiring is not None:
            self._wiring.close()
            self._wiring = None


def get_context(ctx: typer.Context) -> AppContext:
    obj = ctx.find_object(AppContext)
    if obj is None:  # a command invoked on its own, as in some tests
        obj = AppContext()
        ctx.obj = obj
    return obj
