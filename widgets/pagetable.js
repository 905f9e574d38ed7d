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

function typing(input, onEnter) {
  input.addEventListener("keydown", (event) => {
    event.stopPropagation(); // JupyterLab's notebook shortcuts stay out of our inputs
    if (event.key === "Enter") onEnter();
  });
  return input;
}

function render({ model, el }) {
  const tables = new Map(); // path -> {entries, hidden}; the top table lives in the traits
  const pending = new Set(); // paths asked for and not yet arrived
  let frame = 0;

  const title = h("span", { class: "wb-title" });
  const label = h("span", { class: "wb-note" });
  const live = h("input", { type: "checkbox" });
  const liveLabel = h("label", { title: "refresh while the guest runs, at most 10 times a second" }, live, "live");
  const refresh = h("button", { onclick: () => model.send({ kind: "refresh" }) }, "Refresh");
  const filter = h("select", { class: "wb-filter" }, ...FILTERS.map(([value, text]) => h("option", { value }, text)));
  const from = h("input", { type: "text", class: "wb-from", size: "19", placeholder: "from vaddr" });
  const to = h("input", { type: "text", class: "wb-to", size: "19", placeholder: "to vaddr (excl.)" });
  const jumpTo = h("input", { type: "text", class: "wb-jump", size: "22", placeholder: "vaddr or symbol" });
  const applyRange = () => {
    model.send({ kind: "set", name: "range_start", value: from.value.trim() });
    model.send({ kind: "set", name: "range_end", value: to.value.trim() });
  };
  const jump = () => model.send({ kind: "jump", vaddr: jumpTo.value.trim() });
  typing(from, applyRange);
  typing(to, applyRange);
  typing(jumpTo, jump);
  filter.addEventListener("change", () => model.send({ kind: "set", name: "permission_filter", value: filter.value }));
  live.addEventListener("change", () => model.send({ kind: "set", name: "live", value: live.checked }));
  const clear = h("button", {
    onclick: () => {
      for (const name of ["permission_filter", "range_start", "range_end"]) model.send({ kind: "set", name, value: "" });
    },
  }, "Clear");

  const note = h("div", { class: "wb-note" });
  const error = h("div", { class: "wb-error" });
  const tree = h("div", { class: "wb-tree", style: "position: relative" });
  const details = h("div", { class: "wb-details" });
  const root = h("div", { class: "wb wb-explorer", "data-lm-suppress-shortcuts": "true" },
    h("div", { class: "wb-toolbar" }, title, label, h("span", { class: "wb-spacer" }), liveLabel, refresh),
    h("div", { class: "wb-toolbar" },
      h("label", {}, "show", filter), h("label", {}, "range", from, "–", to),
      h("button", { onclick: applyRange }, "Apply"), clear,
      h("span", { class: "wb-spacer" }),
      h("label", {}, "jump to", jumpTo), h("button", { onclick: jump }, "Go")),
    note, error,
    h("div", { class: "wb-explorer-body" }, tree, details));
  el.append(root);

  // The tree is drawn incrementally: each open table has one container element, filled from
  // one HTML string when its entries change; opening, closing, selecting and highlighting touch
  // only the rows concerned. Clicks are handled once, on the tree.
  const boxes = new Map([["", tree]]); // table id -> its container ("" is the top table)
  const rowsOf = new Map(); // table id -> ids of its rows
  const rowEls = new Map(); // entry id -> row element
  let openNow = new Set();
  let changedNow = new Set();
  let selectedNow = "";

  function escape(text) {
    return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  }

  function rowHtml(entry) {
    const opens = entry.kind === "table" && entry.children !== null;
    const parts = [
      `<span class="wb-twisty">${opens ? (openNow.has(entry.id) ? "▾" : "▸") : ""}</span>`,
      `<span class="wb-level">${entry.level}[${entry.index}]</span>`,
      `<span class="wb-vaddr" title="${escape(entry.vaddr)} – ${escape(entry.last)}">${escape(entry.vaddr)}</span>`,
      `<span>${entry.flags.map((f) => `<span class="wb-flag wb-flag-${escape(f)}">${escape(f)}</span>`).join("")}</span>`,
    ];
    if (entry.kind === "page") {
      const rights = escape(entry.rights);
      parts.push(`<span class="wb-perm wb-perm-${rights.slice(1)}">${rights}</span>`);
      parts.push(`<span class="${entry.huge ? "wb-huge" : "wb-note"}">${escape(entry.page_size)} page</span>`);
      parts.push(`<span class="wb-target">→ frame ${shortHex(escape(entry.target))}</span>`);
      if (rights.slice(1) === "rwx") parts.push('<span class="wb-warn">W+X</span>');
    } else {
      const count = entry.children === null ? "" : ` (${entry.children} present)`;
      parts.push(`<span class="wb-target">→ ${BELOW[entry.level]} ${shortHex(escape(entry.target))}${count}</span>`);
      if (entry.kind !== "table") parts.push(`<span class="wb-warn">${escape(entry.kind)}</span>`);  // device memory, or none
    }
    if (entry.recursive) parts.push('<span class="wb-warn" title="points back to a table on its own path">↺ recursive</span>');
    if (entry.reserved) parts.push('<span class="wb-warn">⚠ reserved bits set</span>');
    const classes = ["wb-row"];
    if (changedNow.has(entry.id)) classes.push("wb-changed");
    if (selectedNow === entry.id) classes.push("wb-selected");
    return `<div class="${classes.join(" ")}" data-id="${escape(entry.id)}" data-kind="${escape(entry.kind)}"` +
      `${opens ? ' data-opens="1"' : ""}>${parts.join("")}</div>`;
  }

  function loaded(id) {
    return id === "" ? { entries: model.get("root_entries"), hidden: model.get("root_hidden") } : tables.get(id);
  }

  function forget(id) {
    for (const child of rowsOf.get(id) ?? []) rowEls.delete(child);
    rowsOf.delete(id);
  }

  // A table is drawn whole, in one frame: its rows are one HTML string, parsed once, and rows
  // out of sight cost no layout (content-visibility in the CSS), so even 512 rows take a few
  // milliseconds. Open tables below it are put back after their rows.
  function fill(id) {
    const box = boxes.get(id);
    const data = loaded(id);
    if (!box) return;
    forget(id);
    if (!data) {
      rowsOf.set(id, []);
      box.innerHTML = '<div class="wb-loading">reading the table…</div>';
      return;
    }
    const { entries, hidden } = data;
    const some = `${hidden} ${hidden === 1 ? "entry" : "entries"}`;
    let note = "";
    if (hidden && !entries.length) note = `Nothing here matches the filters (${some} hidden).`;
    else if (hidden) note = `${some} hidden by the filters`;
    else if (!entries.length) note = "no present entries";
    box.innerHTML = entries.map(rowHtml).join("") + (note ? `<div class="wb-hidden-note">${escape(note)}</div>` : "");
    const ids = [];
    for (const el of box.children) {
      if (!el.dataset.id) continue;
      rowEls.set(el.dataset.id, el);
      ids.push(el.dataset.id);
    }
    rowsOf.set(id, ids);
    for (const child of ids) if (openNow.has(child)) attach(child);
    root.dataset.rows = String(rowEls.size);
  }

  function attach(id) {
    const row = rowEls.get(id);
    if (!row || row.dataset.opens !== "1") return;
    let box = boxes.get(id);
    if (!box) {
      box = h("div", { class: "wb-children", dataset: { table: id } });
      boxes.set(id, box);
      fill(id);
    }
    row.after(box);
  }

  function detach(id) {
    for (const key of [...boxes.keys()]) {
      if (key === id || key.startsWith(`${id}/`)) {
        boxes.get(key).remove();
        boxes.delete(key);
        forget(key);
      }
    }
  }

  function twisty(id) {
    const row = rowEls.get(id);
    if (row && row.dataset.opens === "1") row.firstChild.textContent = openNow.has(id) ? "▾" : "▸";
  }

  function syncOpen() {
    const wanted = new Set([...model.get("expanded"), ...pending]);
    const before = openNow;
    openNow = wanted;
    for (const id of before) if (!wanted.has(id)) { detach(id); twisty(id); }
    for (const id of [...wanted].sort((a, b) => a.split("/").length - b.split("/").length)) {
      if (!before.has(id)) { attach(id); twisty(id); }
    }
  }

  function syncMarks() {
    const changed = new Set(model.get("changed"));
    for (const id of changedNow) if (!changed.has(id)) rowEls.get(id)?.classList.remove("wb-changed");
    for (const id of changed) rowEls.get(id)?.classList.add("wb-changed");
    changedNow = changed;
    const selected = model.get("selected");
    if (selected !== selectedNow) rowEls.get(selectedNow)?.classList.remove("wb-selected");
    rowEls.get(selected)?.classList.add("wb-selected");
    selectedNow = selected;
  }

  tree.addEventListener("click", (event) => {
    const row = event.target.closest(".wb-row");
    if (!row) return;
    if (event.target.closest(".wb-twisty")) toggle(row);
    else model.send({ kind: "select", id: row.dataset.id });
  });
  tree.addEventListener("dblclick", (event) => {
    const row = event.target.closest(".wb-row");
    if (row && !event.target.closest(".wb-twisty")) toggle(row);
  });
  function toggle(row) {
    const id = row.dataset.id;
    if (row.dataset.opens !== "1") return;
    if (openNow.has(id)) {
      pending.delete(id);
      model.send({ kind: "collapse", id });
    } else {
      pending.add(id);
      model.send({ kind: "expand", id });
      syncOpen(); // show "reading the table…" at once
    }
  }

  function drawTree(dirty) {
    for (const id of model.get("expanded")) pending.delete(id);
    if (dirty.has("")) fill("");
    for (const id of dirty) if (id !== "" && boxes.has(id)) fill(id);
    syncOpen();
    syncMarks();
    root.dataset.rows = String(rowEls.size);
  }

  function drawDetails() {
    const d = model.get("details");
    if (!d || !d.id) { details.replaceChildren(); return; }
    const bits = h("div", { class: "wb-bitgrid", title: "the entry's 64 bits, bit 63 first" },
      ...[0, 16, 32, 48].map((first) => h("div", { class: "wb-bitrow" },
        h("b", {}, `${63 - first}–${48 - first}`),
        ...Array.from(d.bits.slice(first, first + 16), (bit, i) => h("span", {
          class: bit === "1" ? "wb-one" : "", title: `bit ${63 - first - i}`,
        }, bit)))));
    const kv = [
      ["entry", d.entry], ["maps vaddrs", `${d.vaddr} – ${d.last} (${d.span})`],
      ["table at", d.table_paddr], ["entry at", d.entry_paddr], ["points to", d.target],
      [d.page ? "effective rights" : "rights so far", d.rights],
    ];
    if (d.symbol) kv.push(["symbol", d.symbol]);
    if (d.reserved_bits) kv.push(["reserved bits set", d.reserved_bits]);
    const fields = h("div", { class: "wb-bits" },
      ...d.fields.flatMap((f) => {
        const on = f.value !== "0" && !f.name.startsWith("ignored");
        return [h("div", { class: "wb-mono" }, f.bits), h("div", { class: on ? "wb-on" : "" }, `${f.name} = ${f.value}`),
          h("div", { class: "wb-note" }, f.meaning)];
      }));
    details.replaceChildren(
      h("div", { class: "wb-title" }, d.title),
      h("div", { class: "wb-kv" }, ...kv.flatMap(([k, v]) => [h("div", {}, k), h("div", { class: "wb-mono" }, v)])),
      bits, fields);
  }

  function drawBars() {
    title.textContent = "Page tables";
    const r = model.get("root");
    label.textContent = [model.get("mode").replace(/CR3=0x0*/, "CR3=0x"), `${model.get("pages")} pages`,
      r && r.level ? `${r.level} at ${shortHex(r.table_paddr)}` : "", model.get("snapshot_label")]
      .filter(Boolean).join(" · ");
    const fromMachine = model.get("source") === "machine";
    liveLabel.style.display = fromMachine ? "" : "none";
    refresh.style.display = fromMachine ? "" : "none";
    live.checked = model.get("live");
    filter.value = model.get("permission_filter");
    if (document.activeElement !== from) from.value = model.get("range_start");
    if (document.activeElement !== to) to.value = model.get("range_end");
    note.textContent = model.get("note");
    error.textContent = model.get("error");
  }

  let dirty = new Set([""]);
  let detailsDirty = true;
  function draw() {
    frame = 0;
    const started = performance.now();
    drawBars();
    const tablesToFill = dirty;
    dirty = new Set();
    drawTree(tablesToFill);
    if (detailsDirty) drawDetails();
    detailsDirty = false;
    const stats = (globalThis.__workbench ??= { updates: [] });
    (stats.draws ??= []).push({ view: "pagetable", at: started, ms: performance.now() - started });
    if (stats.draws.length > 1000) stats.draws.splice(0, stats.draws.length - 1000);
  }
  function schedule() {
    if (!frame) frame = requestAnimationFrame(draw);
  }

  function scrollToFocus(id) {
    if (!id) return;
    requestAnimationFrame(() => {
      const target = tree.querySelector(`.wb-row[data-id="${id}"]`);
      if (target) tree.scrollTop = Math.max(0, target.offsetTop - tree.clientHeight / 2);
    });
  }

  function onMessage(message) {
    if (message.kind === "focus") {
      schedule();
      scrollToFocus(message.id);
      return;
    }
    if (message.kind !== "tables") return;
    const entry = message.seq != null ? record("pagetable", message.seq, message.t) : null;
    for (const [id, table] of Object.entries(message.tables)) {
      tables.set(id, table);
      dirty.add(id);
    }
    if (message.seq == null) {
      // The answer to a click (an expansion, a jump): draw it now, in the frame being made,
      // rather than one frame later. Live refreshes (numbered) wait for the next frame.
      if (frame) cancelAnimationFrame(frame);
      draw();
    } else schedule();
    if (message.seq != null) {
      requestAnimationFrame(() => {
        if (entry) entry.drawn = Date.now();
        model.send({ kind: "ack", seq: message.seq });
      });
    }
  }
  function onSeq() {
    const seq = model.get("seq");
    requestAnimationFrame(() => model.send({ kind: "ack", seq }));
  }

  const onRoot = () => { dirty.add(""); schedule(); };
  const onDetails = () => { detailsDirty = true; schedule(); };
  const traits = ["expanded", "changed", "selected", "mode", "root", "snapshot_label", "pages", "source", "live",
    "permission_filter", "range_start", "range_end", "note", "error"];
  for (const name of traits) model.on(`change:${name}`, schedule);
  model.on("change:root_entries", onRoot);
  model.on("change:root_hidden", onRoot);
  model.on("change:details", onDetails);
  model.on("change:seq", onSeq);
  model.on("msg:custom", onMessage);
  draw();
  model.send({ kind: "hello" });

  return () => {
    if (frame) cancelAnimationFrame(frame);
    for (const name of traits) model.off(`change:${name}`, schedule);
    model.off("change:root_entries", onRoot);
    model.off("change:root_hidden", onRoot);
    model.off("change:details", onDetails);
    model.off("change:seq", onSeq);
    model.off("msg:custom", onMessage);
  };
}

export default { render };
