// The page-table explorer: a tree from the top table down to the pages, opened lazily.
// Python (workbench/views/pagetable.py) owns the state: the top table's entries come as a trait,
// deeper tables arrive as {kind: "tables"} messages after an {kind: "expand"} request. Entry
// ids are paths of indexes ("511/510/3"); every address is a hex string, never a JS number.

const BELOW = { PML5: "PML4", PML4: "PDPT", PDPT: "PD", PD: "PT" };
const FILTERS = [
  ["", "all entries"],
  ["writable", "writable pages"],
  ["executable", "executable pages"],
  ["user", "user pages"],
  ["w+x", "writable and executable (W+X)"],
];
// Traits that only change the bars and marks; the tables and details have their own.
const TRAITS = ["expanded", "changed", "selected", "mode", "root", "snapshot_label", "pages", "source", "live",
  "permission_filter", "range_start", "range_end", "note", "error", "cpu_tables"];

// Which CPUs' CR3 point at the table shown, and where the others' point: one line.
function cpuTablesText(rows) {
  const shown = rows.filter((row) => row.shown).map((row) => row.cpu);
  const parts = shown.length ? [`CR3 of cpu ${shown.join(", ")}: this table`] : [];
  for (const row of rows.filter((r) => !r.shown)) parts.push(`cpu ${row.cpu}: the table at ${row.table_paddr}`);
  return parts.join("; ");
}

function typing(input, onEnter) {
  input.addEventListener("keydown", (event) => {
    event.stopPropagation(); // JupyterLab's notebook shortcuts stay out of our inputs
    if (event.key === "Enter") onEnter();
  });
  return input;
}

function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

// The toolbars' controls, wired to send what the student sets.
function makeControls(model) {
  const c = {
    title: h("span", { class: "wb-title" }),
    label: h("span", { class: "wb-note" }),
    live: h("input", { type: "checkbox" }),
    refresh: h("button", { onclick: () => model.send({ kind: "refresh" }) }, "Refresh"),
    filter: h("select", { class: "wb-filter" }, ...FILTERS.map(([value, text]) => h("option", { value }, text))),
    from: h("input", { type: "text", class: "wb-from", size: "19", placeholder: "from vaddr" }),
    to: h("input", { type: "text", class: "wb-to", size: "19", placeholder: "to vaddr (excl.)" }),
    jumpTo: h("input", { type: "text", class: "wb-jump", size: "22", placeholder: "vaddr or symbol" }),
  };
  c.liveLabel = h("label", { title: "refresh while the guest runs, at most 10 times a second" }, c.live, "live");
  c.applyRange = () => {
    model.send({ kind: "set", name: "range_start", value: c.from.value.trim() });
    model.send({ kind: "set", name: "range_end", value: c.to.value.trim() });
  };
  c.jump = () => model.send({ kind: "jump", vaddr: c.jumpTo.value.trim() });
  typing(c.from, c.applyRange);
  typing(c.to, c.applyRange);
  typing(c.jumpTo, c.jump);
  c.filter.addEventListener("change", () => model.send({ kind: "set", name: "permission_filter", value: c.filter.value }));
  c.live.addEventListener("change", () => model.send({ kind: "set", name: "live", value: c.live.checked }));
  c.clear = h("button", {
    onclick: () => {
      for (const name of ["permission_filter", "range_start", "range_end"]) model.send({ kind: "set", name, value: "" });
    },
  }, "Clear");
  return c;
}

function toolbars(c) {
  return [
    h("div", { class: "wb-toolbar" }, c.title, c.label, h("span", { class: "wb-spacer" }), c.liveLabel, c.refresh),
    h("div", { class: "wb-toolbar" },
      h("label", {}, "show", c.filter), h("label", {}, "range", c.from, "–", c.to),
      h("button", { onclick: c.applyRange }, "Apply"), c.clear,
      h("span", { class: "wb-spacer" }),
      h("label", {}, "jump to", c.jumpTo), h("button", { onclick: c.jump }, "Go")),
  ];
}

