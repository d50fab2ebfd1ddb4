"""Property-based fuzzing of a real `tracehouse serve`: every query parameter of the native API
and every ingest route get hypothesis-generated values and bodies. Never a 5xx, always JSON
from the API, and no value ever acts as SQL text: the store holds one known trace and one
known breaker, and a hostile value that is not their name must find nothing (or, for `!key`,
exactly what an absent attribute finds). The count of inputs tried is printed per test."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.e2e.server import Server
from tests.reliability.harness import GRPC_EXPORT, Trace, serving

pytestmark = pytest.mark.reliability

VICTIM = {"service": "victim", "operation": "victim-op", "key": "victim.key", "value": "victim-value"}
VICTIM_KEYS = {"service.name", VICTIM["key"]}
HOSTILE = [
    "'", "''", "\\", "\\'", "\"", "`", ";", "--", "/*", "%", "_", "*", "?", "$1", "\x00", "\x00'", "\u2028", "\ufeff",
    "' OR 1=1 --", "') OR ('1'='1", "victim' --", "victim\x00", "victim%", "victim'", " victim", "VICTIM",
    "{x:String}", "{service:String}", "{operation:String}", "{k0:String}", "{v0:String}", "{limit:UInt32}",
    "{start:Int64}", "{key:String}", "{prefix:String}", "{cluster:String}", "'; DROP TABLE otel_traces; --",
    "\\x00", "\\0", "\\n", "\n", "\r\n", "ü", "🙂", "a" * 2000,
]  # fmt: skip
FUZZ = settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=60)
hostile = st.one_of(
    st.sampled_from(HOSTILE),
    text,
    st.builds(lambda a, b, c: a + b + c, st.sampled_from(HOSTILE), text, st.sampled_from(HOSTILE)),
)
tried: dict[str, int] = {}
CLIENT = httpx.Client(timeout=30)  # keep-alive: the fuzz spends its time on the server, not on connecting


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("fuzz") / "data") as running:
        _seed(running)
        yield running
        assert running.proc.poll() is None, running.text()
        assert "Traceback" not in running.text(), running.text()
    CLIENT.close()
    print("inputs tried: " + ", ".join(f"{name} {n}" for name, n in tried.items()) + f"; total {sum(tried.values())}")


def _seed(server: Server) -> None:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="victim")))
    span = resource_spans.scope_spans.add().spans.add(trace_id=b"\x0b" * 16, span_id=b"\x0c" * 8, name="victim-op")
    span.start_time_unix_nano = time.time_ns() - 60 * 10**9
    span.end_time_unix_nano = span.start_time_unix_nano + 5 * 10**6
    span.attributes.append(KeyValue(key=VICTIM["key"], value=AnyValue(string_value=VICTIM["value"])))
    posted = httpx.post(
        f"{server.otlp_http}/v1/traces",
        content=request.SerializeToString(),
        headers={"content-type": "application/x-protobuf"},
    )
    assert posted.status_code == 200
    sample = {
        "kind": "command", "name": "victim-breaker", "group": "victim", "second": int(time.time()) - 2,
        "state": "closed", "counts": {"success": 5}, "latency": {"buckets": {}, "sumMs": 0}, "concurrency": 0,
        "maxConcurrency": 1, "gauges": {}, "properties": {},
    }  # fmt: skip
    report = {"service": "victim", "instance": "victim:1", "cluster": "victim", "samples": [sample]}
    assert httpx.post(f"{server.otlp_http}/v1/breakers", json=report).status_code == 200
    # The oracle holds only if the victims are findable by their true names.
    assert _traces(server, {"service": "victim"}) == [VICTIM_TRACE]
    assert _traces(server, {"attr": f"{VICTIM['key']}={VICTIM['value']}"}) == [VICTIM_TRACE]
    assert _breakers(server, {"cluster": "victim", "window": "60m"}) == ["victim-breaker"]


VICTIM_TRACE = "0b" * 16


def _count(name: str) -> None:
    tried[name] = tried.get(name, 0) + 1


def _get(server: Server, path: str, params: dict[str, str]) -> tuple[int, Any]:
    answer = CLIENT.get(f"{server.ui}{path}", params=params)
    assert answer.status_code in (200, 400), (params, answer.status_code, answer.text[:300])
    body = answer.json()
    if answer.status_code == 400:
        assert body["error"]["status"] == 400
        assert body["error"]["message"]
    return answer.status_code, body


def _traces(server: Server, params: dict[str, str]) -> list[str] | None:
    """Trace ids found, or None when the API refused the parameters (400)."""
    status, body = _get(server, "/api/v1/traces", params)
    return [t["traceId"] for t in body["traces"]] if status == 200 else None


def _breakers(server: Server, params: dict[str, str]) -> list[str] | None:
    status, body = _get(server, "/api/v1/breakers", params)
    return [b["name"] for b in body["breakers"]] if status == 200 else None


@FUZZ
@given(name=st.sampled_from(["service", "operation"]), value=hostile.filter(lambda v: v not in ("victim", "")))
def test_service_and_operation_values_are_only_values(server: Server, name: str, value: str) -> None:
    _count("service/operation")
    assert _traces(server, {"service": "victim", name: value}) in ([], None)


@FUZZ
@given(key=hostile.filter(lambda k: "=" not in k and k.strip() and k not in VICTIM_KEYS and not k.startswith("!")),
       op=st.sampled_from(["=", "!=", "=~", "exists", "absent"]), value=hostile)  # fmt: skip
def test_attribute_keys_and_values_are_only_values(server: Server, key: str, op: str, value: str) -> None:
    """A key the victim lacks: `key`, `key=v`, `key!=v`, `key=~re` find nothing; `!key` finds it."""
    _count("attr")
    expression = {"exists": key, "absent": "!" + key}.get(op, f"{key}{op}{value}")
    found = _traces(server, {"attr": expression})
    if op == "absent":
        assert found == [VICTIM_TRACE]
    else:
        assert found in ([], None)  # None: a regex the store cannot compile, a 400


@FUZZ
@given(value=hostile)
def test_victim_attribute_values_match_only_themselves(server: Server, value: str) -> None:
    _count("attr value")
    found = _traces(server, {"attr": f"{VICTIM['key']}={value}"})
    assert found == ([VICTIM_TRACE] if value == VICTIM["value"] else [])


@FUZZ
@given(name=st.sampled_from(["minDuration", "maxDuration", "start", "end", "limit"]),
       value=st.one_of(hostile, st.integers().map(str), st.floats().map(str),
                       st.sampled_from(["1ms", "1.5s", "0ns", "2026-01-01T00:00:00Z", "1e9", "-1", "0"])))  # fmt: skip
def test_numeric_and_time_parameters_answer_200_or_400(server: Server, name: str, value: str) -> None:
    _count("minDuration/start/end/limit")
    found = _traces(server, {name: value, "service": "victim"})
    assert found is None or set(found) <= {VICTIM_TRACE}


@FUZZ
@given(cluster=hostile.filter(lambda v: v != "victim"), instance=hostile.filter(lambda v: v != "victim:1"),
       window=st.one_of(hostile, st.sampled_from(["10s", "1m", "60m", "61m", "0s", "1h"])),
       on_cluster=st.booleans())  # fmt: skip
def test_breaker_parameters_are_only_values(
    server: Server, cluster: str, instance: str, window: str, on_cluster: bool
) -> None:
    """A hostile cluster, or the victim's cluster with a hostile instance: nothing found."""
    _count("breakers cluster/instance/window")
    params = {"cluster": cluster, "window": "60m"} if on_cluster else {"cluster": "victim", "instance": instance}
    assert _breakers(server, {"window": window, **params}) in (None, [])


