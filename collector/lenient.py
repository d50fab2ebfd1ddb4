"""OTLP message classes that read every `string` field as `bytes`.

Built at import time from the official descriptors (opentelemetry-proto), with the string
fields retyped: the wire format is identical, but parsing no longer refuses a whole request
because one span name holds invalid UTF-8. The store repairs such text (toValidUTF8).
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

_PREFIX = "tracehouse.lenient."
_MODULES = (common_pb2, resource_pb2, trace_pb2, trace_service_pb2)  # dependency order


def _lenient_pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    for module in _MODULES:
        proto = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(proto)
        proto.name = _PREFIX + proto.name
        proto.package = _PREFIX + proto.package
        proto.dependency[:] = [_PREFIX + d for d in proto.dependency]
        proto.options.Clear()
        del proto.service[:]  # only the messages are needed
        for message in proto.message_type:
            _retype(message)
        pool.Add(proto)
    return pool


def _retype(message: descriptor_pb2.DescriptorProto) -> None:
    for field in message.field:
        if field.type == descriptor_pb2.FieldDescriptorProto.TYPE_STRING:
            field.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
        if field.type_name.startswith(".opentelemetry."):
            field.type_name = "." + _PREFIX + field.type_name[1:]
    for nested in message.nested_type:
        _retype(nested)


_POOL = _lenient_pool()
LenientExportTraceServiceRequest: Any = message_factory.GetMessageClass(
    _POOL.FindMessageTypeByName(_PREFIX + "opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest")
)
