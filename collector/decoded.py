"""What a columnar decoder (Zipkin) returns: the accepted spans as a `SpanBatch`, and how
many spans were rejected and why (the first few distinct reasons)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tracehouse.collector.window import TimeWindow
from tracehouse.storage import SpanBatch


@dataclass(slots=True)
class Decoded:
    batch: SpanBatch
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)
    outside_window: int = 0  # of the rejected: starting or ending outside the time window

    def reject(self, reason: str) -> None:
        self.rejected += 1
        if len(self.reasons) < 5 and reason not in self.reasons:
            self.reasons.append(reason)

    def message(self) -> str:
        return "; ".join(self.reasons)

    def within(self, window: TimeWindow) -> Decoded:
        """Reject (and count) the spans starting outside `window`."""
        bounds = window.bounds()
        batch = self.batch
        late = {i: r for i, ts in enumerate(batch.timestamp_ns) if (r := window.reason(ts, bounds))}
        ahead = f"ends more than {window.max_ahead / 3600:g} hours ahead"
        late.update(
            (i, ahead) for i, (ts, d) in enumerate(zip(batch.timestamp_ns, batch.duration_ns, strict=True))
            if i not in late and ts + d > bounds[1]
        )  # fmt: skip
        for i, reason in late.items():
            self.reject(f"span {self.batch.span_name[i][:100]!r} {reason}")
        self.outside_window += len(late)
        if late:
            self.batch = self.batch.without(set(late))
        return self
