// The build view: the result of building a workspace, or its source with every compiler
// diagnostic shown under the line it is about. Lines far from any diagnostic are folded.
// Python (workbench/views/build_view.py) builds, and sends each line already highlighted and
// escaped (pygments, inline styles).

const CONTEXT = 3; // lines shown around each diagnostic

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
  const unfolded = new Set(); // "path:first" of folds the student opened

  function source(file, diagnostics) {
    const byLine = new Map();
    for (const d of diagnostics) {
      if (!byLine.has(d.line)) byLine.set(d.line, []);
      byLine.get(d.line).push(d);
    }
    const keep = new Set();
    for (const line of byLine.keys()) {
      for (let n = line - CONTEXT; n <= line + CONTEXT; n++) keep.add(n);
    }
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
          onclick: () => {
            for (let k = first; k <= end; k++) keep.add(k);
            unfolded.add(`${file.path}:${first}`);
            draw();
          },
        }, `⋯ ${count} line${count === 1 ? "" : "s"} (click to show)`));
        n = end + 1;
        continue;
      }
      const notes = byLine.get(n) ?? [];
      const worst = notes.some((d) => d.severity !== "warning") ? "wb-marked" : notes.length ? "wb-marked-warning" : "";
      const code = h("span", {});
      code.innerHTML = lines[n - 1] || " "; // escaped by Python
      out.push(h("div", { class: `wb-line ${worst}`, dataset: { line: String(n) } },
        h("span", { class: "wb-lineno" }, String(n)), code));
      for (const d of notes) {
        const caret = " ".repeat(Math.max((d.column ?? 1) - 1, 0)) + "^ ";
        out.push(h("div", { class: `wb-diag${d.severity === "warning" ? " wb-diag-warning" : ""}` },
          `${caret}${d.severity}: ${d.message}`));
      }
      n += 1;
    }
    return h("div", { class: "wb-source", dataset: { path: file.path } }, ...out);
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
    const parts = [];
    if (status === "ok") {
      const image = model.get("image");
      parts.push(h("table", { class: "wb-table" },
        h("tr", {}, ...["section", "vaddr", "size", "perm"].map((t) => h("th", {}, t))),
        ...image.sections.map((s) => h("tr", {}, h("td", {}, h("code", {}, s.name)), h("td", {}, h("code", {}, s.vaddr)),
          h("td", {}, String(s.size)), h("td", {}, h("span", { class: `wb-perm wb-perm-${s.permissions}` }, s.permissions))))));
    } else if (status === "failed") {
      const diagnostics = model.get("diagnostics");
      parts.push(h("ol", { class: "wb-diaglist" }, ...diagnostics.map((d) => h("li", {
        onclick: () => {
          const line = body.querySelector(`.wb-source[data-path="${d.path}"] [data-line="${d.line}"]`);
          if (line) line.scrollIntoView({ block: "nearest" });
        },
      }, h("code", {}, `${d.path}:${d.line}${d.column ? `:${d.column}` : ""}`), ` ${d.severity}: ${d.message}`))));
      for (const file of model.get("files")) {
        parts.push(h("div", { class: "wb-file" }, file.path));
        parts.push(source(file, diagnostics.filter((d) => d.path === file.path)));
      }
      if (model.get("output")) parts.push(h("pre", { class: "wb-source" }, model.get("output")));
    }
    body.replaceChildren(...parts);
  }

  const traits = ["status", "summary", "seconds", "image", "diagnostics", "files", "output", "workspace", "error"];
  for (const name of traits) model.on(`change:${name}`, draw);
  draw();
  return () => { for (const name of traits) model.off(`change:${name}`, draw); };
}

export default { render };
