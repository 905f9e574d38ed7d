// The build view: the result of building a workspace, or its source with every compiler
// diagnostic shown under the line it is about. Lines far from any diagnostic are folded.
// Python (workbench/views/build_view.py) builds, and sends each line already highlighted and
// escaped (pygments, inline styles).

const CONTEXT = 3; // lines shown around each diagnostic

// Lines within CONTEXT of a diagnostic are never folded.
function linesNear(lineNumbers) {
  const keep = new Set();
  for (const line of lineNumbers) {
    for (let n = line - CONTEXT; n <= line + CONTEXT; n++) keep.add(n);
  }
  return keep;
}

function byLine(diagnostics) {
  const found = new Map();
  for (const d of diagnostics) {
    if (!found.has(d.line)) found.set(d.line, []);
    found.get(d.line).push(d);
  }
  return found;
}

// One source line, marked by its worst diagnostic, and each diagnostic under it.
function lineRows(text, n, notes) {
  const worst = notes.some((d) => d.severity !== "warning") ? "wb-marked" : notes.length ? "wb-marked-warning" : "";
  const code = h("span", {});
  code.innerHTML = text || " "; // escaped by Python
  const rows = [h("div", { class: `wb-line ${worst}`, dataset: { line: String(n) } },
    h("span", { class: "wb-lineno" }, String(n)), code)];
  for (const d of notes) {
    const caret = " ".repeat(Math.max((d.column ?? 1) - 1, 0)) + "^ ";
    rows.push(h("div", { class: `wb-diag${d.severity === "warning" ? " wb-diag-warning" : ""}` },
      `${caret}${d.severity}: ${d.message}`));
  }
  return rows;
}

// A file's source with its diagnostics; runs of lines far from them fold, until `unfold` is
// called with the fold's first and last line (the whole run opens at once).
function source(file, diagnostics, unfolded, unfold) {
  const notesAt = byLine(diagnostics);
  const keep = linesNear(notesAt.keys());
  const out = [];
  const lines = file.lines;
  let n = 1;
  while (n <= lines.length) {
    if (!keep.has(n) && !unfolded.has(`${file.path}:${n}`)) {
      let end = n;
      while (end + 1 <= lines.length && !keep.has(end + 1)) end += 1;
      const first = n;
      const count = end - n + 1;
      out.push(h("div", {
        class: "wb-fold",
        onclick: () => unfold(first, end),
      }, `⋯ ${count} line${count === 1 ? "" : "s"} (click to show)`));
      n = end + 1;
      continue;
    }
    out.push(...lineRows(lines[n - 1], n, notesAt.get(n) ?? []));
    n += 1;
  }
  return h("div", { class: "wb-source", dataset: { path: file.path } }, ...out);
}

function sectionsTable(image) {
  return h("table", { class: "wb-table" },
    h("tr", {}, ...["section", "vaddr", "size", "perm"].map((t) => h("th", {}, t))),
    ...image.sections.map((s) => h("tr", {}, h("td", {}, h("code", {}, s.name)), h("td", {}, h("code", {}, s.vaddr)),
      h("td", {}, String(s.size)), h("td", {}, h("span", { class: `wb-perm wb-perm-${s.permissions}` }, s.permissions)))));
}

// The diagnostics as a list; a click scrolls to the line in `body`.
function diagnosticList(diagnostics, body) {
  return h("ol", { class: "wb-diaglist" }, ...diagnostics.map((d) => h("li", {
    onclick: () => {
      const line = body.querySelector(`.wb-source[data-path="${d.path}"] [data-line="${d.line}"]`);
      if (line) line.scrollIntoView({ block: "nearest" });
    },
  }, h("code", {}, `${d.path}:${d.line}${d.column ? `:${d.column}` : ""}`), ` ${d.severity}: ${d.message}`)));
}

function render({ model, el }) {
  const title = h("span", { class: "wb-title" });
  const badge = h("span", { class: "wb-badge" });
  const seconds = h("span", { class: "wb-note" });
  const button = h("button", { onclick: () => model.send({ kind: "build" }) }, "Build");
  const summary = h("div", {});
  const body = h("div", {});
  const error = h("div", { class: "wb-error" });
  const root = h("div", { class: "wb wb-build" },
    h("div", { class: "wb-toolbar" }, title, badge, seconds, h("span", { class: "wb-spacer" }), button),
    summary, error, body);
  el.append(root);
  const unfolded = new Set(); // "path:line" of every line the student unfolded

  function failedParts() {
    const diagnostics = model.get("diagnostics");
    const unfold = (path) => (first, last) => {
      for (let n = first; n <= last; n++) unfolded.add(`${path}:${n}`);
      draw();
    };
    const parts = [diagnosticList(diagnostics, body)];
    for (const file of model.get("files")) {
      parts.push(h("div", { class: "wb-file" }, file.path));
      parts.push(source(file, diagnostics.filter((d) => d.path === file.path), unfolded, unfold(file.path)));
    }
    if (model.get("output")) parts.push(h("pre", { class: "wb-source" }, model.get("output")));
    return parts;
  }

  function draw() {
    const status = model.get("status");
    title.textContent = `Build${model.get("workspace") ? ` · ${model.get("workspace")}` : ""}`;
    badge.textContent = status;
    badge.className = `wb-badge ${status === "ok" ? "wb-state-running" : status === "failed" ? "wb-state-faulted" : ""}`;
    seconds.textContent = model.get("seconds") ? `${model.get("seconds").toFixed(2)} s` : "";
    button.style.display = model.get("workspace") ? "" : "none";
    button.disabled = status === "building";
    summary.textContent = model.get("summary");
    error.textContent = model.get("error");
    root.dataset.status = status;
    const parts = status === "ok" ? [sectionsTable(model.get("image"))] : status === "failed" ? failedParts() : [];
    body.replaceChildren(...parts);
  }

  const traits = ["status", "summary", "seconds", "image", "diagnostics", "files", "output", "workspace", "error"];
  for (const name of traits) model.on(`change:${name}`, draw);
  draw();
  return () => { for (const name of traits) model.off(`change:${name}`, draw); };
}

export default { render };
