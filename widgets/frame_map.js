// The physical-memory map: one cell per 4 KiB frame, coloured by owner (Python computes the
// owners: workbench/views/frame_map.py). Small guests: 64 cells to a row; large ones: 512 to a
// row of small cells. Red outline: an error; blue: changed owner (a diff). Click a cell for
// its owner, every vaddr that maps it, its errors and first bytes.

function unpack(text) {
  const raw = atob(text || "");
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

function render({ model, el }) {
  const canvas = h("canvas", { class: "wb-frame-canvas" });
  const note = h("div", { class: "wb-note" });
  const legend = h("div", { class: "wb-legend" });
  const details = h("pre", { class: "wb-frame-details" });
  const refresh = h("button", { onclick: () => model.send({ kind: "refresh" }) }, "Refresh");
  const error = h("div", { class: "wb-error" });
  el.append(h("div", { class: "wb-view wb-frame-map" }, h("div", {}, refresh, note), canvas, legend, details, error));
  let cell = 1;

  function draw() {
    const owners = unpack(model.get("owners"));
    const marks = unpack(model.get("marks"));
    const columns = model.get("columns");
    const colours = {};
    for (const [value, , colour] of model.get("legend")) colours[value] = colour;
    const width = Math.max(el.clientWidth || 800, 400) - 8;
    cell = Math.max(1, Math.floor(width / columns));
    const rows = Math.ceil(owners.length / columns);
    canvas.width = columns * cell;
    canvas.height = rows * cell;
    const ctx = canvas.getContext("2d");
    for (let i = 0; i < owners.length; i++) {
      const x = (i % columns) * cell, y = Math.floor(i / columns) * cell;
      ctx.fillStyle = colours[owners[i]] ?? "#fff";
      ctx.fillRect(x, y, cell, cell);
      if (marks[i]) {
        ctx.strokeStyle = marks[i] & 1 ? "#dc2626" : "#2563eb";
        ctx.lineWidth = Math.max(1, cell / 6);
        ctx.strokeRect(x + 0.5, y + 0.5, Math.max(cell - 1, 1), Math.max(cell - 1, 1));
      }
    }
    if (cell >= 6) {
      ctx.strokeStyle = "rgba(0,0,0,0.08)";
      for (let r = 0; r <= rows; r++) { ctx.beginPath(); ctx.moveTo(0, r * cell); ctx.lineTo(canvas.width, r * cell); ctx.stroke(); }
    }
    const s = model.get("summary");
    note.textContent = ` ${s.frames.toLocaleString()} frames, ${columns} to a row; ${s.errors} errors` +
      (model.get("source") === "diff" ? `; ${s.changed} changed owner` : "") + `; direct map at ${s.direct_map}`;
    refresh.style.display = model.get("source") === "machine" ? "" : "none";
    legend.replaceChildren(...model.get("legend").map(([, label, colour, count]) =>
      h("span", {}, h("i", { style: `background: ${colour}` }), `${label} (${count.toLocaleString()})`)));
    showSelected();
    error.textContent = model.get("error");
    const entry = record("frame_map", model.get("seq"), Date.now() / 1000);
    entry.drawn = Date.now();
  }

  function showSelected() {
    const f = model.get("selected");
    if (!f || !f.paddr) {
      details.textContent = (model.get("summary").error_lines || []).join("\n") || "Click a frame.";
      return;
    }
    details.textContent = [`frame ${f.paddr}: ${f.owner} (${f.region})` + (f.table_root ? `, reached from ${f.table_root}` : ""),
      ...(f.mappings.length ? f.mappings.map((m) => `  mapped at ${m}`) : ["  not mapped"]),
      `  first bytes: ${f.bytes}`, ...f.errors.map((e) => `ERROR: ${e}`)].join("\n");
  }

  canvas.addEventListener("click", (event) => {
    const rect = canvas.getBoundingClientRect();
    const scale = canvas.width / rect.width;
    const column = Math.floor(((event.clientX - rect.left) * scale) / cell);
    const row = Math.floor(((event.clientY - rect.top) * scale) / cell);
    const frame = row * model.get("columns") + column;
    if (column < model.get("columns") && frame < unpack(model.get("owners")).length) model.send({ kind: "open", frame });
  });
  const handlers = [["change:owners", draw], ["change:marks", draw], ["change:selected", showSelected],
    ["change:error", draw]];
  for (const [event, handler] of handlers) model.on(event, handler);
  draw();
  return () => { for (const [event, handler] of handlers) model.off(event, handler); };
}

export default { render };
