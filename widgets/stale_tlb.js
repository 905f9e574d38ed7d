// The stale-TLB view: the walk of one page by the page tables now, beside what the reading CPU
// read and the frame that value came from. Python (workbench/views/stale_tlb.py) reads it all;
// this module draws it and sends the Refresh button back as {kind: "refresh"}.

const STALE_TRAITS = ["vaddr", "tables", "readers", "frames", "refreshes", "summary", "error"];

function walkLines(tables) {
  const steps = (tables.walk && tables.walk.steps) || [];
  return steps.map((step) => h("div", { class: "wb-stale-step" },
    h("code", {}, `${step.level}[${step.index}]`), " → ", h("code", {}, shortHex(step.target_paddr || "")),
    " ", ...step.flags.map((flag) => h("span", { class: "wb-chip" }, flag))));
}

function readerLine(reader) {
  return h("div", { class: `wb-stale-reader ${reader.stale ? "wb-stale" : "wb-fresh"}`, dataset: { cpu: reader.cpu } },
    `cpu ${reader.cpu} (${reader.state} at ${reader.where}) read `, h("code", {}, reader.value),
    " from frame ", h("code", {}, reader.frame ? shortHex(reader.frame) : "?"), " ",
    h("span", { class: "wb-chip" }, reader.stale ? "stale" : "fresh"));
}

function frameLine(frame) {
  return h("div", { class: "wb-stale-frame", dataset: { mapped: frame.mapped ? "yes" : "no" } },
    "frame ", h("code", {}, shortHex(frame.frame)), " holds ", h("code", {}, frame.value),
    frame.mapped ? " (mapped by the tables)" : " (no longer mapped)");
}

function render({ model, el }) {
  const refresh = h("button", { onclick: () => model.send({ kind: "refresh" }) }, "Refresh");
  const title = h("span", { class: "wb-title" });
  const tables = h("div", { class: "wb-stale-column" });
  const readers = h("div", { class: "wb-stale-column" });
  const error = h("div", { class: "wb-error" });
  const summary = h("div", { class: "wb-stale-summary" });
  const root = h("div", { class: "wb wb-stale-tlb" }, h("div", { class: "wb-toolbar" }, title, refresh), error,
    h("div", { class: "wb-stale-columns" }, tables, readers), summary);
  el.append(root);
  const draw = () => {
    const t = model.get("tables");
    title.textContent = `Stale TLB · page ${shortHex(model.get("vaddr"))} · reading ${model.get("refreshes")}`;
    tables.replaceChildren(h("div", { class: "wb-stale-head" }, "the page tables now"), ...walkLines(t),
      ...model.get("frames").map(frameLine));
    const rows = model.get("readers");
    readers.replaceChildren(h("div", { class: "wb-stale-head" }, "what the CPU read"),
      ...(rows.length ? rows.map(readerLine) : [h("div", {}, "No CPU reads the page.")]));
    summary.textContent = model.get("summary");
    root.dataset.stale = rows.some((row) => row.stale) ? "yes" : "no";  // some CPU read through an old translation
    error.textContent = model.get("error");
  };
  for (const name of STALE_TRAITS) model.on(`change:${name}`, draw);
  draw();
  return () => { for (const name of STALE_TRAITS) model.off(`change:${name}`, draw); };
}

export default { render };
