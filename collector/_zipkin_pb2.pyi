# ruff: noqa
# fmt: off
# mypy: disable-error-code="type-arg"
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Span(_message.Message):
    __slots__ = ("trace_id", "parent_id", "id", "kind", "name", "timestamp", "duration", "local_endpoint", "remote_endpoint", "annotations", "tags", "debug", "shared")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        SPAN_KIND_UNSPECIFIED: _ClassVar[Span.Kind]
        CLIENT: _ClassVar[Span.Kind]
        SERVER: _ClassVar[Span.Kind]
        PRODUCER: _ClassVar[Span.Kind]
        CONSUMER: _ClassVar[Span.Kind]
    SPAN_KIND_UNSPECIFIED: Span.Kind
    CLIENT: Span.Kind
    SERVER: Span.Kind
    PRODUCER: Span.Kind
    CONSUMER: Span.Kind
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    LOCAL_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    REMOTE_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    DEBUG_FIELD_NUMBER: _ClassVar[int]
    SHARED_FIELD_NUMBER: _ClassVar[int]
    trace_id: bytes
    parent_id: bytes
    id: bytes
    kind: Span.Kind
    name: bytes
    timestamp: int
    duration: int
    local_endpoint: Endpoint
    remote_endpoint: Endpoint
    annotations: _containers.RepeatedCompositeFieldContainer[Annotation]
    tags: _containers.RepeatedCompositeFieldContainer[Tag]
    debug: bool
    shared: bool
    def __init__(self, trace_id: _Optional[bytes] = ..., parent_id: _Optional[bytes] = ..., id: _Optional[bytes] = ..., kind: _Optional[_Union[Span.Kind, str]] = ..., name: _Optional[bytes] = ..., timestamp: _Optional[int] = ..., duration: _Optional[int] = ..., local_endpoint: _Optional[_Union[Endpoint, _Mapping]] = ..., remote_endpoint: _Optional[_Union[Endpoint, _Mapping]] = ..., annotations: _Optional[_Iterable[_Union[Annotation, _Mapping]]] = ..., tags: _Optional[_Iterable[_Union[Tag, _Mapping]]] = ..., debug: bool = ..., shared: bool = ...) -> None: ...

class Tag(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: bytes
    value: bytes
    def __init__(self, key: _Optional[bytes] = ..., value: _Optional[bytes] = ...) -> None: ...

class Endpoint(_message.Message):
    __slots__ = ("service_name", "ipv4", "ipv6", "port")
    SERVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    IPV4_FIELD_NUMBER: _ClassVar[int]
    IPV6_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    service_name: bytes
    ipv4: bytes
    ipv6: bytes
    port: int
    def __init__(self, service_name: _Optional[bytes] = ..., ipv4: _Optional[bytes] = ..., ipv6: _Optional[bytes] = ..., port: _Optional[int] = ...) -> None: ...

class Annotation(_message.Message):
    __slots__ = ("timestamp", "value")
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    timestamp: int
    value: bytes
    def __init__(self, timestamp: _Optional[int] = ..., value: _Optional[bytes] = ...) -> None: ...

class ListOfSpans(_message.Message):
    __slots__ = ("spans",)
    SPANS_FIELD_NUMBER: _ClassVar[int]
    spans: _containers.RepeatedCompositeFieldContainer[Span]
    def __init__(self, spans: _Optional[_Iterable[_Union[Span, _Mapping]]] = ...) -> None: ...
