"""Demo microservices, traffic and the `tracehouse demo` runner (also used by e2e tests)."""

from tracehouse.demo.runner import DEMO_OPTIONS, run_demo

__all__ = ["DEMO_OPTIONS", "run_demo"]