@FUZZ
@given(key=hostile.filter(lambda k: k not in VICTIM_KEYS), prefix=hostile)
def test_attribute_value_lookup_keys_and_prefixes_are_only_values(server: Server, key: str, prefix: str) -> None:
    _count("attributes/values key/prefix")
    status, body = _get(server, "/api/v1/attributes/values", {"key": key, "prefix": prefix})
    assert status == 400 or body["values"] == []
    status, body = _get(server, "/api/v1/attributes/values", {"key": VICTIM["key"], "prefix": prefix})
    expected = [VICTIM["value"]] if VICTIM["value"].startswith(prefix) else []
    assert status == 400 or [v["value"] for v in body["values"]] == expected


# -- ingest routes -----------------------------------------------------------------------------------

VALID = Trace.new(3).otlp().SerializeToString()
ROUTES = [
    ("otlp", "/v1/traces", "application/x-protobuf"),
    ("otlp", "/v1/traces", "application/json"),
    ("otlp", "/v1/breakers", "application/json"),
    ("zipkin", "/api/v2/spans", "application/json"),
    ("zipkin", "/api/v2/spans", "application/x-protobuf"),
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | text,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(text, children, max_size=5),
    max_leaves=25,
)
bodies = st.one_of(
    st.binary(max_size=3000),
    st.builds(lambda noise, at: VALID[:at] + noise + VALID[at + len(noise) :], st.binary(max_size=64),
              st.integers(0, len(VALID))),
    json_values.map(lambda v: json.dumps(v).encode()),
)  # fmt: skip


@FUZZ
@given(route=st.sampled_from(ROUTES), body=bodies, gzipped=st.booleans())
def test_ingest_routes_never_fail_on_any_body(
    server: Server, route: tuple[str, str, str], body: bytes, gzipped: bool
) -> None:
    _count("ingest bodies (HTTP)")
    port, path, content_type = route
    url = (server.otlp_http if port == "otlp" else server.zipkin) + path
    headers = {"content-type": content_type, **({"content-encoding": "gzip"} if gzipped else {})}
    answer = CLIENT.post(url, content=gzip.compress(body) if gzipped else body, headers=headers)
    assert answer.status_code in (200, 202, 400, 413, 415), (route, body[:100], answer.status_code, answer.text[:300])


@FUZZ
@given(body=bodies)
def test_grpc_export_never_fails_on_any_body(server: Server, body: bytes) -> None:
    _count("ingest bodies (gRPC)")
    with grpc.insecure_channel(server.otlp_grpc) as channel:
        export = channel.unary_unary(GRPC_EXPORT, request_serializer=None, response_deserializer=None)
        try:
            export(body, timeout=30)
            code = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            code = exc.code()
    assert code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT)
