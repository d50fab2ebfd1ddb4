/* The trace page's model: the API's trace JSON indexed for the waterfall (offsets, subtree
 * extents, the rows left visible by collapsed subtrees, search) and the page state as its URL
 * query carries it (?span=…&q=…&collapsed=…&expanded=…). No DOM here, and O(spans) at most:
 * it must stay fast at 10,000+ spans. */
(function () {
  "use strict";
  const ns = (window.tracehouse = window.tracehouse || {});

  /* Spans come in tree order (parents before children) with their depth, so a subtree is the
   * run of following spans that are deeper; its end index is found with one stack pass. */
  function index(trace) {
    const spans = trace.spans;
    const n = spans.length;
    const t0 = BigInt(trace.startTimeUnixNano);
    const offset = new Float64Array(n);
    const subtreeEnd = new Int32Array(n).fill(n);
    const parent = new Int32Array(n).fill(-1);
    const byId = new Map();
    const stack = [];
    for (let i = 0; i < n; i++) {
      const span = spans[i];
      offset[i] = Number(BigInt(span.startTimeUnixNano) - t0);
      byId.set(span.spanId, i);
      while (stack.length && spans[stack[stack.length - 1]].depth >= span.depth) {
        subtreeEnd[stack.pop()] = i;
      }
      if (stack.length) parent[i] = stack[stack.length - 1];
      stack.push(i);
    }
    return {
      trace, spans, n, offset, subtreeEnd, parent, byId,
      duration: Math.max(trace.durationNano, 1),
      critical: criticalSegments(trace, byId, t0),
      haystacks: null,
    };
  }

  function criticalSegments(trace, byId, t0) {
    const segments = new Map();
    for (const segment of trace.criticalPath || []) {
      const i = byId.get(segment.spanId);
      if (i === undefined) continue;
      const start = Number(BigInt(segment.startTimeUnixNano) - t0);
      const end = Number(BigInt(segment.endTimeUnixNano) - t0);
      if (!segments.has(i)) segments.set(i, []);
      segments.get(i).push([start, end]);
    }
    return segments;
  }

  const hasChildren = (model, i) => model.subtreeEnd[i] > i + 1;

  /* Collapse state: `all` false → `ids` are the collapsed spans; `all` true → every span with
   * children is collapsed except `ids` (so "collapse all" needs no list in the URL). */
  function isCollapsed(model, collapse, i) {
    return hasChildren(model, i) && collapse.all !== collapse.ids.has(model.spans[i].spanId);
  }

  function setCollapsed(model, collapse, i, collapsed) {
    const id = model.spans[i].spanId;
    if (collapsed === collapse.all) collapse.ids.delete(id);
    else collapse.ids.add(id);
  }

  /* Indices of the rows shown, top to bottom. */
  function visibleRows(model, collapse) {
    const rows = [];
    let i = 0;
    while (i < model.n) {
      rows.push(i);
      i = isCollapsed(model, collapse, i) ? model.subtreeEnd[i] : i + 1;
    }
    return Int32Array.from(rows);
  }

  /* Expands what hides span `i`; true when anything changed. */
  function reveal(model, collapse, i) {
    let changed = false;
    for (let p = model.parent[i]; p >= 0; p = model.parent[p]) {
      if (isCollapsed(model, collapse, p)) {
        setCollapsed(model, collapse, p, false);
        changed = true;
      }
    }
    return changed;
  }

  function hiddenCount(model, i) {
    return model.subtreeEnd[i] - i - 1;
  }

  /* Spans whose service, operation, id, attribute (key=value), resource or event text holds
   * every whitespace-separated term of `query`, case-insensitively; in tree order. */
  function search(model, query) {
    const terms = query.toLowerCase().split(/\s+/).filter(Boolean);
    if (!terms.length) return new Int32Array(0);
    const haystacks = model.haystacks || (model.haystacks = model.spans.map(haystack));
    const found = [];
    for (let i = 0; i < model.n; i++) {
      if (terms.every((term) => haystacks[i].includes(term))) found.push(i);
    }
    return Int32Array.from(found);
  }

  function haystack(span) {
    const parts = [span.serviceName, span.name, span.spanId, span.kind, span.status.code, span.status.message];
    const pairs = (map) => Object.entries(map || {}).forEach(([k, v]) => parts.push(`${k}=${v}`));
    pairs(span.attributes);
    pairs(span.resource);
    for (const event of span.events) {
      parts.push(event.name);
      pairs(event.attributes);
    }
    return parts.join("\n").toLowerCase();
  }

  /* The URL query → {selected span id, collapse, q}; unknown or malformed values are ignored. */
  function parseQuery(search) {
    const query = new URLSearchParams(search);
    const list = (name) => (query.get(name) || "").split(",").filter((id) => /^[0-9a-fA-F]+$/.test(id));
    const all = query.get("collapsed") === "all";
    return {
      span: query.get("span") || null,
      q: query.get("q") || "",
      collapse: { all, ids: new Set(list(all ? "expanded" : "collapsed")) },
    };
  }

  /* The state → "?…" (ids joined by bare commas, so the URL stays readable); "" for none. */
  function formatQuery(state) {
    const fields = [];
    if (state.span) fields.push(`span=${encodeURIComponent(state.span)}`);
    if (state.q) fields.push(`q=${encodeURIComponent(state.q)}`);
    const ids = [...state.collapse.ids].sort().join(",");
    if (state.collapse.all) fields.push("collapsed=all");
    if (ids) fields.push(`${state.collapse.all ? "expanded" : "collapsed"}=${ids}`);
    return fields.length ? `?${fields.join("&")}` : "";
  }

  function formatDuration(nanos) {
    const abs = Math.abs(nanos);
    if (abs < 1e3) return `${Math.round(nanos)} ns`;
    if (abs < 1e6) return `${trim(nanos / 1e3)} µs`;
    if (abs < 1e9) return `${trim(nanos / 1e6)} ms`;
    return `${trim(nanos / 1e9)} s`;
  }

  const trim = (x) => String(Number(x.toPrecision(4)));

  /* "2026-11-25T10:00:00.123456789Z" from a nanosecond timestamp string. */
  function formatTimestamp(nanos) {
    const big = BigInt(nanos);
    const iso = new Date(Number(big / 1000000n)).toISOString();
    return `${iso.slice(0, 23)}${String(big % 1000000n).padStart(6, "0")}Z`;
  }

  ns.traceModel = {
    index, hasChildren, isCollapsed, setCollapsed, visibleRows, reveal, hiddenCount, search,
    parseQuery, formatQuery, formatDuration, formatTimestamp,
  };
})();
