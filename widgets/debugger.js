// The debugger view: the source with the current line, breakpoints on a click of a line number,
// step buttons, the stack, the variables and the registers (changed ones marked), and a link to
// the page tables at the current CR3. Python (workbench/views/debugger_view.py) owns the state;
// this module draws it and sends {kind: "action" | "toggle" | "open" | "explore"} back.

const BUTTONS = [
  ["stepi", "Step instruction", "one instruction (stepi)"],
  ["step", "Step", "to the next source line, into calls (step)"],
  ["next", "Next", "to the next source line, over calls (next)"],
  ["finish", "Finish", "until this function returns (finish)"],
  ["cont", "Continue", "until a breakpoint, a watchpoint or a fault (at most 5 s)"],
];

// The view's elements; `root` holds them all.
function makeElements(model) {
  const e = { buttons: {} };
  for (const [action, label, title] of BUTTONS) {
    e.buttons[action] = h("button", { title, dataset: { action }, onclick: () => model.send({ kind: "action", action }) }, label);
  }
  e.files = h("select", { title: "show another source file" });
  e.files.addEventListener("change", () => model.send({ kind: "open", path: e.files.value }));
  e.status = h("div", { class: "wb-explanation" });
  e.error = h("div", { class: "wb-error" });
  e.source = h("div", { class: "wb-debug-source" });
  e.stack = h("div", { class: "wb-debug-stack" });
  e.variables = h("div", { class: "wb-debug-vars" });
  e.registers = h("div", { class: "wb-debug-regs" });
  e.explore = h("a", { href: "#", class: "wb-debug-cr3" });
  e.explore.addEventListener("click", (event) => { event.preventDefault(); model.send({ kind: "explore" }); });
  e.root = h("div", { class: "wb wb-debugger" },
    h("div", { class: "wb-toolbar" }, h("span", { class: "wb-title" }, "Debugger"), ...Object.values(e.buttons),
      h("span", { class: "wb-spacer" }), e.files),
    e.status, e.error,
    h("div", { class: "wb-debug-body" }, e.source,
      h("div", { class: "wb-debug-side" }, h("div", { class: "wb-sub" }, "stack"), e.stack,
        h("div", { class: "wb-sub" }, "variables"), e.variables),
      h("div", { class: "wb-debug-side" }, h("div", { class: "wb-sub" }, "registers"), e.explore, e.registers)));
  return e;
}

// One source line: a gutter that sets or clears its breakpoint, then the text.
function sourceRow(model, text, number, current, marked) {
  const gutter = h("span", { class: "wb-debug-gutter", title: marked.has(number) ? "clear the breakpoint" : "set a breakpoint",
    onclick: () => model.send({ kind: "toggle", line: number }) }, marked.has(number) ? "●" : "", String(number));
  return h("div", { class: `wb-debug-line${number === current ? " wb-debug-current" : ""}`, dataset: { line: String(number) } },
    gutter, h("span", { class: "wb-debug-text" }, text || " "));
}

function render({ model, el }) {
  const { buttons, files, status, error, source, stack, variables, registers, explore, root } = makeElements(model);
  el.append(root);

  function drawStatus() {
    const stop = model.get("stop");
    const where = stop.function ? ` in ${stop.function} (${stop.path}:${stop.line})` : "";
    status.textContent = stop.reason ? `${stop.reason}${where}${stop.mode ? " · " + stop.mode : ""}` +
      (stop.detail ? ` — ${stop.detail}` : "") : "not stopped";
    error.textContent = model.get("error");
    const busy = model.get("busy");
    for (const [action] of BUTTONS) buttons[action].disabled = Boolean(busy) || stop.reason === "exited";
  }

  function drawSource() {
    const lines = model.get("lines");
    const current = model.get("current");
    const marked = new Set(model.get("breakpoint_lines"));
    source.replaceChildren(...lines.map((text, i) => sourceRow(model, text, i + 1, current, marked)));
    const here = source.querySelector(".wb-debug-current");
    if (here) here.scrollIntoView({ block: "center" });
    files.replaceChildren(...model.get("files").map((path) => h("option", { value: path }, path)));
    files.value = model.get("path");
  }

  function drawSide() {
    stack.replaceChildren(...model.get("stack").map((f) => h("div", { class: "wb-mono" },
      `#${f.level} ${f.function}${f.inlined ? " (inlined)" : ""} `, h("span", { class: "wb-note" }, f.where),
      f.interrupted ? h("span", { class: "wb-warn" }, " interrupted here") : null)));
    variables.replaceChildren(...model.get("variables").map((v) => h("div", { class: "wb-mono" },
      h("span", { class: "wb-note" }, `${v.type} `), `${v.name} = ${v.text}`)));
    registers.replaceChildren(h("table", { class: "wb-table" }, ...model.get("registers").map((r) =>
      h("tr", { class: r.changed ? "wb-debug-changed" : "" }, h("td", { class: "wb-mono" }, r.name),
        h("td", { class: "wb-mono" }, r.value)))));
    const cr3 = model.get("cr3");
    explore.textContent = cr3 ? `page tables at CR3 ${cr3}` : "paging is off";
  }

  function drawAll() { drawStatus(); drawSource(); drawSide(); }
  function onSeq() {
    drawAll();
    requestAnimationFrame(() => sendAck(model, model.get("seq")));
  }
  const traits = ["stop", "error", "busy"];
  for (const name of traits) model.on(`change:${name}`, drawStatus);
  model.on("change:lines", drawSource);
  model.on("change:current", drawSource);
  model.on("change:breakpoint_lines", drawSource);
  model.on("change:seq", onSeq);
  drawAll();
  model.send({ kind: "hello" });
  return () => {
    for (const name of traits) model.off(`change:${name}`, drawStatus);
    model.off("change:lines", drawSource);
    model.off("change:current", drawSource);
    model.off("change:breakpoint_lines", drawSource);
    model.off("change:seq", onSeq);
  };
}

export default { render };
