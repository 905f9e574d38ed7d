// The address-space map: the canonical address space as one strip, not to scale. Python
// (workbench/views/address_map.py) computes the segments and their relative widths; empty
// stretches are slivers, clusters of many small regions zoom in (computed in Python) on click.
// Wheel zooms the strip, dragging pans it, double-click resets. Addresses are hex strings.

const COLOURS = {
  "r-x": "#fed7aa", "r--": "#bfdbfe", "rw-": "#bbf7d0", rwx: "#fecaca",
  guard: "#fca5a5", unmapped: "#f3f4f6", "non-canonical": "#9ca3af",
};
const LEGEND = [
  ["r-x", "code r-x"], ["r--", "read-only r--"], ["rw-", "data rw-"], ["rwx", "W+X"],
  ["guard", "guard page"], ["unmapped", "unmapped (squeezed)"], ["non-canonical", "non-canonical hole"],
];
const BAR_TOP = 18;
const BAR_HEIGHT = 40;
const LABEL_ROWS = 3;

function short(label) {
  const text = label.replace(/^image /, "").replace(/: unmapped so an overflow faults$/, "");
  return text.length > 28 ? `${text.slice(0, 27)}…` : text;
}

function fill(segment) {
  if (segment.kind === "non-canonical") return COLOURS["non-canonical"];
  if (segment.kind === "guard") return COLOURS.guard;
  if (segment.wx) return COLOURS.rwx;
  if (!segment.permissions) return COLOURS.unmapped;
  return COLOURS[segment.permissions.slice(-3)] ?? COLOURS.unmapped;
}

function describe(s) {
  const lines = [s.label, `${s.start} – ${s.last}`, `${s.size}${s.permissions ? `  ${s.permissions}` : ""}`];
  if (s.pages) lines.push(`${s.pages} pages${s.page_sizes.length ? ` of ${s.page_sizes.join("/")}` : ""}`);
  if (s.cluster) {
    for (const p of s.cluster.by_permission) lines.push(`  ${p.permissions}: ${p.size}`);
    if (s.cluster.wx) lines.push(`  ${s.cluster.wx} W+X regions!`);
    lines.push("click to zoom in");
  } else if (s.permissions) {
    lines.push("click to open it in the explorer");
  }
  return lines.join("\n");
}

function legend() {
  return h("div", { class: "wb-legend" },
    ...LEGEND.map(([key, text]) => h("span", {}, h("i", { style: `background: ${COLOURS[key]}` }), text)),
    h("span", {}, h("i", { style: "background: repeating-linear-gradient(135deg, #bbf7d0 0 3px, #fff 3px 6px)" }),
      "cluster of many regions"));
}

// The map's elements; `root` holds them all.
function makeElements(model) {
  const e = {
    canvas: h("canvas", { class: "wb-map-canvas" }),
    tooltip: h("div", { class: "wb-tooltip" }),
    crumbs: h("span", { class: "wb-crumbs" }),
    summary: h("span", { class: "wb-note" }),
    refresh: h("button", { onclick: () => model.send({ kind: "refresh" }) }, "Refresh"),
    zoomIn: h("button", { title: "zoom in (or use the mouse wheel)" }, "+"),
    zoomOut: h("button", { title: "zoom out" }, "−"),
    reset: h("button", { title: "whole strip (or double-click it)" }, "fit"),
    selected: h("div", { class: "wb-note" }),
    error: h("div", { class: "wb-error" }),
    tableToggle: h("button", {}, "table"),
    tableBox: h("div", { class: "wb-map-table", style: "display: none" }),
  };
  e.root = h("div", { class: "wb wb-map", style: "position: relative" },
    h("div", { class: "wb-toolbar" }, h("span", { class: "wb-title" }, "Address space"), e.summary,
      h("span", { class: "wb-spacer" }), e.zoomOut, e.zoomIn, e.reset, e.tableToggle, e.refresh),
    h("div", { class: "wb-toolbar" }, e.crumbs),
    e.canvas, e.tooltip, legend(), e.selected, e.error, e.tableBox);
  return e;
}

