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

function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

function record(view, seq, sentSeconds) {
  const log = (globalThis.__workbench ??= { updates: [] }).updates;
  const entry = { view, seq, sent: sentSeconds * 1000, received: Date.now(), drawn: null };
  log.push(entry);
  if (log.length > 5000) log.splice(0, log.length - 5000);
  return entry;
}

function shortHex(hex) {
  // 0x0000000000120000 -> 0x120000 (a string operation: no 64-bit arithmetic in JS)
  const digits = hex.replace(/^0x0*/, "");
  return "0x" + (digits || "0");
}

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

  function row(entry, expanded, changed, selected) {
    const isTable = entry.kind === "table" && entry.children !== null;
    const open = expanded.has(entry.id);
    const twisty = h("span", { class: "wb-twisty" }, isTable ? (open ? "▾" : "▸") : "");
    const flags = entry.flags.map((flag) => h("span", { class: `wb-flag wb-flag-${flag}` }, flag));
    const parts = [
      twisty,
      h("span", { class: "wb-level" }, `${entry.level}[${entry.index}]`),
      h("span", { class: "wb-vaddr", title: `${entry.vaddr} – ${entry.last}` }, entry.vaddr),
      h("span", {}, ...flags),
    ];
    if (entry.kind === "page") {
      const rights = entry.rights.slice(1);
      const wx = rights === "rwx";
      parts.push(h("span", { class: `wb-perm wb-perm-${rights}` }, entry.rights));
      parts.push(entry.huge ? h("span", { class: "wb-huge" }, `${entry.page_size} page`)
        : h("span", { class: "wb-note" }, `${entry.page_size} page`));
      parts.push(h("span", { class: "wb-target" }, `→ frame ${shortHex(entry.target)}`));
      if (wx) parts.push(h("span", { class: "wb-warn" }, "W+X"));
    } else {
      const count = entry.children === null ? "" : ` (${entry.children} present)`;
      parts.push(h("span", { class: "wb-target" }, `→ ${BELOW[entry.level]} ${shortHex(entry.target)}${count}`));
      if (entry.kind !== "table") parts.push(h("span", { class: "wb-warn" }, "table outside RAM"));
    }
    if (entry.recursive) parts.push(h("span", { class: "wb-warn", title: "points back to a table on its own path" }, "↺ recursive"));
    if (entry.reserved) parts.push(h("span", { class: "wb-warn" }, "⚠ reserved bits set"));
    const classes = ["wb-row"];
    if (changed.has(entry.id)) classes.push("wb-changed");
    if (selected === entry.id) classes.push("wb-selected");
    const node = h("div", { class: classes.join(" "), dataset: { id: entry.id, kind: entry.kind } }, ...parts);
    twisty.addEventListener("click", (event) => {
      event.stopPropagation();
      if (!isTable) return;
      if (open) {
        model.send({ kind: "collapse", id: entry.id });
      } else {
        pending.add(entry.id);
        model.send({ kind: "expand", id: entry.id });
        schedule();
      }
    });
    node.addEventListener("click", () => model.send({ kind: "select", id: entry.id }));
    node.addEventListener("dblclick", () => twisty.click());
    return node;
  }

  function table(entries, hidden, expanded, changed, selected) {
    const out = [];
    for (const entry of entries) {
      out.push(row(entry, expanded, changed, selected));
      if ((expanded.has(entry.id) || pending.has(entry.id)) && entry.children !== null) {
        const loaded = tables.get(entry.id);
        const children = h("div", { class: "wb-children", dataset: { table: entry.id } });
        if (loaded && expanded.has(entry.id)) {
          children.append(...table(loaded.entries, loaded.hidden, expanded, changed, selected));
          if (!loaded.entries.length && !loaded.hidden) children.append(h("div", { class: "wb-hidden-note" }, "no present entries"));
        } else {
          children.append(h("div", { class: "wb-loading" }, "reading the table…"));
        }
        out.push(children);
      }
    }
    if (hidden && !entries.length) {
      out.push(h("div", { class: "wb-hidden-note" }, `Nothing here matches the filters (${hidden} ${hidden === 1 ? "entry" : "entries"} hidden).`));
    } else if (hidden) {
      out.push(h("div", { class: "wb-hidden-note" }, `${hidden} ${hidden === 1 ? "entry" : "entries"} hidden by the filters`));
    }
    return out;
  }

  function drawTree() {
    const expanded = new Set(model.get("expanded"));
    for (const id of pending) if (expanded.has(id) && tables.has(id)) pending.delete(id);
    const changed = new Set(model.get("changed"));
    const rows = table(model.get("root_entries"), model.get("root_hidden"), expanded, changed, model.get("selected"));
    if (!rows.length) rows.push(h("div", { class: "wb-hidden-note" }, "no present entries"));
    const top = tree.scrollTop;
    tree.replaceChildren(...rows);
    tree.scrollTop = top;
    root.dataset.rows = String(tree.querySelectorAll(".wb-row").length);
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

  function draw() {
    frame = 0;
    const started = performance.now();
    drawBars();
    drawTree();
    drawDetails();
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
    const stats = (globalThis.__workbench ??= { updates: [] });
    (stats.tables ??= []).push({ at: performance.now(), ids: Object.keys(message.tables) });
    const entry = message.seq != null ? record("pagetable", message.seq, message.t) : null;
    for (const [id, loaded] of Object.entries(message.tables)) tables.set(id, loaded);
    schedule();
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

  const traits = ["root_entries", "root_hidden", "expanded", "changed", "selected", "details", "mode", "root",
    "snapshot_label", "pages", "source", "live", "permission_filter", "range_start", "range_end", "note", "error"];
  for (const name of traits) model.on(`change:${name}`, schedule);
  model.on("change:seq", onSeq);
  model.on("msg:custom", onMessage);
  draw();
  model.send({ kind: "hello" });

  return () => {
    if (frame) cancelAnimationFrame(frame);
    for (const name of traits) model.off(`change:${name}`, schedule);
    model.off("change:seq", onSeq);
    model.off("msg:custom", onMessage);
  };
}

export default { render };
