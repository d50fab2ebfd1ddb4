"""Demo microservices, their queue and databases, traffic, the fault scenario and the
`tracehouse demo` runner (also used by end-to-end tests)."""

from tracehouse.demo.runner import DEMO_OPTIONS, run_demo

__all__ = ["DEMO_OPTIONS", "run_demo"]
