"""The schema as DDL text, for `tracehouse schema print|apply`: the numbered migrations as
shipped (single node: byte for byte what `serve` applies) or rewritten for a ClickHouse
cluster — Replicated local tables ON CLUSTER, Distributed tables under the single-node names,
views that write on the shard where their rows land.

The cluster variant is derived statement by statement from the migration files, never written
by hand, so the two cannot drift; a statement or table it has no rule for is refused, not
guessed. The only names it adds are checked identifiers. Never executes anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tracehouse.storage.errors import ConfigError
from tracehouse.storage.migrate import VERSION_TABLE, VERSION_TABLE_NAME, migrations

#: Suffix of a sharded table's local (per-shard, replicated) half; the Distributed table over
#: it keeps the single-node name, so every reader, writer and user query works unchanged.
LOCAL_SUFFIX = "_local"
#: Keeper paths of the replicated tables; ClickHouse expands the macros on each node.
SHARD_PATH = "/clickhouse/tables/{shard}/{database}/{table}"
SHARD_REPLICA = "{replica}"
#: One replica set over every node: the shard in the replica name keeps names unique even
#: where `{replica}` repeats from shard to shard.
EVERY_NODE_PATH = "/clickhouse/tables/all/{database}/{table}"
EVERY_NODE_REPLICA = "{shard}-{replica}"

_CLUSTER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")
_DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True, slots=True)
class Sharded:
    """Rows spread over the shards by `key`, each shard's part kept by its replicas; reads and
    writes go through a Distributed table. Rows that must meet (a trace's spans and its id
    lookup; a breaker sample and its retry, merged by FINAL) must hash to the same shard."""

    key: str


@dataclass(frozen=True, slots=True)
class EveryNode:
    """One replica set spanning every node, so each node holds all rows: for small tables that
    are deleted from (a Distributed table takes no DELETE) or read before anything else."""


@dataclass(frozen=True, slots=True)
class PerNode:
    """A table without rows (ENGINE = Null) on each node: an insert entry point whose views
    forward the rows through the Distributed tables."""


Placement = Sharded | EveryNode | PerNode

#: Where each table's rows live on a cluster. A migration adding a table must add it here.
PLACEMENT: dict[str, Placement] = {
    VERSION_TABLE_NAME: EveryNode(),
    "otel_traces": Sharded("cityHash64(TraceId)"),
    "otel_traces_trace_id_ts": Sharded("cityHash64(TraceId)"),
    "tracehouse_traces": Sharded("cityHash64(TraceId)"),  # until 0014
    "tracehouse_trace_summaries": Sharded("cityHash64(TraceId)"),
    "tracehouse_operations": Sharded("cityHash64(ServiceName, SpanName)"),
    "otel_traces_otlp": PerNode(),
    "tracehouse_red_1m": Sharded("cityHash64(ServiceName, SpanName, SpanKind)"),
    # The linker deletes superseded generations of each minute; readers join a minute's links
    # to its newest complete generation, so a node must see every row of a minute.
    "tracehouse_links_1m": EveryNode(),
    "tracehouse_link_dirty": Sharded("rand()"),
    # ReplacingMergeTree read with FINAL: a resent sample must land on the shard of the first.
    "tracehouse_breaker_stats": Sharded("cityHash64(Cluster, Kind, Name, InstanceId)"),
}


@dataclass(frozen=True, slots=True)
class Target:
    """Where the DDL goes: `cluster` None is a single node (the migrations unchanged)."""

    database: str
    cluster: str | None = None

    def validate(self) -> None:
        if not _DATABASE_NAME.match(self.database):
            raise ConfigError(f"database: {self.database!r} is not a plain identifier")
        if self.cluster is not None and not _CLUSTER_NAME.match(self.cluster):
            raise ConfigError(f"cluster: {self.cluster!r} is not a cluster name (letters, digits, _ . -)")

    @property
    def on_cluster(self) -> str:
        return f" ON CLUSTER {_quote(self.cluster)}" if self.cluster is not None else ""


@dataclass(frozen=True, slots=True)
class Step:
    """Statements applied as one unit, then recorded as schema `version` (0: set-up, not recorded)."""

    version: int
    name: str
    statements: tuple[str, ...]

    @property
    def title(self) -> str:
        return f"{self.version:04d}_{self.name}" if self.version else self.name


def steps(target: Target, ttl_days: int) -> list[Step]:
    """The database, the version table, then every migration in order, for `target`."""
    target.validate()
    setup = [f"CREATE DATABASE IF NOT EXISTS {_quote(target.database)}{target.on_cluster}"]
    if target.cluster is None:
        setup += [f"USE {_quote(target.database)}", VERSION_TABLE.strip()]
    else:
        setup += cluster_statement(VERSION_TABLE.strip(), target)
    found = [Step(0, "database and schema version table", tuple(setup))]
    for migration in migrations(ttl_days):
        statements = migration.statements
        if target.cluster is not None:
            statements = tuple(out for s in statements for out in cluster_statement(s, target))
        found.append(Step(migration.version, migration.name, statements))
    return found


def record_version(step: Step, target: Target) -> str:
    """The INSERT that records `step` as applied (names are from `[a-z0-9_]` file names)."""
    table = _name(target, VERSION_TABLE_NAME) if target.cluster is not None else VERSION_TABLE_NAME
    return f"INSERT INTO {table} (Version, Name) VALUES ({int(step.version)}, '{step.name}')"  # noqa: S608


def sync_versions(target: Target) -> str:
    """Wait until every replica of the (cluster) version table has the versions recorded so far."""
    return f"SYSTEM SYNC REPLICA{target.on_cluster} {_name(target, VERSION_TABLE_NAME)}"


def render(target: Target, ttl_days: int) -> str:
    """The whole schema as one script, `;`-terminated statements (`clickhouse-client --multiquery`)."""
    found = steps(target, ttl_days)
    where = f"cluster {target.cluster}" if target.cluster is not None else "a single node"
    lines = [
        f"-- Tracehouse schema version {found[-1].version} for {where}, database {target.database}.",
        "-- Written by `tracehouse schema print`; every statement is idempotent.",
    ]
    for step in found:
        lines += ["", f"-- {step.title}"]
        statements = [*step.statements, record_version(step, target)] if step.version else step.statements
        lines += [f"{statement};\n" for statement in statements]
    return "\n".join(lines).rstrip("\n") + "\n"


# -- the cluster rewrite ------------------------------------------------------------------

_CREATE_TABLE = re.compile(r"^CREATE TABLE IF NOT EXISTS (\w+) \(")
_ENGINE = re.compile(r"\bENGINE = (\w+)(\(([^()]*)\))?")
_CREATE_VIEW = re.compile(r"^CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+)\s+TO (\w+)\s+AS\s", re.S)
_FROM = re.compile(r"\bFROM (\w+)\b")
_JOINED = re.compile(r"(?<!ARRAY )\bJOIN (\w+)\b")  # ARRAY JOIN unnests columns: no table
_CREATE_FUNCTION = re.compile(r"^CREATE (FUNCTION IF NOT EXISTS|OR REPLACE FUNCTION) (\w+) AS ")
_ALTER_TABLE = re.compile(r"^ALTER TABLE (\w+) ")
_MODIFY_QUERY = re.compile(r"^ALTER TABLE (\w+) MODIFY QUERY\s+", re.S)
_DROP = re.compile(r"^DROP (VIEW|TABLE) IF EXISTS (\w+)$")
_INSERT_SELECT = re.compile(r"^INSERT INTO (\w+)\s+SELECT\s", re.S)


def cluster_statement(statement: str, target: Target) -> list[str]:
    """One single-node statement -> its statements for `target.cluster`."""
    if match := _CREATE_TABLE.match(statement):
        return _table(match[1], statement[match.end() :], target)
    if match := _CREATE_VIEW.match(statement):
        return [_view(match[1], match[2], statement[match.end() :], target)]
    if match := _CREATE_FUNCTION.match(statement):
        # Functions belong to no database; ON CLUSTER creates one on every node.
        return [f"CREATE {match[1]} {match[2]}{target.on_cluster} AS {statement[match.end() :]}"]
    if match := _MODIFY_QUERY.match(statement):
        # A view's new query: on every node, reading and writing as its CREATE does.
        select, _ = _view_select(match[1], statement[match.end() :], target)
        return [f"ALTER TABLE {_name(target, match[1])}{target.on_cluster} MODIFY QUERY\n{select}"]
    if match := _ALTER_TABLE.match(statement):
        return [_alter(match[1], statement[match.end() :], target)]
    if match := _DROP.match(statement):
        return _drop(match[1], match[2], target)
    if match := _INSERT_SELECT.match(statement):
        return [_copy(match[1], statement, target)]
    raise ValueError(f"no cluster form for this statement (add a rule to storage/ddl.py): {statement[:80]!r}")


def _table(name: str, rest: str, target: Target) -> list[str]:
    placement = _placement(name)
    engine = _ENGINE.search(rest)
    if engine is None:
        raise ValueError(f"table {name}: no ENGINE clause")
    if isinstance(placement, PerNode):
        if engine[1] != "Null":
            raise ValueError(f"table {name}: a per-node table must have no rows (ENGINE = Null), not {engine[1]}")
        return [f"CREATE TABLE IF NOT EXISTS {_name(target, name)}{target.on_cluster} ({rest}"]
    if not engine[1].endswith("MergeTree") or engine[1].startswith("Replicated"):
        raise ValueError(f"table {name}: no replicated form of ENGINE = {engine[1]}")
    path, replica = (
        (SHARD_PATH, SHARD_REPLICA) if isinstance(placement, Sharded) else (EVERY_NODE_PATH, EVERY_NODE_REPLICA)
    )
    args = ", ".join(a for a in (f"'{path}'", f"'{replica}'", (engine[3] or "").strip()) if a)
    replicated = rest[: engine.start()] + f"ENGINE = Replicated{engine[1]}({args})" + rest[engine.end() :]
    if isinstance(placement, EveryNode):
        return [f"CREATE TABLE IF NOT EXISTS {_name(target, name)}{target.on_cluster} ({replicated}"]
    local = _name(target, name + LOCAL_SUFFIX)
    assert target.cluster is not None
    distributed = (
        f"CREATE TABLE IF NOT EXISTS {_name(target, name)}{target.on_cluster} AS {local}\n"
        f"ENGINE = Distributed('{target.cluster}', '{target.database}', '{name}{LOCAL_SUFFIX}', {placement.key})\n"
        # Like the local tables: an insert queued for a shard is on disk when it returns.
        "SETTINGS fsync_after_insert = 1, fsync_directories = 1"
    )
    return [f"CREATE TABLE IF NOT EXISTS {local}{target.on_cluster} ({replicated}", distributed]


def _alter(name: str, change: str, target: Target) -> str:
    """A change to a table's data (projections, settings) is made where its rows are: a sharded
    table's local tables (the Distributed table over them holds none), any other table itself."""
    placement = _placement(name)
    if isinstance(placement, PerNode):
        raise ValueError(f"table {name}: a per-node table has no rows to alter")
    table = name + LOCAL_SUFFIX if isinstance(placement, Sharded) else name
    return f"ALTER TABLE {_name(target, table)}{target.on_cluster} {change}"