// One row of the tree as HTML; `marks` says whether it is open, changed, selected.
function rowHtml(entry, marks) {
  const opens = entry.kind === "table" && entry.children !== null;
  const parts = [
    `<span class="wb-twisty">${opens ? (marks.open ? "▾" : "▸") : ""}</span>`,
    `<span class="wb-level">${entry.level}[${entry.index}]</span>`,
    `<span class="wb-vaddr" title="${escape(entry.vaddr)} – ${escape(entry.last)}">${escape(entry.vaddr)}</span>`,
    `<span>${entry.flags.map((f) => `<span class="wb-flag wb-flag-${escape(f)}">${escape(f)}</span>`).join("")}</span>`,
    ...(entry.kind === "page" ? pageParts(entry) : tableParts(entry)),
  ];
  if (entry.cpus && entry.cpus.length) parts.push(`<span class="wb-cpu-tables" title="the top table of these CPUs' CR3">CR3 of cpu ${entry.cpus.join(", ")}</span>`);
  if (entry.recursive) parts.push('<span class="wb-warn" title="points back to a table on its own path">↺ recursive</span>');
  if (entry.reserved) parts.push('<span class="wb-warn">⚠ reserved bits set</span>');
  const classes = ["wb-row"];
  if (marks.changed) classes.push("wb-changed");
  if (marks.selected) classes.push("wb-selected");
  return `<div class="${classes.join(" ")}" data-id="${escape(entry.id)}" data-kind="${escape(entry.kind)}"` +
    `${opens ? ' data-opens="1"' : ""}>${parts.join("")}</div>`;
}

function pageParts(entry) {
  const rights = escape(entry.rights);
  const parts = [
    `<span class="wb-perm wb-perm-${rights.slice(1)}">${rights}</span>`,
    `<span class="${entry.huge ? "wb-huge" : "wb-note"}">${escape(entry.page_size)} page</span>`,
    `<span class="wb-target">→ frame ${shortHex(escape(entry.target))}</span>`,
  ];
  if (rights.slice(1) === "rwx") parts.push('<span class="wb-warn">W+X</span>');
  return parts;
}

function tableParts(entry) {
  const count = entry.children === null ? "" : ` (${entry.children} present)`;
  const parts = [`<span class="wb-target">→ ${BELOW[entry.level]} ${shortHex(escape(entry.target))}${count}</span>`];
  if (entry.kind !== "table") parts.push(`<span class="wb-warn">${escape(entry.kind)}</span>`);  // device memory, or none
  return parts;
}

// What a table's box says under its rows: what the filters hide, or that it is empty.
function hiddenNote(entries, hidden) {
  const some = `${hidden} ${hidden === 1 ? "entry" : "entries"}`;
  let note = "";
  if (hidden && !entries.length) note = `Nothing here matches the filters (${some} hidden).`;
  else if (hidden) note = `${some} hidden by the filters`;
  else if (!entries.length) note = "no present entries";
  return note ? `<div class="wb-hidden-note">${escape(note)}</div>` : "";
}

// The selected entry: its 64 bits, where it is and what it maps, and its fields.
function detailsParts(d) {
  const kv = [
    ["entry", d.entry], ["maps vaddrs", `${d.vaddr} – ${d.last} (${d.span})`],
    ["table at", d.table_paddr], ["entry at", d.entry_paddr], ["points to", d.target],
    [d.page ? "effective rights" : "rights so far", d.rights],
  ];
  if (d.symbol) kv.push(["symbol", d.symbol]);
  if (d.reserved_bits) kv.push(["reserved bits set", d.reserved_bits]);
  return [
    h("div", { class: "wb-title" }, d.title),
    h("div", { class: "wb-kv" }, ...kv.flatMap(([k, v]) => [h("div", {}, k), h("div", { class: "wb-mono" }, v)])),
    bitGrid(d.bits), fieldList(d.fields),
  ];
}

function bitGrid(bits) {
  return h("div", { class: "wb-bitgrid", title: "the entry's 64 bits, bit 63 first" },
    ...[0, 16, 32, 48].map((first) => h("div", { class: "wb-bitrow" },
      h("b", {}, `${63 - first}–${48 - first}`),
      ...Array.from(bits.slice(first, first + 16), (bit, i) => h("span", {
        class: bit === "1" ? "wb-one" : "", title: `bit ${63 - first - i}`,
      }, bit)))));
}

function fieldList(fields) {
  return h("div", { class: "wb-bits" },
    ...fields.flatMap((f) => {
      const on = f.value !== "0" && !f.name.startsWith("ignored");
      return [h("div", { class: "wb-mono" }, f.bits), h("div", { class: on ? "wb-on" : "" }, `${f.name} = ${f.value}`),
        h("div", { class: "wb-note" }, f.meaning)];
    }));
}

function recordDraw(started) {
  const stats = (globalThis.__workbench ??= { updates: [] });
  (stats.draws ??= []).push({ view: "pagetable", at: started, ms: performance.now() - started });
  if (stats.draws.length > 1000) stats.draws.splice(0, stats.draws.length - 1000);
}

