"""Query API settings."""

from __future__ import annotations

from dataclasses import dataclass

from tracehouse.storage import ConfigError


@dataclass(frozen=True, slots=True)
class QueryConfig:
    """The API and the dashboard share `ui_port` on `host`."""

    host: str = "127.0.0.1"
    ui_port: int = 16686
    api_token: str | None = None
    #: Host names answered on loopback without a token besides the loopback's (`query.hosts`).
    allowed_hosts: tuple[str, ...] = ()

    def validate(self) -> None:
        if self.api_token is not None and (len(self.api_token) < 8 or any(c.isspace() for c in self.api_token)):
            raise ConfigError("api_token: must be at least 8 characters, without whitespace")
        if not 1 <= self.ui_port <= 65535 and self.ui_port != 0:
            raise ConfigError(f"ui_port: {self.ui_port} is not a TCP port (0-65535)")
