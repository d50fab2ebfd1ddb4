/* The trace page's waterfall: toolbar, minimap, ruler, a virtualised list of span rows (only the
 * rows in view plus a margin are in the DOM, so 10,000+ spans stay usable) and the span detail.
 * Mounted by the page's clientside callback on the trace JSON in its store; owns every node in
 * #trace-view. The selected span, search and collapsed subtrees are kept in the URL with
 * history.replaceState, which Dash does not see: a click never re-renders the page. */
(function () {
  "use strict";
  const ns = (window.tracehouse = window.tracehouse || {});
  const ROW = 24; // px, as .tv-row's height in trace.css
  const MARGIN = 15; // rows rendered above and below the visible ones
  const SEARCH_DELAY = 150; // ms of typing before a search runs
  let current = null;

  const SKELETON = `
    <div class="tv-toolbar">
      <input id="trace-search" type="search" placeholder="Find: service, operation, attribute value or key=value" autocomplete="off">
      <button type="button" id="trace-search-prev" title="previous match (Shift+Enter)">↑</button>
      <button type="button" id="trace-search-next" title="next match (Enter)">↓</button>
      <span id="trace-search-count" class="tv-muted"></span>
      <span class="tv-spring"></span>
      <span class="tv-key"><span class="tv-key-cp"></span> critical path <span class="tv-badge tv-badge-error">!</span> error
        <span class="tv-badge tv-badge-skew">⚠</span> clock skew</span>
      <button type="button" id="trace-expand-all">Expand all</button>
      <button type="button" id="trace-collapse-all">Collapse all</button>
      <button type="button" id="trace-reset-zoom" hidden>Reset zoom</button>
      <button type="button" id="trace-download">Download JSON</button>
    </div>
    <div class="tv-minimap" id="trace-minimap" title="the whole trace: click or drag to move the view"></div>
    <div class="tv-body">
      <div class="tv-pane">
        <div class="tv-header"><div class="tv-label-head">Service: operation</div>
          <div class="tv-ruler" id="trace-ruler" title="drag to zoom into a time range, double-click to zoom out"></div></div>
        <div class="tv-scroll" id="waterfall" tabindex="0"><div class="tv-rows"></div></div>
      </div>
      <aside class="tv-detail" id="span-detail" hidden></aside>
    </div>`;

  class TraceView {
    constructor(root, data) {
      const m = ns.traceModel;
      const began = performance.now();
      this.root = root;
      this.trace = data.trace;
      this.colours = data.colours;
      this.model = m.index(this.trace);
      this.path = window.location.pathname;
      const state = m.parseQuery(window.location.search);
      this.collapse = state.collapse;
      this.view = [0, this.model.duration];
      this.matches = new Int32Array(0);
      this.matchSet = new Set();
      this.matchPos = -1;
      this.focus = -1;
      this.selected = -1;
      this.query = "";
      this.mounted = false;
      this.build();
      this.refreshRows();
      const selected = state.span === null ? undefined : this.model.byId.get(state.span);
      if (selected !== undefined) this.select(selected, true);
      if (state.q) {
        this.input.value = state.q;
        this.runSearch(state.q, selected === undefined);
      }
      this.renderWindow();
      this.mounted = true;
      this.writeUrl(); // drops what did not parse (an unknown span id, say)
      root.dataset.mountMs = (performance.now() - began).toFixed(1);
      root.dataset.readyMs = performance.now().toFixed(1);
      root.dataset.ready = "true";
    }

    build() {
      const t = ns.traceTimeline;
      const $ = (selector) => this.root.querySelector(selector);
      this.root.innerHTML = SKELETON;
      this.scroller = $(".tv-scroll");
      this.layer = $(".tv-rows");
      this.header = $(".tv-header");
      this.panel = $(".tv-detail");
      this.input = $("#trace-search");
      this.count = $("#trace-search-count");
      this.resetButton = $("#trace-reset-zoom");
      this.ruler = new t.Ruler($(".tv-ruler"), {
        zoom: (a, b) => this.zoom(this.view[0] + a * (this.view[1] - this.view[0]), this.view[0] + b * (this.view[1] - this.view[0])),
        reset: () => this.zoom(0, this.model.duration),
      });
      this.minimap = new t.Minimap($(".tv-minimap"), { moveTo: (fx, fy) => this.moveTo(fx, fy) });
      this.scroller.addEventListener("scroll", () => this.renderWindow(), { passive: true });
      this.scroller.addEventListener("keydown", (event) => this.onKey(event));
      this.layer.addEventListener("click", (event) => this.onRowClick(event));
      this.panel.addEventListener("click", (event) => this.onDetailClick(event));
      this.input.addEventListener("input", () => this.searchSoon());
      this.input.addEventListener("keydown", (event) => this.onSearchKey(event));
      $("#trace-search-next").addEventListener("click", () => this.nextMatch(1));
      $("#trace-search-prev").addEventListener("click", () => this.nextMatch(-1));
      $("#trace-expand-all").addEventListener("click", () => this.collapseAll(false));
      $("#trace-collapse-all").addEventListener("click", () => this.collapseAll(true));
      this.resetButton.addEventListener("click", () => this.zoom(0, this.model.duration));
      $("#trace-download").addEventListener("click", () => this.download());
      this.resized = new ResizeObserver(() => this.layout());
      this.resized.observe(this.root);
      this.ruler.draw(this.view);
    }

    destroy() {
      this.resized.disconnect();
      clearTimeout(this.searchTimer);
    }

    /* After a size change: the header matches the rows' width (the scrollbar), the minimap redraws. */
    layout() {
      this.fitHeader();
      this.drawMinimap();
      this.renderWindow(true);
    }

    fitHeader() {
      this.header.style.paddingRight = `${this.scroller.offsetWidth - this.scroller.clientWidth}px`;
    }

    /* The visible rows changed (collapse): recompute them, redraw everything that shows them. */
    refreshRows() {
      this.rows = ns.traceModel.visibleRows(this.model, this.collapse);
      this.layer.style.height = `${this.rows.length * ROW}px`;
      this.fitHeader(); // a scrollbar may have come or gone
      this.drawMinimap();
      this.renderWindow(true);
      this.writeUrl();
    }

    /* Render the rows in view (plus MARGIN); rows still in range are kept unless `dirty`. */
    renderWindow(dirty = false) {
      if (!this.rows) return;
      const top = this.scroller.scrollTop;
      const height = this.scroller.clientHeight || window.innerHeight;
      const first = Math.max(0, Math.floor(top / ROW) - MARGIN);
      const last = Math.min(this.rows.length, Math.ceil((top + height) / ROW) + MARGIN);
      if (dirty || !this.nodes) {
        this.layer.textContent = "";
        this.nodes = new Map();
      }
      for (const [pos, node] of this.nodes) {
        if (pos < first || pos >= last) {
          node.remove();
          this.nodes.delete(pos);
        }
      }
      const added = [];
      for (let pos = first; pos < last; pos++) if (!this.nodes.has(pos)) added.push(pos);
      if (added.length) {
        const template = document.createElement("template");
        template.innerHTML = added.map((pos) => this.rowHtml(pos)).join("");
        [...template.content.children].forEach((node, k) => this.nodes.set(added[k], node));
        this.layer.append(template.content);
      }
      const shown = this.rows.length || 1;
      const w = this.model.duration;
      this.minimap.place(this.view[0] / w, this.view[1] / w, Math.floor(top / ROW) / shown, Math.min(1, (top + height) / ROW / shown));
    }

    rowHtml(pos) {
      const m = ns.traceModel;
      const esc = ns.traceDetail.escapeHtml;
      const model = this.model;
      const i = this.rows[pos];
      const span = model.spans[i];
      const colour = this.colours[span.serviceName] || "#999";
      const classes = ["tv-row"];
      const error = span.status.code === "Error";
      if (error) classes.push("tv-error");
      if (span.onCriticalPath) classes.push("tv-critical");
      if (this.matchSet.has(i)) classes.push("tv-match");
      if (i === this.selected) classes.push("tv-selected");
      if (i === this.focus) classes.push("tv-focus");
      const collapsed = m.isCollapsed(model, this.collapse, i);
      const toggle = m.hasChildren(model, i) ? `<span class="tv-toggle" title="${collapsed ? "expand" : "collapse"}">${collapsed ? "▸" : "▾"}</span>` : `<span class="tv-toggle"></span>`;
      const badges = [];
      if (error) badges.push(`<span class="tv-badge tv-badge-error" title="${esc(span.status.message || "error")}">!</span>`);
      if (span.warnings && span.warnings.length) badges.push(`<span class="tv-badge tv-badge-skew" title="${esc(span.warnings.join("\n"))}">⚠</span>`);
      if (collapsed) {
        const hit = this.hiddenMatch(i) ? " tv-hidden-match" : "";
        badges.push(`<span class="tv-badge tv-badge-hidden${hit}" title="hidden spans">+${m.hiddenCount(model, i)}</span>`);
      }
      const [v0, v1] = this.view;
      const scale = 100 / (v1 - v0);
      const left = (model.offset[i] - v0) * scale;
      const width = span.durationNano * scale;
      const critical = (model.critical.get(i) || []).map(([a, b]) => `<div class="tv-cp" style="left:${(a - v0) * scale}%;width:${(b - a) * scale}%"></div>`).join("");
      const label = durationPlace(left, width);
      return `<div class="${classes.join(" ")}" data-pos="${pos}" data-index="${i}" data-depth="${span.depth}" data-span-id="${esc(span.spanId)}" style="top:${pos * ROW}px">`
        + `<div class="tv-label" style="padding-left:${Math.min(span.depth, 30) * 14 + 2}px">${toggle}`
        + `<span class="tv-swatch" style="background:${colour}"></span>`
        + `<span class="tv-name" title="${esc(span.serviceName)}: ${esc(span.name)}"><span class="tv-service">${esc(span.serviceName)}</span>: ${esc(span.name)}</span>${badges.join("")}</div>`
        + `<div class="tv-timeline"><div class="tv-bar" style="left:${left}%;width:${width}%;background:${colour}"></div>${critical}`
        + `<span class="tv-duration${label.inside ? " tv-inside" : ""}" style="${label.style}">${m.formatDuration(span.durationNano)}</span></div></div>`;
    }

    hiddenMatch(i) {
      const end = this.model.subtreeEnd[i];
      const k = lowerBound(this.matches, i + 1);
      return k < this.matches.length && this.matches[k] < end;
    }

    drawMinimap() {
      if (!this.rows) return;
      const marks = Array.from(this.matches, (i) => this.positionOf(i));
      this.minimap.draw(this.model, this.rows, this.colours, marks);
    }

    /* The row position of span `i`, or of the collapsed ancestor that hides it. */
    positionOf(i) {
      const k = lowerBound(this.rows, i);
      return this.rows[k] === i ? k : Math.max(k - 1, 0);
    }

    scrollToIndex(i) {
      const pos = this.positionOf(i);
      const top = this.scroller.scrollTop;
      const height = this.scroller.clientHeight;
      if (pos * ROW < top || (pos + 1) * ROW > top + height) this.scroller.scrollTop = pos * ROW - height / 2 + ROW / 2;
      this.renderWindow(true);
    }

    moveTo(fx, fy) {
      const width = this.view[1] - this.view[0];
      if (width < this.model.duration) {
        const start = ns.traceTimeline.clamp(fx * this.model.duration - width / 2, 0, this.model.duration - width);
        this.zoom(start, start + width);
      }
      this.scroller.scrollTop = fy * this.rows.length * ROW - this.scroller.clientHeight / 2;
      this.renderWindow();
    }

    zoom(from, to) {
      this.view = [from, Math.max(to, from + 1)];
      this.resetButton.hidden = from <= 0 && to >= this.model.duration;
      this.ruler.draw(this.view);
      this.renderWindow(true);
    }

    toggle(i) {
      const m = ns.traceModel;
      m.setCollapsed(this.model, this.collapse, i, !m.isCollapsed(this.model, this.collapse, i));
      this.refreshRows();
    }

    collapseAll(collapsed) {
      this.collapse = { all: collapsed, ids: new Set() };
      if (this.selected >= 0) ns.traceModel.reveal(this.model, this.collapse, this.selected);
      this.refreshRows();
    }

    select(i, scroll = false) {
      this.selected = i;
      if (i >= 0) {
        if (ns.traceModel.reveal(this.model, this.collapse, i)) this.refreshRows();
        const span = this.model.spans[i];
        this.panel.innerHTML = ns.traceDetail.render(this.model, i, this.colours[span.serviceName] || "#999");
        this.panel.hidden = false;
      } else {
        this.panel.hidden = true;
        this.panel.textContent = "";
      }
      if (scroll && i >= 0) this.scrollToIndex(i);
      else this.renderWindow(true);
      this.writeUrl();
    }

    onRowClick(event) {
      const row = event.target.closest(".tv-row");
      if (!row) return;
      const i = Number(row.dataset.index);
      if (event.target.closest(".tv-toggle") && ns.traceModel.hasChildren(this.model, i)) this.toggle(i);
      else this.select(i === this.selected ? -1 : i);
    }

    onDetailClick(event) {
      const target = event.target.closest(".tv-close, .tv-goto, .tv-trace-link, .tv-zoom-span");
      if (!target) return;
      if (target.classList.contains("tv-close")) this.select(-1);
      else if (target.classList.contains("tv-zoom-span")) {
        const i = this.selected;
        const pad = Math.max(this.model.spans[i].durationNano * 0.05, 1);
        this.zoom(Math.max(this.model.offset[i] - pad, 0), this.model.offset[i] + this.model.spans[i].durationNano + pad);
      } else if (target.classList.contains("tv-goto")) {
        event.preventDefault();
        const i = this.model.byId.get(target.dataset.spanId);
        if (i !== undefined) this.select(i, true);
      } else if (!(event.metaKey || event.ctrlKey || event.shiftKey || event.altKey)) {
        event.preventDefault(); // navigate as dcc.Link does: Dash's Location re-renders the page
        window.history.pushState({}, "", target.getAttribute("href"));
        window.dispatchEvent(new CustomEvent("_dashprivate_pushstate"));
        window.scrollTo(0, 0);
      }
    }

    onKey(event) {
      const m = ns.traceModel;
      const i = this.selected;
      const pos = i >= 0 ? this.positionOf(i) : -1;
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        const next = ns.traceTimeline.clamp(pos + (event.key === "ArrowDown" ? 1 : -1), 0, this.rows.length - 1);
        this.select(this.rows[next], true);
      } else if ((event.key === "ArrowLeft" || event.key === "ArrowRight") && i >= 0 && m.hasChildren(this.model, i)) {
        if (m.isCollapsed(this.model, this.collapse, i) === (event.key === "ArrowRight")) this.toggle(i);
      } else if (event.key === "Escape") {
        this.select(-1);
      } else return;
      event.preventDefault();
    }

    searchSoon() {
      clearTimeout(this.searchTimer);
      this.searchTimer = setTimeout(() => this.runSearch(this.input.value, true), SEARCH_DELAY);
    }

    onSearchKey(event) {
      if (event.key !== "Enter" && event.key !== "Escape") return;
      event.preventDefault();
      if (event.key === "Escape") this.input.value = "";
      if (this.input.value !== this.query || event.key === "Escape") {
        clearTimeout(this.searchTimer);
        this.runSearch(this.input.value, true);
      } else this.nextMatch(event.shiftKey ? -1 : 1);
    }

    runSearch(query, jump) {
      this.query = query;
      this.matches = ns.traceModel.search(this.model, query);
      this.matchSet = new Set(this.matches);
      this.matchPos = -1;
      this.focus = -1;
      this.drawMinimap();
      if (jump && this.matches.length) this.nextMatch(1);
      else this.renderWindow(true);
      this.showCount();
      this.writeUrl();
    }

    nextMatch(step) {
      const n = this.matches.length;
      if (!n) return;
      this.matchPos = (this.matchPos + step + n) % n;
      this.focus = this.matches[this.matchPos];
      if (ns.traceModel.reveal(this.model, this.collapse, this.focus)) this.refreshRows();
      this.scrollToIndex(this.focus);
      this.showCount();
    }

    showCount() {
      const n = this.matches.length;
      this.count.textContent = !this.query ? "" : n === 0 ? "no match" : `${this.matchPos + 1} of ${n} ${n === 1 ? "match" : "matches"}`;
    }

    download() {
      const blob = new Blob([JSON.stringify(this.trace, null, 2)], { type: "application/json" });
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = `trace-${this.trace.traceId}.json`;
      link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
    }

    writeUrl() {
      if (!this.mounted || window.location.pathname !== this.path) return; // not yet, or the user has left
      const span = this.selected >= 0 ? this.model.spans[this.selected].spanId : null;
      const query = ns.traceModel.formatQuery({ span, q: this.query, collapse: this.collapse });
      if (query !== window.location.search) window.history.replaceState(window.history.state, "", this.path + query + window.location.hash);
    }
  }

  /* The duration label goes after the bar, else before it, else inside it (a bar across the view). */
  function durationPlace(left, width) {
    if (left + width <= 75) return { style: `left:${Math.max(left + width, 0)}%` };
    if (left >= 25) return { style: `right:${100 - left}%` };
    return { style: `left:${Math.max(left, 0)}%`, inside: true };
  }

  function lowerBound(sorted, value) {
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid] < value) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /* Dash may run the callback before React has put the container in the document. */
  function whenPresent(id, then, frames = 600) {
    const element = document.getElementById(id);
    if (element) then(element);
    else if (frames > 0) requestAnimationFrame(() => whenPresent(id, then, frames - 1));
  }

  ns.tracePage = {
    /* The clientside callback: (re)draws the trace of `data` ({trace, colours}) in `containerId`. */
    mount(containerId, data) {
      if (!data || !data.trace) return window.dash_clientside.no_update;
      whenPresent(containerId, (element) => {
        if (current) current.destroy();
        current = new TraceView(element, data);
      });
      return data.trace.traceId;
    },
  };
})();
