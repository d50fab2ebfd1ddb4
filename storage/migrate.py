"""Numbered schema migrations (`migrations/NNNN_name.sql`), applied in order at start-up.

Each statement is idempotent (IF NOT EXISTS), and the versions applied are recorded in
`tracehouse_schema_migrations`, so applying twice changes nothing. Never edit a
migration that has shipped: add the next number.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

from clickhouse_connect.driver.client import Client

log = logging.getLogger(__name__)

VERSION_TABLE_NAME = "tracehouse_schema_migrations"
VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS tracehouse_schema_migrations (
    Version UInt32,
    Name String,
    AppliedAt DateTime64(3) DEFAULT now64(3)
) ENGINE = ReplacingMergeTree
ORDER BY Version
"""
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_MODIFIED_VIEW = re.compile(r"^ALTER TABLE\s+(\w+)\s+MODIFY QUERY\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def migrations(ttl_days: int) -> list[Migration]:
    """Every migration shipped with this package, in version order."""
    found = []
    for entry in resources.files("tracehouse.storage").joinpath("migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            text = entry.read_text(encoding="utf-8")
            found.append(Migration(int(match[1]), match[2], split_statements(text, ttl_days)))
    found.sort(key=lambda m: m.version)
    return found


def split_statements(text: str, ttl_days: int) -> tuple[str, ...]:
    """SQL text -> statements: `--` comment lines dropped, split at a `;` ending a line.

    `{ttl_days}` is the only placeholder; it takes an int from the validated config.
    """
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    code = code.replace("{ttl_days}", str(int(ttl_days)))
    return tuple(s.strip() for s in re.split(r";[ \t]*$", code, flags=re.M) if s.strip())


def applied_versions(client: Client) -> set[int]:
    client.command(VERSION_TABLE)
    return {row[0] for row in client.query("SELECT DISTINCT Version FROM tracehouse_schema_migrations").result_rows}


def schema_version(client: Client) -> int:
    """The highest migration version recorded in the database (0 for an empty one)."""
    return max(applied_versions(client), default=0)


def apply_migrations(client: Client, ttl_days: int, progress: Callable[[str], None] | None = None) -> list[Migration]:
    """Apply the migrations not yet recorded; returns those applied now. `progress` hears one
    line per migration, before it runs (the log hears it anyway)."""
    done = applied_versions(client)
    newest, known = max(done, default=0), latest_version()
    if newest > known:
        log.warning("schema version %d is newer than this Tracehouse knows (%d); upgrade it", newest, known)
    pending = [m for m in migrations(ttl_days) if m.version not in done]
    for number, migration in enumerate(pending, 1):
        line = f"applying migration {migration.version:04d}_{migration.name} ({number} of {len(pending)})"
        log.info("schema: %s", line)
        if progress is not None:
            progress(line)
        for statement in migration.statements:
            client.command(statement)
        client.insert(
            "tracehouse_schema_migrations",
            [[migration.version, migration.name]],
            column_names=["Version", "Name"],
        )
    return pending


#: An unlikely `ttl_days`, to find in the migrations' statements the tables created to keep it.
_PROBE_DAYS = 987_654
_RETAINED = re.compile(rf"^CREATE TABLE IF NOT EXISTS (\w+)\b.*\bTTL (.+?) \+ toIntervalDay\({_PROBE_DAYS}\)", re.S)
_KEPT_DAYS = re.compile(r"\bTTL .*?toIntervalDay\((\d+)\)")


def retained_tables() -> dict[str, str]:
    """Every table the migrations create to keep `ttl_days`, with the time its TTL counts from."""
    return {
        found[1]: found[2].strip()
        for migration in migrations(_PROBE_DAYS)
        for statement in migration.statements
        if (found := _RETAINED.match(statement))
    }


def kept_days(client: Client) -> dict[str, int]:
    """The days each retained table of the current database keeps, as its TTL says now."""
    rows = client.query("SELECT name, engine_full FROM system.tables WHERE database = currentDatabase()").result_rows
    engines = {str(name): str(engine) for name, engine in rows}
    return {
        table: int(days[1])
        for table in retained_tables()
        if (days := _KEPT_DAYS.search(engines.get(table, ""))) is not None
    }


def apply_retention(client: Client, ttl_days: int, progress: Callable[[str], None] | None = None) -> list[str]:
    """Make every retained table keep `ttl_days` (`ALTER TABLE … MODIFY TTL`) where it keeps another
    number: a table's TTL was fixed when it was created, so a later `--ttl-days` only changed which
    spans were accepted — 30 days asked, 7 kept, the rest acknowledged and dropped (operator review).
    Spans already stored follow the new TTL too (the engine re-reads it in the background). Returns
    the tables changed. Table names and TTL times come from the migrations; `ttl_days` is an int."""
    expressions = retained_tables()
    changed = []
    for table, days in kept_days(client).items():
        if days == ttl_days:
            continue
        line = f"retention of {table}: {days} -> {ttl_days} days"
        log.info("schema: %s", line)
        if progress is not None:
            progress(line)
        client.command(f"ALTER TABLE {table} MODIFY TTL {expressions[table]} + toIntervalDay({int(ttl_days)})")
        changed.append(table)
    return changed


def modified_views(applied: list[Migration]) -> list[str]:
    """The views whose query `applied` changed (`ALTER TABLE v MODIFY QUERY`), in order."""
    names = [m[1] for migration in applied for s in migration.statements if (m := _MODIFIED_VIEW.match(s))]
    return list(dict.fromkeys(names))


def reload_views(client: Client, views: list[str]) -> None:
    """Detach and attach each of `views`, so the engine runs them as loaded from their stored
    definition, as after a restart. A view whose query was modified in the engine's life makes
    other insert-deduplication ids for the blocks it writes than the same view after a restart:
    a batch inserted before a crash and replayed after it (same token) would be stored twice.
    Inserts into the view's source pass it by while it is detached: only for an engine nobody
    else writes to (the embedded store, before its collector starts)."""
    for view in views:
        log.info("schema: reloading view %s (its query changed)", view)
        client.command("DETACH TABLE {view:Identifier}", parameters={"view": view})
        client.command("ATTACH TABLE {view:Identifier}", parameters={"view": view})


def recorded_versions(client: Client, database: str) -> set[int]:
    """The versions recorded in `database`; empty when it has no schema or does not exist.
    Read-only: creates nothing (a collector must not make a single-node table on a cluster)."""
    found = client.query(
        "SELECT count() FROM system.tables WHERE database = {db:String} AND name = {table:String}",
        parameters={"db": database, "table": VERSION_TABLE_NAME},
    ).result_rows
    if not found[0][0]:
        return set()
    rows = client.query(
        "SELECT DISTINCT Version FROM {db:Identifier}.{table:Identifier}",
        parameters={"db": database, "table": VERSION_TABLE_NAME},
    ).result_rows
    return {int(row[0]) for row in rows}


def latest_version() -> int:
    """The version of the newest migration this package ships."""
    return migrations(ttl_days=1)[-1].version
