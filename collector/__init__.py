"""The collector: OTLP (HTTP and gRPC) and Zipkin v2 in, columnar batches into the `SpanWriter`.

Never imports the query API; every answer to a sender comes from `IngestError`.
"""

from tracehouse.collector.admission import ByteBudget
from tracehouse.collector.config import CollectorConfig
from tracehouse.collector.decoded import Decoded
from tracehouse.collector.errors import IngestError, MalformedPayload, Overloaded, PayloadTooLarge
from tracehouse.collector.metrics import IngestMetrics
from tracehouse.collector.otlp import OtlpDecoded, decode_json, decode_protobuf
from tracehouse.collector.otlp_grpc import build_grpc_server
from tracehouse.collector.otlp_http import build_otlp_http_app
from tracehouse.collector.pipeline import Pipeline
from tracehouse.collector.spool import Spool, SpoolFull
from tracehouse.collector.zipkin import decode_zipkin_json, decode_zipkin_proto
from tracehouse.collector.zipkin_http import build_zipkin_app

__all__ = [
    "ByteBudget",
    "CollectorConfig",
    "Decoded",
    "IngestError",
    "IngestMetrics",
    "MalformedPayload",
    "OtlpDecoded",
    "Overloaded",
    "PayloadTooLarge",
    "Pipeline",
    "Spool",
    "SpoolFull",
    "build_grpc_server",
    "build_otlp_http_app",
    "build_zipkin_app",
    "decode_json",
    "decode_protobuf",
    "decode_zipkin_json",
    "decode_zipkin_proto",
]
