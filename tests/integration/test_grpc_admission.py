"""OTLP/gRPC admission before the message: a call without the ingest token is refused from its
metadata, a stalled message is refused at the body deadline, and the server reads (so grpc
buffers) at most `max_inflight_bytes` of messages at once — through a real grpc.aio server,
grpc clients and a raw HTTP/2 client that stalls messages one byte short."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import grpc
import pytest
from google.rpc.error_details_pb2 import RetryInfo

from tests.integration.test_admission import request_of
from tests.integration.test_grpc_refusals import METHOD, rich_status
from tracehouse.collector import ByteBudget, CollectorConfig, IngestMetrics, Pipeline, build_grpc_server
from tracehouse.storage import ClickHouseStore

pytestmark = pytest.mark.integration

KiB, MiB = 1024, 1024 * 1024
TOKEN = "ingest-secret-123"


def serve(store: ClickHouseStore, config: CollectorConfig, scenario: Callable[[int], Awaitable[None]]) -> None:
    """Run `scenario(port)` against a started server over the real pipeline and store."""

    async def run() -> None:
        pipeline = Pipeline(store, config)
        server, port = build_grpc_server(pipeline, config, IngestMetrics(), ByteBudget(config.max_inflight_bytes))
        await server.start()
        flushing = asyncio.create_task(pipeline.run())
        try:
            await scenario(port)
        finally:
            await server.stop(grace=None)
            await pipeline.close()
            await flushing

    asyncio.run(run())


async def stalled_call(port: int, metadata: tuple[tuple[str, str], ...] = ()) -> grpc.aio.AioRpcError:
    """An Export call whose client sends its headers and never its message (nor ends the stream)."""
    never = asyncio.Event()

    async def nothing() -> AsyncIterator[bytes]:
        await never.wait()
        yield b""

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        export = channel.stream_unary(METHOD, request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            # the client's deadline is only a backstop: the server must answer long before it
            await export(nothing(), metadata=metadata, timeout=60)
        return caught.value


async def export(port: int, metadata: tuple[tuple[str, str], ...] = ()) -> bytes:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
        answer: bytes = await call(request_of(100), metadata=metadata, timeout=30)
        return answer


def test_a_call_without_the_token_is_refused_before_its_message(store: ClickHouseStore) -> None:
    config = CollectorConfig(otlp_grpc_port=0, ingest_token=TOKEN, flush_interval=0.01)

    async def scenario(port: int) -> None:
        for metadata in ((), (("authorization", "Bearer not-the-token"),)):
            refused = await stalled_call(port, metadata)
            assert refused.code() == grpc.StatusCode.UNAUTHENTICATED, refused
        assert await export(port, (("authorization", f"Bearer {TOKEN}"),)) == b""

    serve(store, config, scenario)


def test_a_stalled_message_is_refused_at_the_body_deadline(store: ClickHouseStore) -> None:
    config = CollectorConfig(otlp_grpc_port=0, body_timeout=1, flush_interval=0.01)

    async def scenario(port: int) -> None:
        refused = await stalled_call(port)
        assert refused.code() == grpc.StatusCode.UNAVAILABLE, refused
        assert "did not arrive within 1 s" in (refused.details() or "")
        (detail,) = rich_status(refused).details
        assert detail.Unpack(RetryInfo())
        assert await export(port) == b""  # the slot it held is free again

    serve(store, config, scenario)


def test_stalled_messages_hold_at_most_the_byte_budget(store: ClickHouseStore) -> None:
    """Eight streams each send all but the last byte of a 1 MiB message, as far as the server's
    flow control lets them. With a budget of two such messages, two are read; the other six may
    send no more than their initial 64 KiB window. The server allows 100 streams per connection."""
    config = CollectorConfig(otlp_grpc_port=0, max_body_bytes=MiB, max_inflight_bytes=2 * MiB, body_timeout=60)

    async def scenario(port: int) -> None:
        client = await RawHttp2.connect(port)
        try:
            streams = [client.start_export(size=MiB) for _ in range(8)]
            async with asyncio.timeout(60):  # a backstop: two streams are read at once, or all are
                while sum(client.sent[s] == client.goal[s] for s in streams) < 2:
                    client.send_allowed()
                    await client.read_frame()
            assert client.settings.get(SETTINGS_MAX_CONCURRENT_STREAMS) == 100
            held = sorted(client.sent[s] for s in streams)
            assert held[-2:] == [MiB + 4, MiB + 4]  # the two being read: everything but the last byte
            assert all(sent <= 64 * KiB for sent in held[:-2]), held
            assert not client.answered  # no stream was refused or answered meanwhile
        finally:
            client.close()

    serve(store, config, scenario)


# -- just enough HTTP/2 to stall gRPC messages one byte short -----------------------------------------

DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
SETTINGS_MAX_CONCURRENT_STREAMS, SETTINGS_INITIAL_WINDOW_SIZE = 3, 4
END_HEADERS, ACK = 4, 1


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def literal(name: str, value: str) -> bytes:
    """An HPACK literal header field without indexing (short names and values only)."""
    return b"\x00" + bytes([len(name)]) + name.encode() + bytes([len(value)]) + value.encode()


@dataclass
class RawHttp2:
    """A client connection that sends each gRPC message as far as flow control allows, stopping
    one byte short; it records what the server allows (`sent`), announces and answers."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    port: int
    settings: dict[int, int] = field(default_factory=dict)
    connection_window: int = 65535
    window: dict[int, int] = field(default_factory=dict)
    sent: dict[int, int] = field(default_factory=dict)
    goal: dict[int, int] = field(default_factory=dict)
    answered: list[tuple[int, int]] = field(default_factory=list)  # (frame type, stream)

    @classmethod
    async def connect(cls, port: int) -> RawHttp2:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(SETTINGS, 0, 0))
        return cls(reader, writer, port)

    def start_export(self, size: int) -> int:
        stream = 1 + 2 * len(self.sent)
        headers = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", METHOD),
            (":authority", f"127.0.0.1:{self.port}"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]
        self.writer.write(frame(HEADERS, END_HEADERS, stream, b"".join(literal(n, v) for n, v in headers)))
        self.window[stream] = self.settings.get(SETTINGS_INITIAL_WINDOW_SIZE, 65535)
        self.sent[stream], self.goal[stream] = 0, 5 + size - 1
        return stream

    def send_allowed(self) -> None:
        for stream, goal in self.goal.items():
            while (n := min(16 * KiB, goal - self.sent[stream], self.connection_window, self.window[stream])) > 0:
                prefix = (b"\x00" + struct.pack(">I", goal - 4))[self.sent[stream] :]
                self.writer.write(frame(DATA, 0, stream, (prefix + b"\x0a" * n)[:n]))
                self.sent[stream] += n
                self.connection_window -= n
                self.window[stream] -= n

    async def read_frame(self) -> None:
        head = await self.reader.readexactly(9)
        length, kind, flags = int.from_bytes(head[:3], "big"), head[3], head[4]
        stream = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
        payload = await self.reader.readexactly(length)
        if kind == SETTINGS and not flags & ACK:
            self._settings(payload)
        elif kind == WINDOW_UPDATE:
            grant = int.from_bytes(payload, "big") & 0x7FFFFFFF
            if stream == 0:
                self.connection_window += grant
            elif stream in self.window:
                self.window[stream] += grant
        elif kind == PING and not flags & ACK:
            self.writer.write(frame(PING, ACK, 0, payload))
        elif kind in (HEADERS, RST_STREAM, GOAWAY):
            self.answered.append((kind, stream))

    def _settings(self, payload: bytes) -> None:
        for i in range(0, len(payload), 6):
            key, value = struct.unpack(">HI", payload[i : i + 6])
            if key == SETTINGS_INITIAL_WINDOW_SIZE:
                old = self.settings.get(key, 65535)
                self.window = {s: w + value - old for s, w in self.window.items()}
            self.settings[key] = value
        self.writer.write(frame(SETTINGS, ACK, 0))

    def close(self) -> None:
        self.writer.close()