// The tree is drawn incrementally: each open table has one container element, filled from one
// HTML string when its entries change; opening, closing, selecting and highlighting touch only
// the rows concerned. Clicks are handled once, on the tree.
class Explorer {
  constructor(model, el) {
    this.model = model;
    this.tables = new Map(); // path -> {entries, hidden}; the top table lives in the traits
    this.pending = new Set(); // paths asked for and not yet arrived
    this.frame = 0;
    this.dirty = new Set([""]); // tables to fill at the next draw
    this.detailsDirty = true;
    this.controls = makeControls(model);
    this.note = h("div", { class: "wb-note" });
    this.cpus = h("div", { class: "wb-cpu-tables" });
    this.error = h("div", { class: "wb-error" });
    this.tree = h("div", { class: "wb-tree", style: "position: relative" });
    this.details = h("div", { class: "wb-details" });
    this.root = h("div", { class: "wb wb-explorer", "data-lm-suppress-shortcuts": "true" },
      ...toolbars(this.controls), this.cpus, this.note, this.error, h("div", { class: "wb-explorer-body" }, this.tree, this.details));
    el.append(this.root);
    this.boxes = new Map([["", this.tree]]); // table id -> its container ("" is the top table)
    this.rowsOf = new Map(); // table id -> ids of its rows
    this.rowEls = new Map(); // entry id -> row element
    this.openNow = new Set();
    this.changedNow = new Set();
    this.selectedNow = "";
    this.listenToClicks();
  }

  loaded(id) {
    const model = this.model;
    return id === "" ? { entries: model.get("root_entries"), hidden: model.get("root_hidden") } : this.tables.get(id);
  }

  forget(id) {
    for (const child of this.rowsOf.get(id) ?? []) this.rowEls.delete(child);
    this.rowsOf.delete(id);
  }

  // A table is drawn whole, in one frame: its rows are one HTML string, parsed once, and rows
  // out of sight cost no layout (content-visibility in the CSS), so even 512 rows take a few
  // milliseconds. Open tables below it are put back after their rows.
  fill(id) {
    const box = this.boxes.get(id);
    const data = this.loaded(id);
    if (!box) return;
    this.forget(id);
    if (!data) {
      this.rowsOf.set(id, []);
      box.innerHTML = '<div class="wb-loading">reading the table…</div>';
      return;
    }
    const { entries, hidden } = data;
    const marks = (entry) => ({ open: this.openNow.has(entry.id), changed: this.changedNow.has(entry.id),
      selected: this.selectedNow === entry.id });
    box.innerHTML = entries.map((entry) => rowHtml(entry, marks(entry))).join("") + hiddenNote(entries, hidden);
    const ids = [];
    for (const el of box.children) {
      if (!el.dataset.id) continue;
      this.rowEls.set(el.dataset.id, el);
      ids.push(el.dataset.id);
    }
    this.rowsOf.set(id, ids);
    for (const child of ids) if (this.openNow.has(child)) this.attach(child);
    this.root.dataset.rows = String(this.rowEls.size);
  }

  attach(id) {
    const row = this.rowEls.get(id);
    if (!row || row.dataset.opens !== "1") return;
    let box = this.boxes.get(id);
    if (!box) {
      box = h("div", { class: "wb-children", dataset: { table: id } });
      this.boxes.set(id, box);
      this.fill(id);
    }
    row.after(box);
  }

  detach(id) {
    for (const key of [...this.boxes.keys()]) {
      if (key === id || key.startsWith(`${id}/`)) {
        this.boxes.get(key).remove();
        this.boxes.delete(key);
        this.forget(key);
      }
    }
  }

  twisty(id) {
    const row = this.rowEls.get(id);
    if (row && row.dataset.opens === "1") row.firstChild.textContent = this.openNow.has(id) ? "▾" : "▸";
  }

  syncOpen() {
    const wanted = new Set([...this.model.get("expanded"), ...this.pending]);
    const before = this.openNow;
    this.openNow = wanted;
    for (const id of before) if (!wanted.has(id)) { this.detach(id); this.twisty(id); }
    for (const id of [...wanted].sort((a, b) => a.split("/").length - b.split("/").length)) {
      if (!before.has(id)) { this.attach(id); this.twisty(id); }
    }
  }

  syncMarks() {
    const changed = new Set(this.model.get("changed"));
    for (const id of this.changedNow) if (!changed.has(id)) this.rowEls.get(id)?.classList.remove("wb-changed");
    for (const id of changed) this.rowEls.get(id)?.classList.add("wb-changed");
    this.changedNow = changed;
    const selected = this.model.get("selected");
    if (selected !== this.selectedNow) this.rowEls.get(this.selectedNow)?.classList.remove("wb-selected");
    this.rowEls.get(selected)?.classList.add("wb-selected");
    this.selectedNow = selected;
  }

  listenToClicks() {
    this.tree.addEventListener("click", (event) => {
      const row = event.target.closest(".wb-row");
      if (!row) return;
      if (event.target.closest(".wb-twisty")) this.toggle(row);
      else this.model.send({ kind: "select", id: row.dataset.id });
    });
    this.tree.addEventListener("dblclick", (event) => {
      const row = event.target.closest(".wb-row");
      if (row && !event.target.closest(".wb-twisty")) this.toggle(row);
    });
  }

