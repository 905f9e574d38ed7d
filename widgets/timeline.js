// A recording along its instruction count: one bar, a mark for every console line, fault,
// page-table change and breakpoint hit, and the replay's position. A click (or a drag, released)
// sends the replay there: {kind: "go", icount}. Python (workbench/views/timeline_view.py) owns
// the state; the console under the bar is as it was at the position.

const LEGEND = [["console", "console line"], ["page-tables", "page tables changed"], ["breakpoint", "breakpoint hit"],
  ["fault", "fault"], ["triple-fault", "triple fault"], ["end", "end"]];

function legend() {
  return h("div", { class: "wb-timeline-legend wb-note" }, ...LEGEND.map(([kind, label]) =>
    h("span", {}, h("span", { class: `wb-timeline-mark-${kind}`, style: "display:inline-block;width:8px;height:8px;position:static" }), ` ${label}`)));
}

// The view's elements; `root` holds them all.
function makeElements() {
  const e = {
    bar: h("div", { class: "wb-timeline-bar", title: "click or drag to go to an instruction count" }),
    here: h("div", { class: "wb-timeline-here" }),
    position: h("span", { class: "wb-note" }),
    where: h("span", { class: "wb-mono" }),
    error: h("div", { class: "wb-error" }),
    screen: h("pre", { class: "wb-console" }),
  };
  e.root = h("div", { class: "wb wb-timeline" },
    h("div", { class: "wb-toolbar" }, h("span", { class: "wb-title" }, "Timeline"), e.position, e.where),
    e.bar, legend(), e.error, e.screen);
  return e;
}

function render({ model, el }) {
  const { bar, here, position, where, error, screen, root } = makeElements();
  el.append(root);

  const fraction = (icount) => `${(100 * icount) / Math.max(1, model.get("end"))}%`;
  const countAt = (event) => {
    const box = bar.getBoundingClientRect();
    const x = Math.max(0, Math.min(1, (event.clientX - box.left) / box.width));
    return Math.round(x * model.get("end"));
  };

  function drawMarks() {
    const marks = model.get("marks").map((m) => h("div", {
      class: `wb-timeline-mark wb-timeline-mark-${m.kind.replace(" ", "-")}`, style: `left:${fraction(m.icount)}`,
      title: `${m.kind} at instruction ${m.icount}: ${m.label}`, dataset: { icount: String(m.icount) },
    }));
    bar.replaceChildren(...marks, here);
    drawPosition();
  }

  let going = false; // from a click until Python's next update
  function go(icount) {
    going = true;
    model.send({ kind: "go", icount });
    drawPosition();
  }

  function drawPosition() {
    if (!going) here.style.left = fraction(model.get("position"));
    position.textContent = `instruction ${model.get("position")} of ${model.get("end")} (ends in ${model.get("ending")})` +
      (going ? " · going…" : "");
    where.textContent = model.get("where");
    screen.textContent = model.get("console");
    screen.scrollTop = screen.scrollHeight;
    error.textContent = model.get("error");
  }

  let dragging = false;
  bar.addEventListener("pointerdown", (event) => { dragging = true; bar.setPointerCapture(event.pointerId); here.style.left = fraction(countAt(event)); });
  bar.addEventListener("pointermove", (event) => { if (dragging) here.style.left = fraction(countAt(event)); });
  bar.addEventListener("pointerup", (event) => {
    if (!dragging) return;
    dragging = false;
    // Released on a mark: go exactly to it; anywhere else: to the count under the pointer.
    const mark = document.elementFromPoint(event.clientX, event.clientY)?.closest?.(".wb-timeline-mark");
    go(mark ? Number(mark.dataset.icount) : countAt(event));
  });

  function onSeq() {
    going = false;
    drawPosition();
    requestAnimationFrame(() => sendAck(model, model.get("seq")));
  }
  model.on("change:marks", drawMarks);
  model.on("change:seq", onSeq);
  model.on("change:error", drawPosition);
  drawMarks();
  return () => {
    model.off("change:marks", drawMarks);
    model.off("change:seq", onSeq);
    model.off("change:error", drawPosition);
  };
}

export default { render };