// A canvas sized for the screen's pixel ratio, cleared, and its 2D context set up for labels.
function clearedCanvas(canvas) {
  const width = canvas.clientWidth || 600;
  const height = canvas.clientHeight || 118;
  const ratio = window.devicePixelRatio || 1;
  if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
  if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);
  g.font = "11px system-ui, sans-serif";
  g.textBaseline = "middle";
  return { g, width };
}

// One segment's box, from x0 and w pixels wide: filled, striped if it is not to scale, framed.
function paintBox(g, s, x0, w, chosen) {
  g.fillStyle = fill(s);
  g.fillRect(x0, BAR_TOP, w, BAR_HEIGHT);
  if (s.cluster || (!s.permissions && s.kind !== "guard")) paintStripes(g, s, x0, w);
  g.strokeStyle = "#ffffff";
  g.lineWidth = 1;
  g.strokeRect(x0, BAR_TOP, w, BAR_HEIGHT);
  if (chosen && chosen.start === s.start) {
    g.strokeStyle = "#1976d2";
    g.lineWidth = 2;
    g.strokeRect(x0 + 1, BAR_TOP + 1, w - 2, BAR_HEIGHT - 2);
  }
}

// Stripes: a cluster mixes regions; an empty stretch is squeezed, not to scale.
function paintStripes(g, s, x0, w) {
  g.save();
  g.beginPath();
  g.rect(x0, BAR_TOP, w, BAR_HEIGHT);
  g.clip();
  g.strokeStyle = s.cluster ? "rgba(255,255,255,0.9)" : "rgba(0,0,0,0.12)";
  g.lineWidth = s.cluster ? 2 : 1;
  for (let k = x0 - BAR_HEIGHT; k < x0 + w; k += 6) {
    g.beginPath();
    g.moveTo(k, BAR_TOP + BAR_HEIGHT);
    g.lineTo(k + BAR_HEIGHT, BAR_TOP);
    g.stroke();
  }
  g.restore();
}

// The segment's label inside it if it fits; else its size, and the label goes on the list `below`.
function paintText(g, s, x0, w, below) {
  const named = s.permissions || s.kind === "guard" || s.cluster;
  const text = named ? s.label : `≈ ${s.size}`;
  g.fillStyle = "#111827";
  g.textAlign = "center";
  if (g.measureText(text).width < w - 6) {
    g.fillText(text, x0 + w / 2, BAR_TOP + BAR_HEIGHT / 2);
  } else {
    if (g.measureText(s.size).width < w - 4) g.fillText(s.size, x0 + w / 2, BAR_TOP + BAR_HEIGHT / 2);
    if (named) below.push([x0 + w / 2, short(s.label)]);
  }
}

// A mapped segment's start address above the bar, unless it would overlap the previous one;
// returns where the last address drawn ends.
function paintAddress(g, s, x0, width, lastAddressEnd) {
  if (!s.permissions && !s.cluster) return lastAddressEnd;
  const address = shortHex(s.start);
  const tw = g.measureText(address).width;
  if (x0 < lastAddressEnd + 6 || x0 + tw >= width) return lastAddressEnd;
  g.textAlign = "left";
  g.fillStyle = "#6b7280";
  g.fillText(address, x0, BAR_TOP - 9);
  return x0 + tw;
}

// Labels that did not fit in their segment: under the bar, on the first free row.
function paintLabelsBelow(g, below, width) {
  const rows = [];
  g.textAlign = "left";
  for (const [middle, text] of below) {
    const tw = g.measureText(text).width;
    const left = Math.min(Math.max(middle - tw / 2, 0), width - tw);
    let row = rows.findIndex((end) => end + 8 <= left);
    if (row < 0 && rows.length < LABEL_ROWS) { rows.push(-Infinity); row = rows.length - 1; }
    if (row < 0) continue;
    rows[row] = left + tw;
    const y = BAR_TOP + BAR_HEIGHT + 12 + row * 15;
    g.strokeStyle = "#9ca3af";
    g.lineWidth = 1;
    g.beginPath();
    g.moveTo(middle, BAR_TOP + BAR_HEIGHT);
    g.lineTo(middle, y - 6);
    g.stroke();
    g.fillStyle = "#374151";
    g.fillText(text, left, y);
  }
}