def _drop(kind: str, name: str, target: Target) -> list[str]:
    """A view is on every node; a sharded table is its Distributed table and its local tables
    (SYNC: the replicas leave Keeper before the statement returns)."""
    if kind == "VIEW":
        return [f"DROP VIEW IF EXISTS {_name(target, name)}{target.on_cluster}"]
    names = [name, name + LOCAL_SUFFIX] if isinstance(_placement(name), Sharded) else [name]
    return [f"DROP TABLE IF EXISTS {_name(target, table)}{target.on_cluster} SYNC" for table in names]


def _copy(name: str, statement: str, target: Target) -> str:
    """`INSERT INTO t SELECT ... FROM s`, run once on one node: it reads every shard through the
    Distributed tables and writes through them (rows go where t's key sends them). Subqueries
    over a sharded table must be GLOBAL, or ClickHouse refuses a distributed IN in a distributed query."""
    tables = [name, *_FROM.findall(statement)]
    for table in tables:
        if isinstance(_placement(table), PerNode):
            raise ValueError(f"table {table}: a per-node table has no rows to copy")
    if " IN (SELECT" in statement and " GLOBAL " not in statement:
        raise ValueError(f"copy into {name}: a subquery over a sharded table must be GLOBAL IN")
    qualified = _FROM.sub(lambda m: f"FROM {_name(target, m[1])}", statement)
    return qualified.replace(f"INSERT INTO {name}", f"INSERT INTO {_name(target, name)}", 1)


