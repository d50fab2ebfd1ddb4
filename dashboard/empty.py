"""What an empty page says: how a new user gets data in. Shared by the pages."""

from __future__ import annotations

from dash import html

__all__ = ["send_breakers", "send_spans"]

_CODE = {"background": "#f4f4f4", "padding": "0.6em", "fontSize": 13, "whiteSpace": "pre-wrap"}


def send_spans(element_id: str) -> html.Div:
    return html.Div(
        [
            html.P("No spans have arrived yet. Trace a Python service without code changes:"),
            html.Pre("pip install tracehouse\ntracehouse-run --service-name orders -- python app.py", style=_CODE),
            html.P("or point any exporter at the collector (default ports, on the collector's host):"),
            html.Pre(
                "OTLP/HTTP  http://127.0.0.1:4318/v1/traces   (OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318)\n"
                "OTLP/gRPC  127.0.0.1:4317\n"
                "Zipkin v2  http://127.0.0.1:9411/api/v2/spans   (Spring Cloud Sleuth, Brave, zipkin-js)",
                style=_CODE,
            ),
            html.P(["Or see it all working first: ", html.Code("make demo"), "."]),
        ],
        id=element_id,
    )


def send_breakers(element_id: str) -> html.Div:
    return html.Div(
        [
            html.P("No breaker stats in this window. Protect a call, and a service under tracehouse-run reports it:"),
            html.Pre(
                "from tracehouse.instrumentation.breakers import breaker\n\n"
                '@breaker("payments.charge", timeout=0.8, fallback=lambda order: "pending")\n'
                "def charge(order): ...",
                style=_CODE,
            ),
            html.P("Java Hystrix and Node opossum services are pulled from their hystrix.stream:"),
            html.Pre("tracehouse serve --hystrix-streams shop=http://host:8080/hystrix.stream", style=_CODE),
        ],
        id=element_id,
    )
