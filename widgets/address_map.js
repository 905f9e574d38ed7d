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

function render({ model, el }) {
  const canvas = h("canvas", { class: "wb-map-canvas" });
  const tooltip = h("div", { class: "wb-tooltip" });
  const crumbs = h("span", { class: "wb-crumbs" });
  const summary = h("span", { class: "wb-note" });
  const refresh = h("button", { onclick: () => model.send({ kind: "refresh" }) }, "Refresh");
  const zoomIn = h("button", { title: "zoom in (or use the mouse wheel)" }, "+");
  const zoomOut = h("button", { title: "zoom out" }, "−");
  const reset = h("button", { title: "whole strip (or double-click it)" }, "fit");
  const selected = h("div", { class: "wb-note" });
  const error = h("div", { class: "wb-error" });
  const tableToggle = h("button", {}, "table");
  const tableBox = h("div", { class: "wb-map-table", style: "display: none" });
  const legend = h("div", { class: "wb-legend" },
    ...LEGEND.map(([key, text]) => h("span", {}, h("i", { style: `background: ${COLOURS[key]}` }), text)),
    h("span", {}, h("i", { style: "background: repeating-linear-gradient(135deg, #bbf7d0 0 3px, #fff 3px 6px)" }),
      "cluster of many regions"));
  const root = h("div", { class: "wb wb-map", style: "position: relative" },
    h("div", { class: "wb-toolbar" }, h("span", { class: "wb-title" }, "Address space"), summary,
      h("span", { class: "wb-spacer" }), zoomOut, zoomIn, reset, tableToggle, refresh),
    h("div", { class: "wb-toolbar" }, crumbs),
    canvas, tooltip, legend, selected, error, tableBox);
  el.append(root);

  let scale = 1;
  let offset = 0; // fraction of the strip at the left edge
  let layout = []; // [x0, x1] per segment, as fractions of the whole strip
  let drag = null;
  let frame = 0;

  function computeLayout() {
    const segments = model.get("segments");
    const total = segments.reduce((sum, s) => sum + s.weight, 0) || 1;
    let x = 0;
    layout = segments.map((s) => { const x0 = x; x += s.weight / total; return [x0, x]; });
  }
  function clampView() {
    scale = Math.min(Math.max(scale, 1), 400);
    offset = Math.min(Math.max(offset, 0), 1 - 1 / scale);
  }
  function toPixels(fraction, width) { return (fraction - offset) * scale * width; }
  function segmentAt(px, width) {
    const fraction = px / width / scale + offset;
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

  function draw() {
    frame = 0;
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
    const segments = model.get("segments");
    const chosen = model.get("selected");
    const below = [];
    let lastAddressEnd = -Infinity;
    segments.forEach((s, i) => {
      const x0 = toPixels(layout[i][0], width);
      const x1 = toPixels(layout[i][1], width);
      if (x1 < 0 || x0 > width) return;
      const w = Math.max(x1 - x0, 0.5);
      g.fillStyle = fill(s);
      g.fillRect(x0, BAR_TOP, w, BAR_HEIGHT);
      if (s.cluster || (!s.permissions && s.kind !== "guard")) {
        // stripes: a cluster mixes regions; an empty stretch is squeezed, not to scale
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
      g.strokeStyle = "#ffffff";
      g.lineWidth = 1;
      g.strokeRect(x0, BAR_TOP, w, BAR_HEIGHT);
      if (chosen && chosen.start === s.start) {
        g.strokeStyle = "#1976d2";
        g.lineWidth = 2;
        g.strokeRect(x0 + 1, BAR_TOP + 1, w - 2, BAR_HEIGHT - 2);
      }
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
      if (s.permissions || s.cluster) {
        const address = shortHex(s.start);
        const tw = g.measureText(address).width;
        if (x0 >= lastAddressEnd + 6 && x0 + tw < width) {
          g.textAlign = "left";
          g.fillStyle = "#6b7280";
          g.fillText(address, x0, BAR_TOP - 9);
          lastAddressEnd = x0 + tw;
        }
      }
    });
    // Labels that did not fit in their segment: under the bar, on the first free row.
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
    root.dataset.drawn = String((Number(root.dataset.drawn) || 0) + 1);
  }
  function schedule() { if (!frame) frame = requestAnimationFrame(draw); }

  function drawTable() {
    if (tableBox.style.display === "none") return;
    const rows = model.get("segments").map((s) => h("tr", {
      class: "wb-click", style: `background: ${fill(s)}`, onclick: () => click(s),
    }, h("td", {}, h("code", {}, s.start)), h("td", {}, h("code", {}, s.last)), h("td", {}, s.size),
    h("td", {}, h("code", {}, s.permissions ?? "")), h("td", {}, s.label)));
    tableBox.replaceChildren(h("table", { class: "wb-table" },
      h("tr", {}, ...["start", "last", "size", "perm", "what"].map((t) => h("th", {}, t))), ...rows));
  }

  function drawBars() {
    const s = model.get("summary");
    summary.textContent = `${s.mapped} mapped in ${s.mapped_regions} regions · ${s.wx_violations} W^X violations`;
    refresh.style.display = model.get("source") === "machine" ? "" : "none";
    const path = model.get("crumbs");
    crumbs.replaceChildren(...path.flatMap((c, i) => {
      const link = i < path.length - 1 ? h("a", { onclick: () => model.send({ kind: "zoom_out", depth: i }) }, c.label)
        : h("b", {}, c.label);
      return i ? [" › ", link] : [link];
    }));
    const chosen = model.get("selected");
    selected.textContent = chosen && chosen.start
      ? `selected: ${chosen.label}, ${chosen.start} – ${chosen.last}, ${chosen.size}` +
        (chosen.permissions && !model.get("linked") ? " (link an explorer to open it there)" : "")
      : "Hover for details; click a region to open it, a cluster to zoom in.";
    error.textContent = model.get("error");
  }

  function click(s) {
    if (s.cluster) model.send({ kind: "zoom", start: s.start, last: s.last });
    else model.send({ kind: "open", start: s.start });
  }

  canvas.addEventListener("mousemove", (event) => {
    const box = canvas.getBoundingClientRect();
    const x = event.clientX - box.left;
    if (drag) {
      offset = drag.offset - (x - drag.x) / box.width / scale;
      drag.moved = drag.moved || Math.abs(x - drag.x) > 3;
      clampView();
      schedule();
      return;
    }
    const i = segmentAt(x, box.width);
    if (i < 0) { tooltip.style.display = "none"; return; }
    tooltip.textContent = describe(model.get("segments")[i]);
    tooltip.style.display = "block";
    const rootBox = root.getBoundingClientRect();
    const left = Math.min(event.clientX - rootBox.left + 12, rootBox.width - tooltip.offsetWidth - 4);
    tooltip.style.left = `${Math.max(0, left)}px`;
    tooltip.style.top = `${event.clientY - rootBox.top + 14}px`;
  });
  canvas.addEventListener("mouseleave", () => { tooltip.style.display = "none"; drag = null; });
  canvas.addEventListener("mousedown", (event) => {
    const box = canvas.getBoundingClientRect();
    drag = { x: event.clientX - box.left, offset, moved: false };
  });
  canvas.addEventListener("mouseup", (event) => {
    const box = canvas.getBoundingClientRect();
    const moved = drag && drag.moved;
    drag = null;
    if (moved) return;
    const i = segmentAt(event.clientX - box.left, box.width);
    if (i >= 0) click(model.get("segments")[i]);
  });
  canvas.addEventListener("wheel", (event) => {
    event.preventDefault();
    const box = canvas.getBoundingClientRect();
    const at = (event.clientX - box.left) / box.width / scale + offset;
    scale *= event.deltaY < 0 ? 1.25 : 0.8;
    clampView();
    offset = at - (event.clientX - box.left) / box.width / scale;
    clampView();
    schedule();
  }, { passive: false });
  canvas.addEventListener("dblclick", () => { scale = 1; offset = 0; schedule(); });
  const zoomBy = (factor) => {
    const middle = offset + 0.5 / scale;
    scale *= factor;
    clampView();
    offset = middle - 0.5 / scale;
    clampView();
    schedule();
  };
  zoomIn.addEventListener("click", () => zoomBy(2));
  zoomOut.addEventListener("click", () => zoomBy(0.5));
  reset.addEventListener("click", () => { scale = 1; offset = 0; schedule(); });
  tableToggle.addEventListener("click", () => {
    tableBox.style.display = tableBox.style.display === "none" ? "" : "none";
    drawTable();
  });

  const onSegments = () => { scale = 1; offset = 0; computeLayout(); drawBars(); drawTable(); schedule(); };
  const onOther = () => { drawBars(); schedule(); };
  const onSeq = () => requestAnimationFrame(() => model.send({ kind: "ack", seq: model.get("seq") }));
  model.on("change:segments", onSegments);
  const others = ["summary", "crumbs", "selected", "linked", "source", "error"];
  for (const name of others) model.on(`change:${name}`, onOther);
  model.on("change:seq", onSeq);
  const resize = new ResizeObserver(schedule);
  resize.observe(canvas);
  computeLayout();
  drawBars();
  draw();
  model.send({ kind: "hello" });

  return () => {
    if (frame) cancelAnimationFrame(frame);
    resize.disconnect();
    model.off("change:segments", onSegments);
    for (const name of others) model.off(`change:${name}`, onOther);
    model.off("change:seq", onSeq);
  };
}

export default { render };