class AddressMap {
  constructor(model, el) {
    this.model = model;
    this.e = makeElements(model);
    el.append(this.e.root);
    this.scale = 1;
    this.offset = 0; // fraction of the strip at the left edge
    this.layout = []; // [x0, x1] per segment, as fractions of the whole strip
    this.drag = null;
    this.frame = 0;
    this.listenToPointer();
    this.listenToButtons();
  }

  computeLayout() {
    const segments = this.model.get("segments");
    const total = segments.reduce((sum, s) => sum + s.weight, 0) || 1;
    let x = 0;
    this.layout = segments.map((s) => { const x0 = x; x += s.weight / total; return [x0, x]; });
  }

  clampView() {
    this.scale = Math.min(Math.max(this.scale, 1), 400);
    this.offset = Math.min(Math.max(this.offset, 0), 1 - 1 / this.scale);
  }

  toPixels(fraction, width) { return (fraction - this.offset) * this.scale * width; }

  segmentAt(px, width) {
    const fraction = px / width / this.scale + this.offset;
    const layout = this.layout;
    let low = 0;
    let high = layout.length - 1;
    while (low <= high) {
      const mid = (low + high) >> 1;
      if (layout[mid][1] <= fraction) low = mid + 1;
      else if (layout[mid][0] > fraction) high = mid - 1;
      else return mid;
    }
    return -1;
  }

  draw = () => {
    this.frame = 0;
    const { g, width } = clearedCanvas(this.e.canvas);
    const chosen = this.model.get("selected");
    const below = [];
    let lastAddressEnd = -Infinity;
    this.model.get("segments").forEach((s, i) => {
      const x0 = this.toPixels(this.layout[i][0], width);
      const x1 = this.toPixels(this.layout[i][1], width);
      if (x1 < 0 || x0 > width) return;
      const w = Math.max(x1 - x0, 0.5);
      paintBox(g, s, x0, w, chosen);
      paintText(g, s, x0, w, below);
      lastAddressEnd = paintAddress(g, s, x0, width, lastAddressEnd);
    });
    paintLabelsBelow(g, below, width);
    const root = this.e.root;
    root.dataset.drawn = String((Number(root.dataset.drawn) || 0) + 1);
  };

  schedule = () => { if (!this.frame) this.frame = requestAnimationFrame(this.draw); };

  drawTable() {
    const tableBox = this.e.tableBox;
    if (tableBox.style.display === "none") return;
    const rows = this.model.get("segments").map((s) => h("tr", {
      class: "wb-click", style: `background: ${fill(s)}`, onclick: () => this.click(s),
    }, h("td", {}, h("code", {}, s.start)), h("td", {}, h("code", {}, s.last)), h("td", {}, s.size),
    h("td", {}, h("code", {}, s.permissions ?? "")), h("td", {}, s.label)));
    tableBox.replaceChildren(h("table", { class: "wb-table" },
      h("tr", {}, ...["start", "last", "size", "perm", "what"].map((t) => h("th", {}, t))), ...rows));
  }

  drawBars() {
    const { model, e } = this;
    const s = model.get("summary");
    e.summary.textContent = `${s.mapped} mapped in ${s.mapped_regions} regions · ${s.wx_violations} W^X violations`;
    e.refresh.style.display = model.get("source") === "machine" ? "" : "none";
    const path = model.get("crumbs");
    e.crumbs.replaceChildren(...path.flatMap((c, i) => {
      const link = i < path.length - 1 ? h("a", { onclick: () => model.send({ kind: "zoom_out", depth: i }) }, c.label)
        : h("b", {}, c.label);
      return i ? [" › ", link] : [link];
    }));
    const chosen = model.get("selected");
    e.selected.textContent = chosen && chosen.start
      ? `selected: ${chosen.label}, ${chosen.start} – ${chosen.last}, ${chosen.size}` +
        (chosen.permissions && !model.get("linked") ? " (link an explorer to open it there)" : "")
      : "Hover for details; click a region to open it, a cluster to zoom in.";
    e.error.textContent = model.get("error");
  }

  click(s) {
    if (s.cluster) this.model.send({ kind: "zoom", start: s.start, last: s.last });
    else this.model.send({ kind: "open", start: s.start });
  }

  onMouseMove = (event) => {
    const box = this.e.canvas.getBoundingClientRect();
    const x = event.clientX - box.left;
    if (this.drag) this.pan(x, box.width);
    else this.hover(event, this.segmentAt(x, box.width));
  };

