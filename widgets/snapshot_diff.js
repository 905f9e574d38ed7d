// Two snapshots side by side: one row per page that differs, the earlier snapshot on the left.
// Added pages are green on the right, removed ones red on the left, and the fields that changed
// are marked. Python (workbench/views/snapshot_diff.py) computes the rows; addresses are hex
// strings, shortened here as text.

function render({ model, el }) {
  const counts = h("span", { class: "wb-note" });
  const hide = h("input", { type: "checkbox" });
  const body = h("div", { class: "wb-diff-body", style: "max-height: 24em; overflow: auto" });
  const more = h("div", { class: "wb-note" });
  const root = h("div", { class: "wb wb-diff" },
    h("div", { class: "wb-toolbar" }, h("span", { class: "wb-title" }, "Snapshots compared"), counts,
      h("span", { class: "wb-spacer" }),
      h("label", { title: "pages whose entries differ only in the accessed and dirty bits the CPU sets" }, hide,
        "hide A/D-only changes")),
    body, more);
  el.append(root);
  hide.addEventListener("change", () => model.send({ kind: "set", name: "hide_accessed_dirty", value: hide.checked }));

  function side(row, data, kind) {
    if (!data) return h("td", { class: "wb-diff-cell wb-diff-empty" }, "not mapped");
    const mark = (name, text) => h("span", { class: row.fields.includes(name) ? "wb-diff-field" : "" }, text);
    const rights = data.rights.slice(1);
    return h("td", { class: `wb-diff-cell${row.change === kind ? ` wb-diff-${kind}` : ""}`, title: `entry ${data.entry}` },
      mark("paddr", shortHex(data.paddr)), " ",
      h("span", { class: `wb-perm wb-perm-${rights}` }, mark("rights", data.rights)), " ",
      mark("flags", data.flags));
  }

  function about(s) {
    return h("th", {}, `${s.label} `, h("span", { class: "wb-note", style: "font-weight: normal" },
      `${s.pages} pages · CR3 ${shortHex(s.cr3)}${s.seconds ? ` · ${s.seconds} s after boot` : ""}`));
  }

  function draw() {
    const c = model.get("counts");
    counts.textContent = `${c.added} added · ${c.removed} removed · ${c.changed} changed` +
      (c.accessed_dirty_only ? ` (${c.accessed_dirty_only} only in A/D)` : "");
    hide.checked = model.get("hide_accessed_dirty");
    const rows = model.get("rows").map((row) => h("tr", { dataset: { change: row.change } },
      h("td", { class: "wb-diff-cell" }, row.vaddr), h("td", { class: "wb-diff-cell wb-note" }, row.size),
      side(row, row.before, "removed"), side(row, row.after, "added"),
      h("td", { class: "wb-diff-cell wb-note" }, row.what)));
    for (const row of rows) if (row.dataset.change === "changed") row.classList.add("wb-diff-changed");
    const table = h("table", { class: "wb-table" },
      h("tr", {}, h("th", {}, "vaddr"), h("th", {}, "size"), about(model.get("before")), about(model.get("after")),
        h("th", {}, "what changed")),
      ...rows);
    body.replaceChildren(table);
    if (!rows.length) body.append(h("div", { class: "wb-note" }, "No page changed."));
    more.textContent = model.get("more") ? `… and ${model.get("more")} more pages` : "";
  }

  const traits = ["counts", "rows", "more", "before", "after", "hide_accessed_dirty"];
  for (const name of traits) model.on(`change:${name}`, draw);
  draw();
  return () => { for (const name of traits) model.off(`change:${name}`, draw); };
}

export default { render };
