/* The trace page's time axis: the ruler over the waterfall (drag on it to zoom into a time range,
 * double-click to zoom out) and the minimap (the whole trace in miniature on a canvas; a click or
 * drag moves the view window, rows and time). Both talk to the view only through callbacks. */
(function () {
  "use strict";
  const ns = (window.tracehouse = window.tracehouse || {});
  const TICKS = 4;
  const ERROR = "#e15759";
  const MATCH = "#f0a000";

  const clamp = (x, lo, hi) => Math.min(Math.max(x, lo), hi);

  /* Pointer drags with capture: no document-wide listeners to leak. */
  function onDrag(element, { start, move, end }) {
    element.addEventListener("pointerdown", (event) => {
      if (event.button !== 0) return;
      element.setPointerCapture(event.pointerId);
      start(event);
      event.preventDefault();
    });
    element.addEventListener("pointermove", (event) => {
      if (element.hasPointerCapture(event.pointerId)) move(event);
    });
    const finish = (event) => {
      if (!element.hasPointerCapture(event.pointerId)) return;
      element.releasePointerCapture(event.pointerId);
      if (end) end(event);
    };
    element.addEventListener("pointerup", finish);
    element.addEventListener("pointercancel", finish);
  }

  const fraction = (element, event) => {
    const box = element.getBoundingClientRect();
    return [clamp((event.clientX - box.left) / (box.width || 1), 0, 1), clamp((event.clientY - box.top) / (box.height || 1), 0, 1)];
  };

  class Ruler {
    /* `zoom(from, to)` gets fractions of the current time window, `reset()` zooms out. */
    constructor(element, { zoom, reset }) {
      this.element = element;
      this.ticks = document.createElement("div");
      this.selection = document.createElement("div");
      this.selection.className = "tv-ruler-select";
      this.selection.hidden = true;
      element.append(this.ticks, this.selection);
      let from = 0;
      onDrag(element, {
        start: (event) => {
          from = fraction(element, event)[0];
          this.showSelection(from, from);
        },
        move: (event) => this.showSelection(from, fraction(element, event)[0]),
        end: (event) => {
          const to = fraction(element, event)[0];
          this.selection.hidden = true;
          if (Math.abs(to - from) * element.clientWidth > 4) zoom(Math.min(from, to), Math.max(from, to));
        },
      });
      element.addEventListener("dblclick", reset);
    }

    showSelection(a, b) {
      Object.assign(this.selection.style, { left: `${Math.min(a, b) * 100}%`, width: `${Math.abs(b - a) * 100}%` });
      this.selection.hidden = false;
    }

    draw(view) {
      const m = ns.traceModel;
      const marks = [];
      for (let k = 0; k <= TICKS; k++) {
        const at = view[0] + ((view[1] - view[0]) * k) / TICKS;
        const edge = k === TICKS ? " tv-tick-end" : "";
        marks.push(`<span class="tv-tick${edge}" style="left:${(k * 100) / TICKS}%">${m.formatDuration(at)}</span>`);
      }
      this.ticks.innerHTML = marks.join("");
    }
  }

  class Minimap {
    /* `moveTo(fx, fy)` gets the pointer's fractions of the whole trace (time) and of the rows. */
    constructor(element, { moveTo }) {
      this.element = element;
      this.canvas = document.createElement("canvas");
      this.window = document.createElement("div");
      this.window.className = "tv-minimap-window";
      element.append(this.canvas, this.window);
      const go = (event) => moveTo(...fraction(element, event));
      onDrag(element, { start: go, move: go });
    }

    /* Every shown row as a 1-px-or-taller bar, errors red, search matches ticked at the left. */
    draw(model, rows, colours, matches) {
      const ratio = window.devicePixelRatio || 1;
      const width = this.canvas.clientWidth;
      const height = this.canvas.clientHeight;
      this.canvas.width = Math.round(width * ratio);
      this.canvas.height = Math.round(height * ratio);
      const ctx = this.canvas.getContext("2d");
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      ctx.clearRect(0, 0, width, height);
      const rowHeight = height / Math.max(rows.length, 1);
      const barHeight = Math.max(rowHeight > 3 ? rowHeight - 1 : rowHeight, 1);
      for (let pos = 0; pos < rows.length; pos++) {
        const i = rows[pos];
        const span = model.spans[i];
        ctx.fillStyle = span.status.code === "Error" ? ERROR : colours[span.serviceName] || "#999";
        const x = (model.offset[i] / model.duration) * width;
        ctx.fillRect(x, pos * rowHeight, Math.max((span.durationNano / model.duration) * width, 1), barHeight);
      }
      ctx.fillStyle = MATCH;
      for (const pos of matches) ctx.fillRect(0, pos * rowHeight, 4, Math.max(rowHeight, 2));
    }

    /* The view window: time range (fractions of the trace) × shown rows (fractions of all rows). */
    place(left, right, top, bottom) {
      Object.assign(this.window.style, {
        left: `${left * 100}%`,
        width: `${(right - left) * 100}%`,
        top: `${top * 100}%`,
        height: `${(bottom - top) * 100}%`,
      });
    }
  }

  ns.traceTimeline = { Ruler, Minimap, clamp };
})();
