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

function record(view, seq, sentSeconds) {
  const log = (globalThis.__workbench ??= { updates: [] }).updates;
  const entry = { view, seq, sent: sentSeconds * 1000, received: Date.now(), drawn: null };
  log.push(entry);
  if (log.length > 5000) log.splice(0, log.length - 5000);
  return entry;
}
