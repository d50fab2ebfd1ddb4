"""Tracehouse: tracing and resilience monitoring for Python microservices.

This package holds the CLI, configuration and the wiring of the all-in-one server;
the components live in `tracehouse.instrumentation`, `.collector`, `.storage`, `.query`,
`.dashboard` and `.demo`.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
