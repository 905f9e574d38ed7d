// The physical-memory map: one cell per 4 KiB frame, coloured by owner (Python computes the
// owners: workbench/views/frame_map.py). A range of up to GRID_MAX frames is a grid of cells; a
// larger one (the Linux guest's 131,072 frames) is a strip, one pixel column per run of frames,
// coloured by the run's most important owner (a page table or a ring-3 page wins; otherwise
// the majority), with a tick above it wherever the run holds an error (red) or a changed frame
// (blue), so none is lost. A click on the strip zooms into an eighth of it around the click, a
// drag into the range dragged over; once the range is GRID_MAX frames or fewer it is a grid.
// A grid first shows the frames up to the last one in use (rounded up to FOCUS frames), when
// those are a quarter of memory or less: the unikernel's 300 or so, not its 16,000 free ones.
// Click a cell for its owner, every vaddr that maps it, its errors and first bytes.
// The owners and marks arrive as binary buffers (one byte a frame); the cells are painted as one
// image, a pixel a frame, scaled up to the cell size (no canvas call per cell).

// For benchmarks/views.py: when the page had evaluated this module; render and draw mark theirs.
performance.mark("workbench frame_map module");

const GRID_MAX = 16384;
const STRIP_HEIGHT = 48;
const TICKS = 8; // the band above the strip that marks errors and changes
const GRID_HEIGHT = 720; // pixels a grid aims to fit in
const FOCUS = 512; // frames: a grid's first range ends at a multiple of this

// A binary trait (Python bytes) arrives as a DataView over the message's buffer.
function bytes(value) {
  return value && value.buffer ? new Uint8Array(value.buffer, value.byteOffset, value.byteLength) : new Uint8Array(0);
}

// "#rrggbb" as the 32-bit word an ImageData holds for it (RGBA in memory: little-endian ABGR).
function rgba(colour) {
  const value = parseInt(colour.slice(1), 16);
  return (0xff000000 | ((value & 0xff) << 16) | (value & 0xff00) | (value >> 16)) >>> 0;
}

// The owner a pixel column of the strip shows for frames [first, end): an important owner if
// the run has one, else the owner of most frames. `counts` is 256 zeros, left zeroed.
function stripOwner(owners, first, end, important, counts) {
  let best = owners[first], bestCount = 0, found = -1;
  for (let i = first; i < end; i++) {
    const owner = owners[i];
    if (important[owner]) { found = owner; break; }
    const count = ++counts[owner];
    if (count > bestCount) { best = owner; bestCount = count; }
  }
  counts.fill(0);
  return found >= 0 ? found : best;
}

function strongestMark(marks, first, end) {
  let mark = 0;
  for (let i = first; i < end && !(mark & 1); i++) mark |= marks[i];
  return mark;
}

function gridShape(count, width) {
  const columns = count <= 4096 ? 64 : 128;
  const rows = Math.ceil(count / columns);
  const cell = Math.max(2, Math.min(Math.floor(width / columns), Math.floor(GRID_HEIGHT / rows), 24));
  return { columns, rows, cell };
}

