"""The breaker wall's script (a Dash clientside callback): puts each tick's tile HTML into the
page outside React, morphing only the tiles in view, and makes tile clicks navigate in the app.
Kept inline rather than in assets/: Dash's FastAPI backend may serve a deep link before it has
collected assets/. It must never rebuild a tile that did not change.
"""

from __future__ import annotations

from tracehouse.dashboard.html_string import in_app_clicks

__all__ = ["PATCH_TILES"]

#: Puts each tick's tile HTML into the wall (React never sees the tiles: Dash's renderer took most
#: of a second to lay out 200 tiles of components). A tile in view (or near it) whose HTML changed
#: is morphed into the one already there: just the texts and attributes that differ change. A tile
#: out of view keeps its newest HTML until it scrolls in, like the trace page's rows: on a 200-tile
#: wall most tiles are out of view, and parsing and morphing them was most of a tick. A click on a
#: tile navigates inside the app, as a ``dcc.Link`` does.
PATCH_TILES = """function (data) {
  const wall = window.tracehouseWall || (window.tracehouseWall = (() => {
    const morph = (old, next) => {
      if (old.nodeType !== next.nodeType || old.nodeName !== next.nodeName) return old.replaceWith(next);
      if (old.isEqualNode(next)) return;  // native and deep: most of a tile is as it was
      if (old.nodeType !== 1) {
        if (old.nodeValue !== next.nodeValue) old.nodeValue = next.nodeValue;
        return;
      }
      for (const a of Array.from(old.attributes)) if (!next.hasAttribute(a.name)) old.removeAttribute(a.name);
      for (const a of Array.from(next.attributes)) {
        if (old.getAttribute(a.name) !== a.value) old.setAttribute(a.name, a.value);
      }
      const before = Array.from(old.childNodes), after = Array.from(next.childNodes);
      if (before.length !== after.length) return old.replaceChildren(...after);
      before.forEach((child, i) => morph(child, after[i]));
    };
    const parse = (piece) => {
      const template = document.createElement("template");
      template.innerHTML = piece;
      return template.content.firstElementChild;
    };
    const refresh = (box, tile) => {
      const i = Array.prototype.indexOf.call(box.children, tile);
      if (i < 0 || box.__applied[i] === box.__latest[i]) return;
      morph(tile, parse(box.__latest[i]));
      box.__applied[i] = box.__latest[i];
    };
    const inView = new WeakSet();
    const watcher = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        if (!entry.isIntersecting) { inView.delete(entry.target); continue; }
        inView.add(entry.target);
        if (entry.target.parentElement) refresh(entry.target.parentElement, entry.target);
      }
    }, { rootMargin: "300px" });
    const patch = (id, pieces) => {
      const box = document.getElementById(id);
      if (!box) return;
      box.__applied = box.__applied || [];
      box.__latest = pieces;
      pieces.forEach((piece, i) => {
        const tile = box.children[i];
        if (!tile) {
          box.appendChild(parse(piece));
          box.__applied[i] = piece;
          watcher.observe(box.children[i]);
        } else if (inView.has(tile)) {
          refresh(box, tile);
        }
      });
      while (box.children.length > pieces.length) {
        watcher.unobserve(box.lastElementChild);
        box.lastElementChild.remove();
      }
      box.__applied.length = pieces.length;
    };
    IN_APP_CLICKS
    return { patch };
  })());
  if (data) {
    wall.patch("breakers-wall", data.wall);
    wall.patch("breakers-pools", data.pools);
  }
  return window.dash_clientside.no_update;
}""".replace("IN_APP_CLICKS", in_app_clicks("a.tile-link"))
