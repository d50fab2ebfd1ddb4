/* The trace page's span detail: one span of the API's trace JSON as HTML (overview, clock-skew
 * warnings, attributes, resource, events with exceptions laid out readably, links to the linked
 * traces). Every value from the trace is escaped: span data is user input. */
(function () {
  "use strict";
  const ns = (window.tracehouse = window.tracehouse || {});
  const EXCEPTION_KEYS = ["exception.type", "exception.message", "exception.stacktrace", "exception.escaped"];

  function escapeHtml(value) {
    return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  }

  function table(id, map, skip = []) {
    const rows = Object.keys(map || {})
      .filter((key) => !skip.includes(key))
      .sort()
      .map((key) => `<tr><th>${escapeHtml(key)}</th><td><code>${escapeHtml(map[key])}</code></td></tr>`);
    if (!rows.length) return `<p class="tv-none"${id ? ` id="${id}"` : ""}>none</p>`;
    return `<table class="tv-kv"${id ? ` id="${id}"` : ""}>${rows.join("")}</table>`;
  }

  function section(title, count, body) {
    return `<h4>${title} <span class="tv-count">${count}</span></h4>${body}`;
  }

  function overview(model, i) {
    const m = ns.traceModel;
    const span = model.spans[i];
    const parent = model.parent[i] >= 0 ? model.spans[model.parent[i]] : null;
    const status = span.status.message ? `${span.status.code}: ${span.status.message}` : span.status.code;
    const onPath = (model.critical.get(i) || []).reduce((sum, [a, b]) => sum + b - a, 0);
    const rows = [
      ["Service", escapeHtml(span.serviceName)],
      ["Operation", escapeHtml(span.name)],
      ["Kind", escapeHtml(span.kind)],
      ["Status", `<span class="tv-status-${escapeHtml(span.status.code)}">${escapeHtml(status)}</span>`],
      ["Duration", m.formatDuration(span.durationNano)],
      ["Start", `+${m.formatDuration(model.offset[i])} <span class="tv-muted">${m.formatTimestamp(span.startTimeUnixNano)}</span>`],
      ["Span ID", `<code>${escapeHtml(span.spanId)}</code>`],
      ["Parent", parent ? `<a href="#" class="tv-goto" data-span-id="${escapeHtml(parent.spanId)}">`
        + `${escapeHtml(parent.serviceName)}: ${escapeHtml(parent.name)}</a>`
        : span.parentSpanId ? `<code>${escapeHtml(span.parentSpanId)}</code> (not in this trace)` : "root"],
      ["Trace ID", `<code>${escapeHtml(span.traceId)}</code>`],
      ["Critical path", span.onCriticalPath ? `yes, ${m.formatDuration(onPath)} of it` : "no"],
      ["Scope", escapeHtml([span.scope?.name, span.scope?.version].filter(Boolean).join(" ") || "–")],
    ];
    if (span.traceState) rows.push(["Trace state", `<code>${escapeHtml(span.traceState)}</code>`]);
    return `<table class="tv-kv" id="span-overview">${rows.map(([k, v]) => `<tr><th>${k}</th><td>${v}</td></tr>`).join("")}</table>`;
  }

  function event(model, i, e) {
    const m = ns.traceModel;
    const at = Number(BigInt(e.timeUnixNano) - BigInt(model.spans[i].startTimeUnixNano));
    const attrs = e.attributes || {};
    const head = `<div class="tv-event-head"><span class="tv-muted">+${m.formatDuration(at)}</span> <b>${escapeHtml(e.name)}</b></div>`;
    if (e.name !== "exception") return `<li class="tv-event">${head}${table("", attrs)}</li>`;
    const title = [attrs["exception.type"], attrs["exception.message"]].filter(Boolean).map(escapeHtml).join(": ");
    const stack = attrs["exception.stacktrace"] ? `<pre class="tv-stack">${escapeHtml(attrs["exception.stacktrace"])}</pre>` : "";
    const rest = Object.keys(attrs).some((key) => !EXCEPTION_KEYS.includes(key)) ? table("", attrs, EXCEPTION_KEYS) : "";
    return `<li class="tv-event tv-exception">${head}<div class="tv-exception-title">${title}</div>${stack}${rest}</li>`;
  }

  function link(model, l) {
    const here = l.traceId === model.trace.traceId;
    const href = `/trace/${encodeURIComponent(l.traceId)}?span=${encodeURIComponent(l.spanId)}`;
    const target = here && model.byId.has(l.spanId) ? model.spans[model.byId.get(l.spanId)] : null;
    const label = target ? `${escapeHtml(target.serviceName)}: ${escapeHtml(target.name)} (this trace)`
      : `trace <code>${escapeHtml(l.traceId)}</code> span <code>${escapeHtml(l.spanId)}</code>`;
    const cls = here ? "tv-goto" : "tv-trace-link";
    return `<li><a href="${href}" class="${cls}" data-span-id="${escapeHtml(l.spanId)}">${label}</a>${table("", l.attributes)}</li>`;
  }

  /* The detail panel's HTML for span `i`. */
  function render(model, i, colour) {
    const span = model.spans[i];
    const warnings = (span.warnings || []).map((w) => `<p class="tv-warning">⚠ ${escapeHtml(w)}</p>`).join("");
    return [
      `<header class="tv-detail-head"><span class="tv-swatch" style="background:${colour}"></span>`,
      `<span><b>${escapeHtml(span.serviceName)}</b>: ${escapeHtml(span.name)}</span>`,
      `<button type="button" class="tv-close" id="span-detail-close" title="close">×</button></header>`,
      warnings,
      overview(model, i),
      `<button type="button" class="tv-zoom-span">Zoom to this span</button>`,
      section("Attributes", Object.keys(span.attributes).length, table("span-attributes", span.attributes)),
      section("Resource", Object.keys(span.resource).length, table("span-resource", span.resource)),
      section("Events", span.events.length, span.events.length
        ? `<ul id="span-events">${span.events.map((e) => event(model, i, e)).join("")}</ul>`
        : `<p class="tv-none" id="span-events">none</p>`),
      section("Links", span.links.length, span.links.length
        ? `<ul id="span-links">${span.links.map((l) => link(model, l)).join("")}</ul>`
        : `<p class="tv-none" id="span-links">none</p>`),
    ].join("");
  }

  ns.traceDetail = { render, escapeHtml };
})();
