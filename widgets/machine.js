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
const STATE_TRAITS = ["state", "status", "name", "image_name", "busy", "explanation", "error", "cpus"];

// Bookkeeping the benchmarks read: when each numbered update arrived and was drawn.
function acknowledge(model, seq, entry) {
  requestAnimationFrame(() => {
    if (entry) entry.drawn = Date.now();
    sendAck(model, seq);
  });
}

// Lone carriage returns and the guest's backspace echo ("\b \b") would otherwise show as junk.
function clean(chunk) {
  let out = chunk.replace(/\r(?!\n)/g, "");
  while (out.includes("\b")) out = out.replace(/[^\n]?\x08/, "");
  return out;
}

// The last `limit` lines of `text` (all of it when it has no more).
function lastLines(text, limit) {
  let cut = text.length;
  let lines = 0;
  while (cut > 0 && lines <= limit) {
    cut = text.lastIndexOf("\n", cut - 1);
    if (cut < 0) return text;
    lines += 1;
  }
  return lines > limit ? text.slice(cut + 1) : text;
}

// The view's elements; `root` holds them all.
function makeElements(model) {
  const e = {
    badge: h("span", { class: "wb-badge" }),
    title: h("span", { class: "wb-title" }),
    buttons: {},
    busy: h("span", { class: "wb-note" }),
    explanation: h("div", { class: "wb-explanation" }),
    error: h("div", { class: "wb-error" }),
    cpus: h("table", { class: "wb-cpus" }),
    screen: h("pre", { class: "wb-console", tabindex: "0" }),
    input: h("input", {
      type: "text", spellcheck: "false", autocomplete: "off",
      placeholder: "type a line for the guest; Enter sends it",
    }),
  };
  for (const [action, label] of BUTTONS) {
    e.buttons[action] = h("button", {
      dataset: { action },
      onclick: () => model.send({ kind: "action", action }),
    }, label);
  }
  e.root = h("div", { class: "wb wb-machine" },
    h("div", { class: "wb-toolbar" }, e.title, e.badge, ...Object.values(e.buttons), e.busy),
    e.explanation, e.error, e.cpus, e.screen,
    h("div", { class: "wb-console-input" }, h("span", {}, "⏎"), e.input));
  return e;
}

class MachineConsole {
  constructor(model, el) {
    this.model = model;
    this.e = makeElements(model);
    el.append(this.e.root);
    // Console text: `upto` is the absolute position (as Python counts) the screen has reached.
    this.text = "";
    this.upto = 0;
    this.history = [];
    this.historyAt = 0;
    this.e.input.addEventListener("keydown", this.onKey);
    this.e.screen.addEventListener("click", () => { if (!window.getSelection()?.toString()) this.e.input.focus(); });
  }

  trim() {
    this.text = lastLines(this.text, this.model.get("scrollback"));
  }

  drawConsole() {
    const screen = this.e.screen;
    const atBottom = screen.scrollHeight - screen.scrollTop - screen.clientHeight < 24;
    screen.textContent = this.text;
    if (atBottom) screen.scrollTop = screen.scrollHeight;
  }

  drawState = () => {
    const { model, e } = this;
    const state = model.get("state");
    e.title.textContent = model.get("name") + " ";
    e.title.append(h("span", { class: "wb-sub" }, `(${model.get("image_name")})`));
    e.badge.textContent = model.get("status");
    e.badge.className = `wb-badge wb-state-${state.replace(" ", "-")}`;
    e.root.dataset.state = state;
    const doing = model.get("busy");
    for (const [action, , states] of BUTTONS) {
      e.buttons[action].disabled = Boolean(doing) || !states.includes(state);
    }
    e.busy.textContent = doing ? `${doing}…` : "";
    e.explanation.textContent = model.get("explanation");
    e.error.textContent = model.get("error");
    e.cpus.replaceChildren(...model.get("cpus").map((cpu) => h("tr", { dataset: { state: cpu.state } },
      h("td", {}, `cpu ${cpu.index}`), h("td", {}, cpu.state), h("td", {}, h("code", {}, cpu.where)),
      h("td", {}, cpu.line), h("td", {}, h("code", {}, `cr3=${cpu.cr3}`)))));
    e.input.disabled = !["running", "paused"].includes(state);
  };

  onMessage = (message) => {
    if (message.kind !== "console") return;
    const entry = message.seq != null ? record("machine", message.seq, message.t) : null;
    this.receive(message);
    this.trim();
    this.drawConsole();
    if (message.seq != null) acknowledge(this.model, message.seq, entry);
  };

  // Add a console message's text to what the screen shows, from where the screen has reached.
  receive(message) {
    const end = message.start + message.text.length;
    if (message.reset) {
      this.text = clean(message.text);
      this.upto = end;
    } else if (message.start <= this.upto) {
      const fresh = end - this.upto;
      if (fresh > 0) this.text += clean(message.text.slice(message.text.length - fresh));
      this.upto = Math.max(this.upto, end);
    } else {
      this.model.send({ kind: "hello" }); // a gap: ask for the whole scrollback again
    }
  }

  onKey = (event) => {
    const input = this.e.input;
    if (event.key === "Enter") {
      this.send(input.value);
    } else if (event.key === "ArrowUp" && this.historyAt > 0) {
      input.value = this.history[--this.historyAt];
      event.preventDefault();
    } else if (event.key === "ArrowDown" && this.historyAt < this.history.length) {
      this.historyAt += 1;
      input.value = this.history[this.historyAt] ?? "";
      event.preventDefault();
    }
    event.stopPropagation(); // keep JupyterLab's notebook shortcuts out of the console
  };

  send(line) {
    const history = this.history;
    this.model.send({ kind: "input", line });
    if (line && history[history.length - 1] !== line) history.push(line);
    if (history.length > HISTORY) history.shift();
    this.historyAt = history.length;
    this.e.input.value = "";
    this.e.screen.scrollTop = this.e.screen.scrollHeight;
  }

  // Listen to the model; returns what stops listening.
  connect() {
    const model = this.model;
    // State changes are acknowledged, not logged (they carry no send time).
    const onSeq = () => acknowledge(model, model.get("seq"), null);
    const onScrollback = () => { this.trim(); this.drawConsole(); };
    const handlers = [
      ...STATE_TRAITS.map((name) => [`change:${name}`, this.drawState]),
      ["change:seq", onSeq], ["change:scrollback", onScrollback], ["msg:custom", this.onMessage]];
    for (const [event, handler] of handlers) model.on(event, handler);
    this.drawState();
    model.send({ kind: "hello" });
    return () => {
      for (const [event, handler] of handlers) model.off(event, handler);
    };
  }
}

function render({ model, el }) {
  return new MachineConsole(model, el).connect();
}

export default { render };
