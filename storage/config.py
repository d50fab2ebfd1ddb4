"""Storage settings: which ClickHouse (embedded or a server) and how long data is kept."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from tracehouse.storage.errors import ConfigError

MIN_MEMORY_LIMIT = 256 * 1024 * 1024
MAX_MEMORY_LIMIT = 1024**4
#: Days a new store keeps spans when no `--ttl-days` is given.
DEFAULT_TTL_DAYS = 7
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
#: ``user:password@`` after a scheme, to the last ``@`` of the line (a password may hold ``@``, ``/``
#: or spaces) — unless what follows the colon is a port (``host:8080/…?mail=a@b`` keeps its host).
_PASSWORD = re.compile(r"(://[^/?#@\s:]*):(?!\d+(?:[/?#\s]|$)).*@")
#: Userinfo without a password is a token more often than a name (``https://TOKEN@host``).
_USER_ONLY = re.compile(r"(://)[^/?#@\s:]+@")
#: A query parameter whose value is a secret by its name: clickhouse-connect's ``access_token``, an
#: ``api_key`` in a hystrix.stream URL, ``password=``, a signature.
_SECRET_PARAMETER = re.compile(
    r"([?&;][^=&;#\s]*(?:pass|pwd|token|secret|key|auth|sig|credential|session|jwt)[^=&;#\s]*=)[^&;#\s]*", re.I
)


def redacted_url(text: str) -> str:
    """``text`` with every URL's password and secret query values (by their names) as ``***``, for
    logs and errors; text that is not a URL, or a malformed one, is redacted as well as it reads."""
    return _SECRET_PARAMETER.sub(r"\1***", _USER_ONLY.sub(r"\1***@", _PASSWORD.sub(r"\1:***@", text)))


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """`dsn`: `chdb:///abs/path[?database=db]` (embedded ClickHouse, one process owns the
    directory) or `http(s)://user:pass@host:port/db` (a ClickHouse server).
    `ttl_days`: how long spans and derived tables are kept; with `retention_given` (the operator
    asked for it) an existing store's tables are changed to it, else they keep theirs (a process
    started without `--ttl-days` must not shorten a store kept longer). `memory_limit`: bytes the embedded
    engine may use in all (its `max_server_memory_usage`; 0: its default, 90 % of RAM); past
    it ClickHouse refuses the query at hand (retryable: an insert is tried again alone, then
    spooled; merges are retried).
    A server's memory is its own configuration's."""

    dsn: str
    ttl_days: int = DEFAULT_TTL_DAYS
    memory_limit: int = 0
    retention_given: bool = False

    @property
    def embedded(self) -> bool:
        return self.dsn.startswith("chdb:")

    @property
    def path(self) -> Path:
        """The embedded store's data directory (only for `chdb:` DSNs)."""
        return Path(urlparse(self.dsn).path)

    @property
    def database(self) -> str:
        parsed = urlparse(self.dsn)
        if self.embedded:
            return parse_qs(parsed.query).get("database", ["default"])[0]
        return parsed.path.strip("/").split("/")[0] or "default"

    def with_database(self, database: str) -> StoreConfig:
        """The same ClickHouse, on `database` (the DSN rewritten to name it)."""
        if not _IDENTIFIER.match(database):
            raise ConfigError(f"database: {database!r} is not a plain identifier")
        parsed = urlparse(self.dsn)
        if self.embedded:
            query = [p for p in parsed.query.split("&") if p and not p.startswith("database=")]
            dsn = self.dsn.split("?", 1)[0] + "?" + "&".join([*query, f"database={database}"])
        else:
            dsn = parsed._replace(path=f"/{database}").geturl()
        return replace(self, dsn=dsn)

    def redacted_dsn(self) -> str:
        """The DSN without its password or tokens, for logs (`redacted_url`)."""
        return redacted_url(self.dsn)

    def validate(self) -> None:
        """Raise `ConfigError` naming the bad setting."""
        parsed = urlparse(self.dsn)
        if parsed.scheme not in ("chdb", "http", "https"):
            raise ConfigError(
                f"clickhouse: DSN {self.redacted_dsn()!r} must start with chdb:/// (embedded) "
                "or http(s):// (a ClickHouse server)"
            )
        if self.embedded and (parsed.netloc or not parsed.path.startswith("/")):
            raise ConfigError(f"clickhouse: embedded DSN needs an absolute path, chdb:///abs/path (got {self.dsn!r})")
        if not self.embedded and not parsed.hostname:
            raise ConfigError(f"clickhouse: DSN {self.redacted_dsn()!r} names no host")
        if not _IDENTIFIER.match(self.database):
            raise ConfigError(f"clickhouse: database name {self.database!r} is not a plain identifier")
        if self.memory_limit and not MIN_MEMORY_LIMIT <= self.memory_limit <= MAX_MEMORY_LIMIT:
            raise ConfigError(
                f"store_memory_limit: {self.memory_limit} bytes is outside {MIN_MEMORY_LIMIT} (256 MiB) .. 1 TiB; "
                "0 leaves the engine's default"
            )
        if not 1 <= self.ttl_days <= 36500:
            raise ConfigError(f"ttl_days: must be between 1 and 36500 (got {self.ttl_days})")
