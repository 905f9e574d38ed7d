// Traces of calls into the kernel, side by side: one column per trace, one row per instruction,
// coloured by the privilege level it ran at. A step marker moves through every column at once.
// Python (workbench/views/trace_view.py) captured the traces; addresses are hex strings here.

function render({ model, el }) {
  const back = h("button", { title: "previous instruction" }, "◀");
  const next = h("button", { title: "next instruction" }, "▶");
  const position = h("span", { class: "wb-note" });
  const error = h("div", { class: "wb-error" });
  const columns = h("div", { class: "wb-trace-columns" });
  const root = h("div", { class: "wb wb-trace" },
    h("div", { class: "wb-toolbar" }, h("span", { class: "wb-title" }, "Calls into the kernel"), back, next, position,
      h("span", { class: "wb-spacer" }),
      h("span", { class: "wb-trace-cpl0 wb-badge" }, "CPL 0: kernel"), h("span", { class: "wb-trace-cpl3 wb-badge" }, "CPL 3: user")),
    error, columns);
  el.append(root);

  const longest = () => Math.max(...model.get("traces").map((t) => t.count));
  const go = (step) => model.send({ kind: "set", name: "step", value: Math.max(0, Math.min(longest(), step)) });
  back.addEventListener("click", () => go(model.get("step") - 1));
  next.addEventListener("click", () => go(model.get("step") + 1));

  function column(trace, marked) {
    const rows = [...trace.steps, trace.end].map((s, i) => {
      const last = i === trace.steps.length;
      return h("tr", { class: `wb-click wb-trace-cpl${s.cpl}${i === marked ? " wb-trace-current" : ""}`,
        onclick: () => go(i), title: `rsp ${s.rsp} (${s.stack || "?"}) · cr3 ${s.cr3} · gs base ${s.gs_base}` },
        h("td", { class: "wb-note" }, last ? "" : String(i + 1)),
        h("td", {}, String(s.cpl)),
        h("td", { class: "wb-mono" }, shortHex(s.rip)),
        h("td", { class: "wb-mono" }, last ? "(back)" : s.instruction),
        h("td", { class: "wb-note" }, `<${s.symbol}>`),
        h("td", { class: "wb-mono" }, s.stack),
        h("td", { class: "wb-mono" }, s.cr3));
    });
    const now = marked < trace.steps.length ? trace.steps[marked] : trace.end;
    return h("div", { class: "wb-trace-column" },
      h("div", { class: "wb-title" }, trace.title),
      h("div", { class: "wb-note" }, trace.summary),
      h("div", { class: "wb-trace-now" },
        marked < trace.steps.length ? `instruction ${marked + 1} of ${trace.count}: ` : "done: ",
        h("b", {}, `CPL ${now.cpl}`), ` · rsp ${shortHex(now.rsp)} (${now.stack || "?"}) · cr3 ${now.cr3}`),
      h("table", { class: "wb-table" },
        h("tr", {}, ...["#", "CPL", "rip", "instruction", "where", "stack", "cr3"].map((t) => h("th", {}, t))),
        ...rows));
  }

  function draw() {
    const step = model.get("step");
    error.textContent = model.get("error");
    position.textContent = `step ${step} of ${longest()}`;
    back.disabled = step <= 0;
    next.disabled = step >= longest();
    columns.replaceChildren(...model.get("traces").map((t) => column(t, Math.min(step, t.count))));
    for (const row of columns.querySelectorAll(".wb-trace-current")) row.scrollIntoView({ block: "nearest" });
  }

  const traits = ["traces", "step", "error"];
  for (const name of traits) model.on(`change:${name}`, draw);
  draw();
  return () => { for (const name of traits) model.off(`change:${name}`, draw); };
}

export default { render };