  toggle(row) {
    const id = row.dataset.id;
    if (row.dataset.opens !== "1") return;
    if (this.openNow.has(id)) {
      this.pending.delete(id);
      this.model.send({ kind: "collapse", id });
    } else {
      this.pending.add(id);
      this.model.send({ kind: "expand", id });
      this.syncOpen(); // show "reading the table…" at once
    }
  }

  drawTree(dirty) {
    for (const id of this.model.get("expanded")) this.pending.delete(id);
    if (dirty.has("")) this.fill("");
    for (const id of dirty) if (id !== "" && this.boxes.has(id)) this.fill(id);
    this.syncOpen();
    this.syncMarks();
    this.root.dataset.rows = String(this.rowEls.size);
  }

  drawDetails() {
    const d = this.model.get("details");
    if (!d || !d.id) { this.details.replaceChildren(); return; }
    this.details.replaceChildren(...detailsParts(d));
  }

  drawBars() {
    const { model, controls: c } = this;
    c.title.textContent = "Page tables";
    const r = model.get("root");
    c.label.textContent = [model.get("mode").replace(/CR3=0x0*/, "CR3=0x"), `${model.get("pages")} pages`,
      r && r.level ? `${r.level} at ${shortHex(r.table_paddr)}` : "", model.get("snapshot_label")]
      .filter(Boolean).join(" · ");
    const fromMachine = model.get("source") === "machine";
    c.liveLabel.style.display = fromMachine ? "" : "none";
    c.refresh.style.display = fromMachine ? "" : "none";
    c.live.checked = model.get("live");
    c.filter.value = model.get("permission_filter");
    if (document.activeElement !== c.from) c.from.value = model.get("range_start");
    if (document.activeElement !== c.to) c.to.value = model.get("range_end");
    this.note.textContent = model.get("note");
    this.cpus.textContent = cpuTablesText(model.get("cpu_tables") || []);
    this.error.textContent = model.get("error");
  }

  draw = () => {
    this.frame = 0;
    const started = performance.now();
    this.drawBars();
    const tablesToFill = this.dirty;
    this.dirty = new Set();
    this.drawTree(tablesToFill);
    if (this.detailsDirty) this.drawDetails();
    this.detailsDirty = false;
    recordDraw(started);
  };

  schedule = () => {
    if (!this.frame) this.frame = requestAnimationFrame(this.draw);
  };

  scrollToFocus(id) {
    if (!id) return;
    requestAnimationFrame(() => {
      const target = this.tree.querySelector(`.wb-row[data-id="${id}"]`);
      if (target) this.tree.scrollTop = Math.max(0, target.offsetTop - this.tree.clientHeight / 2);
    });
  }

  onMessage = (message) => {
    if (message.kind === "focus") {
      this.schedule();
      this.scrollToFocus(message.id);
      return;
    }
    if (message.kind === "tables") this.receiveTables(message);
  };

  receiveTables(message) {
    const entry = message.seq != null ? record("pagetable", message.seq, message.t) : null;
    for (const [id, table] of Object.entries(message.tables)) {
      this.tables.set(id, table);
      this.dirty.add(id);
    }
    if (message.seq == null) {
      // The answer to a click (an expansion, a jump): draw it now, in the frame being made,
      // rather than one frame later. Live refreshes (numbered) wait for the next frame.
      // The marks let benchmarks/views.py split a click's time.
      performance.mark("workbench pagetable answer");
      if (this.frame) cancelAnimationFrame(this.frame);
      this.draw();
      performance.mark("workbench pagetable drawn");
      return;
    }
    this.schedule();
    requestAnimationFrame(() => {
      if (entry) entry.drawn = Date.now();
      sendAck(this.model, message.seq);
    });
  }

  onSeq = () => {
    const seq = this.model.get("seq");
    requestAnimationFrame(() => sendAck(this.model, seq));
  };

  onRoot = () => { this.dirty.add(""); this.schedule(); };

  onDetails = () => { this.detailsDirty = true; this.schedule(); };

  // Listen to the model; returns what stops listening.
  connect() {
    const model = this.model;
    const handlers = [...TRAITS.map((name) => [`change:${name}`, this.schedule]),
      ["change:root_entries", this.onRoot], ["change:root_hidden", this.onRoot], ["change:details", this.onDetails],
      ["change:seq", this.onSeq], ["msg:custom", this.onMessage]];
    for (const [event, handler] of handlers) model.on(event, handler);
    this.draw();
    model.send({ kind: "hello" });
    return () => {
      if (this.frame) cancelAnimationFrame(this.frame);
      for (const [event, handler] of handlers) model.off(event, handler);
    };
  }
}

function render({ model, el }) {
  return new Explorer(model, el).connect();
}

export default { render };
