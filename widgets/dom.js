// Helpers every view shares. anywidget loads each view as one module with no imports, so
// workbench/views/_base.py puts this file in front of each view's own module.

// h("div", {class: "x", onclick: f, text: "..."}, ...children): build a DOM element.
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

function shortHex(hex) {
  // 0x0000000000120000 -> 0x120000 (a string operation: no 64-bit arithmetic in JS)
  const digits = hex.replace(/^0x0*/, "");
  return "0x" + (digits || "0");
}

// Tell the kernel that update `seq` is drawn (View.flow counts them, for the benchmarks): at most one
// message every ACK_INTERVAL ms for each view, carrying the latest number. Every message from the page
// makes the kernel report itself busy, then idle, which JupyterLab redraws (its status, its favicon);
// and while a cell runs they queue in the kernel, handled before the next cell can start.
const ACK_INTERVAL = 500;
const acks = new WeakMap(); // model -> { seq, timer, last }

function sendAck(model, seq) {
  const ack = acks.get(model) ?? { seq: 0, timer: null, last: -Infinity };
  acks.set(model, ack);
  ack.seq = Math.max(ack.seq, seq);
  if (ack.timer !== null) return;
  const send = () => {
    ack.timer = null;
    ack.last = performance.now();
    model.send({ kind: "ack", seq: ack.seq });
  };
  ack.timer = setTimeout(send, Math.max(0, ack.last + ACK_INTERVAL - performance.now()));
}

function record(view, seq, sentSeconds) {
  const log = (globalThis.__workbench ??= { updates: [] }).updates;
  const entry = { view, seq, sent: sentSeconds * 1000, received: Date.now(), drawn: null };
  log.push(entry);
  if (log.length > 5000) log.splice(0, log.length - 5000);
  return entry;
}