  pan(x, width) {
    const drag = this.drag;
    this.offset = drag.offset - (x - drag.x) / width / this.scale;
    drag.moved = drag.moved || Math.abs(x - drag.x) > 3;
    this.clampView();
    this.schedule();
  }

  hover(event, i) {
    const { tooltip, root } = this.e;
    if (i < 0) { tooltip.style.display = "none"; return; }
    tooltip.textContent = describe(this.model.get("segments")[i]);
    tooltip.style.display = "block";
    const rootBox = root.getBoundingClientRect();
    const left = Math.min(event.clientX - rootBox.left + 12, rootBox.width - tooltip.offsetWidth - 4);
    tooltip.style.left = `${Math.max(0, left)}px`;
    tooltip.style.top = `${event.clientY - rootBox.top + 14}px`;
  }

  onMouseUp = (event) => {
    const box = this.e.canvas.getBoundingClientRect();
    const moved = this.drag && this.drag.moved;
    this.drag = null;
    if (moved) return;
    const i = this.segmentAt(event.clientX - box.left, box.width);
    if (i >= 0) this.click(this.model.get("segments")[i]);
  };

  onWheel = (event) => {
    event.preventDefault();
    const box = this.e.canvas.getBoundingClientRect();
    const at = (event.clientX - box.left) / box.width / this.scale + this.offset;
    this.scale *= event.deltaY < 0 ? 1.25 : 0.8;
    this.clampView();
    this.offset = at - (event.clientX - box.left) / box.width / this.scale;
    this.clampView();
    this.schedule();
  };

  listenToPointer() {
    const canvas = this.e.canvas;
    canvas.addEventListener("mousemove", this.onMouseMove);
    canvas.addEventListener("mouseleave", () => { this.e.tooltip.style.display = "none"; this.drag = null; });
    canvas.addEventListener("mousedown", (event) => {
      const box = canvas.getBoundingClientRect();
      this.drag = { x: event.clientX - box.left, offset: this.offset, moved: false };
    });
    canvas.addEventListener("mouseup", this.onMouseUp);
    canvas.addEventListener("wheel", this.onWheel, { passive: false });
    canvas.addEventListener("dblclick", this.fit);
  }

  zoomBy(factor) {
    const middle = this.offset + 0.5 / this.scale;
    this.scale *= factor;
    this.clampView();
    this.offset = middle - 0.5 / this.scale;
    this.clampView();
    this.schedule();
  }

  fit = () => { this.scale = 1; this.offset = 0; this.schedule(); };

  listenToButtons() {
    const e = this.e;
    e.zoomIn.addEventListener("click", () => this.zoomBy(2));
    e.zoomOut.addEventListener("click", () => this.zoomBy(0.5));
    e.reset.addEventListener("click", this.fit);
    e.tableToggle.addEventListener("click", () => {
      e.tableBox.style.display = e.tableBox.style.display === "none" ? "" : "none";
      this.drawTable();
    });
  }

  // Listen to the model and to the canvas's size; returns what stops listening.
  connect() {
    const model = this.model;
    const onSegments = () => {
      this.scale = 1; this.offset = 0; this.computeLayout(); this.drawBars(); this.drawTable(); this.schedule();
    };
    const onOther = () => { this.drawBars(); this.schedule(); };
    const onSeq = () => requestAnimationFrame(() => sendAck(model, model.get("seq")));
    const handlers = [["change:segments", onSegments],
      ...["summary", "crumbs", "selected", "linked", "source", "error"].map((name) => [`change:${name}`, onOther]),
      ["change:seq", onSeq]];
    for (const [event, handler] of handlers) model.on(event, handler);
    const resize = new ResizeObserver(this.schedule);
    resize.observe(this.e.canvas);
    this.computeLayout();
    this.drawBars();
    this.draw();
    model.send({ kind: "hello" });
    return () => {
      if (this.frame) cancelAnimationFrame(this.frame);
      resize.disconnect();
      for (const [event, handler] of handlers) model.off(event, handler);
    };
  }
}

function render({ model, el }) {
  return new AddressMap(model, el).connect();
}

export default { render };
