// The translator: type a vaddr (or a symbol), see its bits sliced as the CPU slices them, the
// walk step each index chose, and the paddr or the fault. Python (workbench/views/translator.py)
// does the walk; every address arrives as a hex string and is only ever displayed.

// Where a walk step leads, in words.
function stepTail(s) {
  if (s.target === null) return "not present";
  if (s.target === "page") return `→ frame ${shortHex(s.target_paddr)}`;
  return `→ ${s.level_below} table ${shortHex(s.target_paddr)}`;
}

function sliceBox(s) {
  const role = s.state === "unreached" ? "wb-slice-unused" : `wb-slice-${s.role}`;
  return h("div", { class: `wb-slice ${role}`, title: `bits ${s.hi}:${s.lo}` },
    h("div", { class: "wb-slice-name" }, `${s.name} · ${s.hi}:${s.lo}`),
    h("div", { class: "wb-slice-bits" }, s.bits),
    h("div", { class: "wb-slice-value" }, s.value));
}

function stepRow(s, faulted) {
  return h("div", { class: `wb-step${faulted ? " wb-step-fault" : ""}` },
    h("span", { class: "wb-level" }, `${s.level}[${s.index}]`),
    h("span", { class: "wb-note" }, `table ${shortHex(s.table_paddr)}`),
    h("code", {}, s.entry),
    h("span", {}, ...s.flags.map((f) => h("span", { class: `wb-flag wb-flag-${f}` }, f))),
    h("span", { class: "wb-target" }, stepTail(s)));
}

function render({ model, el }) {
  const input = h("input", { type: "text", class: "wb-vaddr-input", size: "26", spellcheck: "false",
    placeholder: "vaddr (hex) or symbol" });
  const go = h("button", {}, "Translate");
  const symbol = h("span", { class: "wb-note" });
  const error = h("div", { class: "wb-error" });
  const slices = h("div", { class: "wb-slices" });
  const steps = h("div", { class: "wb-steps" });
  const result = h("div", { class: "wb-result" });
  const hint = h("div", { class: "wb-note" });
  const root = h("div", { class: "wb wb-translator", "data-lm-suppress-shortcuts": "true" },
    h("div", { class: "wb-toolbar" }, h("span", { class: "wb-title" }, "Translate"), input, go, symbol),
    error, slices, steps, result, hint);
  el.append(root);

  const submit = () => model.send({ kind: "set", name: "vaddr", value: input.value.trim() });
  go.addEventListener("click", submit);
  input.addEventListener("keydown", (event) => {
    event.stopPropagation();
    if (event.key === "Enter") submit();
  });

  function hot(step, on) {
    for (const node of root.querySelectorAll(`[data-step="${step}"]`)) node.classList.toggle("wb-hot", on);
  }
  function linkable(node, step) {
    if (step === null || step === undefined) return node;
    node.dataset.step = String(step);
    node.addEventListener("mouseenter", () => hot(step, true));
    node.addEventListener("mouseleave", () => hot(step, false));
    node.addEventListener("click", () => { if (model.get("linked")) model.send({ kind: "reveal", step }); });
    return node;
  }

  function draw() {
    const r = model.get("result");
    if (document.activeElement !== input) input.value = model.get("vaddr");
    error.textContent = model.get("error");
    if (!r || !r.vaddr) {
      for (const part of [slices, steps]) part.replaceChildren();
      result.textContent = "";
      symbol.textContent = "";
      hint.textContent = "Type an address such as 0xffffffff80100000, or a function name.";
      return;
    }
    symbol.textContent = `${r.vaddr}${r.symbol ? ` <${r.symbol}>` : ""}`;
    slices.replaceChildren(...r.slices.map((s) => linkable(sliceBox(s), s.step)));
    steps.replaceChildren(...r.steps.map((s, i) => linkable(stepRow(s, r.fault && i === r.steps.length - 1), i)));
    result.textContent = r.summary;
    result.className = `wb-result${r.fault ? " wb-result-fault" : ""}`;
    hint.textContent = model.get("linked") ? "Click a slice or a step to open its entry in the explorer." : "";
    root.dataset.translated = r.vaddr;
  }

  const traits = ["result", "vaddr", "error", "linked"];
  for (const name of traits) model.on(`change:${name}`, draw);
  draw();
  return () => { for (const name of traits) model.off(`change:${name}`, draw); };
}

export default { render };
