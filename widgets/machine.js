// The machine view: state badge, buttons, live serial console and an input line.
// Python (workbench/views/machine_view.py) owns the state; this module draws it and sends
// button presses and typed lines back as {kind: ...} messages.

const BUTTONS = [
  // action, label, states in which it applies
  ["boot", "Boot", ["not booted", "exited", "closed"]],
  ["pause", "Pause", ["running"]],
  ["resume", "Resume", ["paused"]],
  ["reset", "Reset", ["running", "paused", "faulted", "triple-fault"]],
  ["stop", "Stop", ["running", "paused", "faulted", "triple-fault"]],
];
const HISTORY = 100;

// Bookkeeping the benchmarks read: when each numbered update arrived and was drawn.
function acknowledge(model, seq, entry) {
  requestAnimationFrame(() => {
    if (entry) entry.drawn = Date.now();
    model.send({ kind: "ack", seq });
  });
}

function render({ model, el }) {
  const badge = h("span", { class: "wb-badge" });
  const title = h("span", { class: "wb-title" });
  const buttons = {};
  for (const [action, label] of BUTTONS) {
    buttons[action] = h("button", {
      dataset: { action },
      onclick: () => model.send({ kind: "action", action }),
    }, label);
  }
  const busy = h("span", { class: "wb-note" });
  const explanation = h("div", { class: "wb-explanation" });
  const error = h("div", { class: "wb-error" });
  const screen = h("pre", { class: "wb-console", tabindex: "0" });
  const input = h("input", {
    type: "text", spellcheck: "false", autocomplete: "off",
    placeholder: "type a line for the guest; Enter sends it",
  });
  const root = h("div", { class: "wb wb-machine" },
    h("div", { class: "wb-toolbar" }, title, badge, ...Object.values(buttons), busy),
    explanation, error, screen,
    h("div", { class: "wb-console-input" }, h("span", {}, "⏎"), input));
  el.append(root);

  // Console text: `upto` is the absolute position (as Python counts) the screen has reached.
  let text = "";
  let upto = 0;
  const history = [];
  let historyAt = 0;

  function trim() {
    const limit = model.get("scrollback");
    let cut = text.length;
    let lines = 0;
    while (cut > 0 && lines <= limit) {
      cut = text.lastIndexOf("\n", cut - 1);
      if (cut < 0) return;
      lines += 1;
    }
    if (lines > limit) text = text.slice(cut + 1);
  }

  function clean(chunk) {
    // Lone carriage returns and the guest's backspace echo ("\b \b") would otherwise show as junk.
    let out = chunk.replace(/\r(?!\n)/g, "");
    while (out.includes("\b")) out = out.replace(/[^\n]?\x08/, "");
    return out;
  }

  function drawConsole() {
    const atBottom = screen.scrollHeight - screen.scrollTop - screen.clientHeight < 24;
    screen.textContent = text;
    if (atBottom) screen.scrollTop = screen.scrollHeight;
  }

  function drawState() {
    const state = model.get("state");
    title.textContent = model.get("name") + " ";
    title.append(h("span", { class: "wb-sub" }, `(${model.get("image_name")})`));
    badge.textContent = model.get("status");
    badge.className = `wb-badge wb-state-${state.replace(" ", "-")}`;
    root.dataset.state = state;
    const doing = model.get("busy");
    for (const [action, , states] of BUTTONS) {
      buttons[action].disabled = Boolean(doing) || !states.includes(state);
    }
    busy.textContent = doing ? `${doing}…` : "";
    explanation.textContent = model.get("explanation");
    error.textContent = model.get("error");
    input.disabled = !["running", "paused"].includes(state);
  }

  function onMessage(message) {
    if (message.kind !== "console") return;
    const entry = message.seq != null ? record("machine", message.seq, message.t) : null;
    const chunk = clean(message.text);
    if (message.reset) {
      text = chunk;
      upto = message.start + message.text.length;
    } else if (message.start <= upto) {
      const fresh = message.start + message.text.length - upto;
      if (fresh > 0) text += clean(message.text.slice(message.text.length - fresh));
      upto = Math.max(upto, message.start + message.text.length);
    } else {
      model.send({ kind: "hello" }); // a gap: ask for the whole scrollback again
    }
    trim();
    drawConsole();
    if (message.seq != null) acknowledge(model, message.seq, entry);
  }

  function onSeq() {
    acknowledge(model, model.get("seq"), null); // state changes: acknowledged, not logged (no send time)
  }

  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      const line = input.value;
      model.send({ kind: "input", line });
      if (line && history[history.length - 1] !== line) history.push(line);
      if (history.length > HISTORY) history.shift();
      historyAt = history.length;
      input.value = "";
      screen.scrollTop = screen.scrollHeight;
    } else if (event.key === "ArrowUp" && historyAt > 0) {
      input.value = history[--historyAt];
      event.preventDefault();
    } else if (event.key === "ArrowDown" && historyAt < history.length) {
      historyAt += 1;
      input.value = history[historyAt] ?? "";
      event.preventDefault();
    }
    event.stopPropagation(); // keep JupyterLab's notebook shortcuts out of the console
  });
  screen.addEventListener("click", () => { if (!window.getSelection()?.toString()) input.focus(); });

  const traits = ["state", "status", "name", "image_name", "busy", "explanation", "error"];
  for (const name of traits) model.on(`change:${name}`, drawState);
  model.on("change:seq", onSeq);
  const onScrollback = () => { trim(); drawConsole(); };
  model.on("change:scrollback", onScrollback);
  model.on("msg:custom", onMessage);
  drawState();
  model.send({ kind: "hello" });

  return () => {
    for (const name of traits) model.off(`change:${name}`, drawState);
    model.off("change:seq", onSeq);
    model.off("change:scrollback", onScrollback);
    model.off("msg:custom", onMessage);
  };
}

export default { render };