function render({ model, el }) {
  performance.mark("workbench frame_map render");
  const canvas = h("canvas", { class: "wb-frame-canvas" });
  const note = h("span", { class: "wb-note" });
  const range = h("span", { class: "wb-note wb-frame-range" });
  const legend = h("div", { class: "wb-legend" });
  const details = h("pre", { class: "wb-frame-details" });
  const whole = h("button", { "data-action": "whole", onclick: () => zoom(0, frameCount()) }, "Whole memory");
  const refresh = h("button", { "data-action": "refresh", onclick: () => model.send({ kind: "refresh" }) }, "Refresh");
  const error = h("div", { class: "wb-error" });
  const root = h("div", { class: "wb wb-frame-map" },
    h("div", { class: "wb-toolbar" }, h("span", { class: "wb-title" }, "Physical frames"), note,
      h("span", { class: "wb-spacer" }), whole, refresh),
    h("div", { class: "wb-toolbar" }, range), canvas, legend, details, error);
  el.append(root);
  let view = { first: 0, end: 0, strip: false, columns: 64, cell: 1, perPixel: 1 };
  let drag = null;

  let data = read();
  const frameCount = () => data.owners.length;

  // The traits as the drawing wants them, read again on every change.
  function read() {
    const legend = model.get("legend");
    const words = new Uint32Array(256).fill(rgba("#ffffff"));
    const important = new Uint8Array(256);
    for (const [value, , colour, , wins] of legend) {
      words[value] = rgba(colour);
      important[value] = wins ? 1 : 0;
    }
    return { owners: bytes(model.get("owners")), marks: bytes(model.get("marks")), words, important };
  }

  // Show frames [first, end), widened to whole rows of 64 so that each row starts at a round paddr.
  function zoom(first, end) {
    const total = frameCount();
    first = Math.max(0, Math.min(Math.floor(first / 64) * 64, total - 1));
    end = Math.max(first + 1, Math.min(Math.ceil(end / 64) * 64, total));
    view.first = first;
    view.end = end;
    draw();
  }

  function draw() {
    const { owners, marks } = data;
    if (view.end === 0 || view.end > owners.length) [view.first, view.end] = firstRange(owners);
    const width = Math.max(el.clientWidth || 800, 400) - 16;
    const count = view.end - view.first;
    view.strip = count > GRID_MAX || (model.get("shape") === "strip" && count === owners.length);
    const ctx = view.strip ? drawStrip(owners, marks, width) : drawGrid(owners, marks, width);
    describe(owners.length, count, ctx);
  }

  // The whole memory, or for a grid only the frames up to the last one in use, if few.
  function firstRange(owners) {
    if (model.get("shape") === "strip") return [0, owners.length];
    const empty = new Uint8Array(256); // a table, not a Set: this looks at up to 16,384 frames
    for (const owner of model.get("summary").empty || []) empty[owner] = 1;
    let last = owners.length - 1;
    while (last > 0 && empty[owners[last]]) last--;
    const end = Math.max(FOCUS, Math.ceil((last + 1) / FOCUS) * FOCUS);
    return [0, end <= owners.length / 4 ? end : owners.length];
  }

  function drawStrip(owners, marks, width) {
    const count = view.end - view.first;
    const pixels = Math.min(width, count);
    view.perPixel = count / pixels;
    canvas.width = pixels;
    canvas.height = STRIP_HEIGHT + TICKS;
    const ctx = canvas.getContext("2d");
    const image = ctx.createImageData(pixels, STRIP_HEIGHT);
    const out = new Uint32Array(image.data.buffer);
    const counts = new Uint32Array(256);
    const ticks = [];
    for (let x = 0; x < pixels; x++) {
      const first = view.first + Math.floor(x * view.perPixel);
      const end = Math.max(first + 1, view.first + Math.floor((x + 1) * view.perPixel));
      const word = data.words[stripOwner(owners, first, end, data.important, counts)];
      for (let y = 0; y < STRIP_HEIGHT; y++) out[y * pixels + x] = word;
      const mark = strongestMark(marks, first, end);
      if (mark) ticks.push([x, mark]);
    }
    ctx.putImageData(image, 0, TICKS);
    for (const [x, mark] of ticks) {
      ctx.fillStyle = mark & 1 ? "#dc2626" : "#2563eb";
      ctx.fillRect(Math.max(0, x - 1), 0, 3, TICKS);
    }
    return ctx;
  }

  function drawGrid(owners, marks, width) {
    const count = view.end - view.first;
    Object.assign(view, gridShape(count, width));
    const { columns, rows, cell } = view;
    canvas.width = columns * cell;
    canvas.height = rows * cell;
    const ctx = canvas.getContext("2d");
    const small = document.createElement("canvas"); // a pixel a frame; cells past the end stay clear
    small.width = columns;
    small.height = rows;
    const image = new ImageData(columns, rows);
    const out = new Uint32Array(image.data.buffer);
    for (let i = 0; i < count; i++) out[i] = data.words[owners[view.first + i]];
    small.getContext("2d").putImageData(image, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(small, 0, 0, columns * cell, rows * cell);
    if (cell >= 6) gridLines(ctx, rows, columns, cell);
    for (let i = 0; i < count; i++) if (marks[view.first + i]) outline(ctx, i, marks[view.first + i]);
    const chosen = selectedFrame();
    if (chosen >= view.first && chosen < view.end) outline(ctx, chosen - view.first, 4 | marks[chosen]);
    return ctx;
  }

  function gridLines(ctx, rows, columns, cell) {
    ctx.strokeStyle = "rgba(0,0,0,0.08)";
    ctx.lineWidth = 1;
    for (let r = 0; r <= rows; r++) { ctx.beginPath(); ctx.moveTo(0, r * cell); ctx.lineTo(columns * cell, r * cell); ctx.stroke(); }
  }

  // Red: an error; blue: changed owner; black around it: the frame selected.
  function outline(ctx, i, mark) {
    const { columns, cell } = view;
    const x = (i % columns) * cell, y = Math.floor(i / columns) * cell;
    const width = Math.max(2, cell / 4);
    ctx.lineWidth = width;
    if (mark & 4) {
      ctx.strokeStyle = "#111827";
      ctx.strokeRect(x - width / 2, y - width / 2, cell + width, cell + width);
    }
    if (mark & 3) {
      ctx.strokeStyle = mark & 1 ? "#dc2626" : "#2563eb";
      ctx.strokeRect(x + width / 2, y + width / 2, cell - width, cell - width);
    }
  }

  function hex(frame) { return "0x" + (frame * 4096).toString(16); }

  function describe(total, count, ctx) {
    const s = model.get("summary");
    note.textContent = `${s.frames.toLocaleString()} frames; ${s.errors} errors` +
      (model.get("source") === "diff" ? `; ${s.changed} changed owner` : "") + `; direct map at ${s.direct_map}`;
    range.textContent = `paddr ${hex(view.first)} to ${hex(view.end)}, ${count.toLocaleString()} frames: ` +
      (view.strip ? `a strip, ${view.perPixel.toFixed(1)} frames a pixel column (click or drag to zoom in)`
        : `${view.columns} frames to a row (click a frame)`);
    whole.style.display = count < total ? "" : "none";
    refresh.style.display = model.get("source") === "machine" ? "" : "none";
    legend.replaceChildren(...model.get("legend").map(([, label, colour, frames]) =>
      h("span", {}, h("i", { style: `background: ${colour}` }), `${label} (${frames.toLocaleString()})`)));
    Object.assign(root.dataset, { frames: String(total), errors: String(s.errors), shape: view.strip ? "strip" : "grid",
      first: String(view.first), end: String(view.end), columns: String(view.columns), cell: String(view.cell) });
    root.dataset.drawn = String((Number(root.dataset.drawn) || 0) + 1);
    showSelected();
    error.textContent = model.get("error");
    record("frame_map", model.get("seq"), Date.now() / 1000).drawn = Date.now();
    performance.mark("workbench frame_map drawn");
    return ctx;
  }

  function selectedFrame() {
    const f = model.get("selected");
    return f && f.paddr ? Math.floor(parseInt(f.paddr, 16) / 4096) : -1;
  }

  function showSelected() {
    const f = model.get("selected");
    if (!f || !f.paddr) {
      details.textContent = (model.get("summary").error_lines || []).map((line) => `ERROR: ${line}`).join("\n")
        || "Click a frame.";
      return;
    }
    details.textContent = [`frame ${f.paddr}: ${f.owner} (${f.region})` + (f.table_root ? `, reached from ${f.table_root}` : ""),
      ...(f.mappings.length ? f.mappings.map((m) => `  mapped at ${m}`) : ["  not mapped"]),
      `  first bytes: ${f.bytes}`, ...f.errors.map((e) => `ERROR: ${e}`)].join("\n");
  }

  function canvasPoint(event) {
    const rect = canvas.getBoundingClientRect();
    const scale = canvas.width / rect.width;
    return { x: (event.clientX - rect.left) * scale, y: (event.clientY - rect.top) * scale };
  }

  function stripFrame(x) { return view.first + Math.floor(Math.max(0, x) * view.perPixel); }

  function gridClick(point) {
    const column = Math.floor(point.x / view.cell), row = Math.floor(point.y / view.cell);
    const frame = view.first + row * view.columns + column;
    if (column < view.columns && frame < view.end) model.send({ kind: "open", frame });
  }

  canvas.addEventListener("pointerdown", (event) => {
    if (view.strip) drag = canvasPoint(event).x;
  });
  canvas.addEventListener("pointerup", (event) => {
    const point = canvasPoint(event);
    if (!view.strip) { gridClick(point); return; }
    if (drag === null) return;
    const [low, high] = [Math.min(drag, point.x), Math.max(drag, point.x)];
    drag = null;
    if (high - low >= 3) { zoom(stripFrame(low), stripFrame(high)); return; }
    const span = Math.max(1, Math.floor((view.end - view.first) / 8)), at = stripFrame(point.x);
    zoom(Math.max(view.first, at - Math.floor(span / 2)), Math.max(view.first, at - Math.floor(span / 2)) + span);
  });
  // One redraw for each message, however many traits it changed.
  const changed = () => { data = read(); draw(); };
  model.on("change", changed);
  draw();
  return () => model.off("change", changed);
}

export default { render };