def _view(name: str, to: str, select: str, target: Target) -> str:
    """A view fires on the node that receives an insert into its source. Over a sharded table
    that is a shard's replica, so it reads the local table and writes the local table of its
    target (rows derived from a shard's spans stay on that shard). Over a per-node entry table
    it writes through the target's Distributed table, which shards the rows."""
    select, shard_local = _view_select(name, select, target)
    local_target = shard_local and isinstance(_placement(to), Sharded)
    to_name = _name(target, to + LOCAL_SUFFIX if local_target else to)
    return f"CREATE MATERIALIZED VIEW IF NOT EXISTS {_name(target, name)}{target.on_cluster}\nTO {to_name}\nAS {select}"


def _view_select(name: str, select: str, target: Target) -> tuple[str, bool]:
    """A view's query reading the shard's local table (True) or the per-node entry table."""
    sources = {*_FROM.findall(select), *_JOINED.findall(select)}
    if len(sources) != 1:
        raise ValueError(f"view {name}: expected one source table, found {sorted(sources)}")
    (source,) = sources
    shard_local = isinstance(_placement(source), Sharded)
    if not shard_local and not isinstance(_placement(source), PerNode):
        raise ValueError(f"view {name}: no cluster rule for a view over {source}")
    table = source + LOCAL_SUFFIX if shard_local else source
    return _FROM.sub(f"FROM {_name(target, table)}", select), shard_local


def _placement(table: str) -> Placement:
    try:
        return PLACEMENT[table]
    except KeyError:
        raise ValueError(f"table {table} has no cluster placement: add it to storage/ddl.py PLACEMENT") from None


def _name(target: Target, table: str) -> str:
    return f"{_quote(target.database)}.{table}"


def _quote(identifier: str | None) -> str:
    """Checked identifiers only; a cluster name may hold `-` or `.`, which need backquotes."""
    assert identifier is not None
    assert "`" not in identifier
    return identifier if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", identifier) else f"`{identifier}`"
