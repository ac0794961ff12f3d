// The console's controls for one board: datastreams, pins, module commands, raw packets.
// Each control's accessible name is what it controls ("setpoint", "pin 13 mode",
// "servo write angle"); each sends the payload an MQTT client would send to the matching
// command topic, and shows the bridge's answer (its exact refusal message) beside it.

import { boardPath, command, el, newId, post, show, showOutcome, unitText, valueText } from "./dom.js";

function messageSlot() {
  return el("span", { class: "msg", role: "status", id: newId("msg") });
}

function resultText(doc) {
  const fields = Object.entries(doc).filter(([k]) => k !== "ok" && k !== "transaction");
  if (!fields.length) return "done";
  return fields.map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ");
}

// ---- datastreams ------------------------------------------------------------------------

function datastreamControl(dev, ds, refs) {
  if (!ds.control) return el("span", { class: "muted", text: "read-only" });
  const msg = messageSlot();
  const topic = `ds/${ds.slug}/set`;
  if (ds.control === "switch") {
    const input = el("input", {
      type: "checkbox",
      role: "switch",
      class: "switch",
      "aria-label": ds.name,
      "aria-describedby": msg.id,
      checked: ds.value === true,
    });
    input.addEventListener("change", async () => {
      const wanted = input.checked;
      const result = await command(dev, topic, wanted ? "true" : "false");
      if (!showOutcome(msg, result, () => "")) input.checked = !wanted;
    });
    refs.controls.set(ds.slug, input);
    return el("span", { class: "row" }, input, msg);
  }
  const props = { "aria-label": ds.name, "aria-describedby": msg.id, autocomplete: "off" };
  if (ds.control === "number") {
    Object.assign(props, { type: "number", min: ds.min, max: ds.max, step: ds.step });
  } else {
    Object.assign(props, { type: "text", class: "wide" });
    if (ds.control === "bytes") props.placeholder = "base64";
  }
  if (ds.has_value && ds.value !== null) props.value = ds.value;
  const input = el("input", props);
  input.addEventListener("input", () => { input.dataset.dirty = "1"; });
  // novalidate: out-of-range values go to the bridge, whose refusal is the message shown.
  const form = el(
    "form",
    { class: "inline", novalidate: true },
    input,
    ds.control === "number" && ds.unit ? el("span", { class: "muted", text: unitText(ds.unit) }) : null,
    el("button", { type: "submit", "aria-label": `set ${ds.name}`, text: "Set" }),
    msg,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const result = await command(dev, topic, input.value);
    if (showOutcome(msg, result, () => "")) delete input.dataset.dirty;
  });
  refs.controls.set(ds.slug, input);
  return form;
}

export function datastreamTable(dev, board, refs) {
  if (!board.datastreams.length) {
    const text = board.firmware ? "This board declares no datastreams." : "Waiting for the board's handshake.";
    return el("p", { class: "muted", text });
  }
  const rows = board.datastreams.map((ds) => {
    const value = el("td", { class: "value", text: valueText(ds.value, ds.has_value, ds.unit) });
    refs.values.set(ds.slug, { cell: value, unit: ds.unit });
    return el(
      "tr",
      {},
      el("th", { scope: "row", text: ds.name }),
      value,
      el("td", { class: "control" }, datastreamControl(dev, ds, refs)),
      el("td", { class: "topic" }, el("code", { text: ds.topic })),
    );
  });
  return el(
    "div",
    { class: "scroll" },
    el(
      "table",
      { class: "ds", "aria-label": `datastreams of ${dev}` },
      el("thead", {}, el("tr", {}, ...["datastream", "value", "control"].map((t) => el("th", { text: t })), el("th", { class: "topic", text: "topic" }))),
      el("tbody", {}, rows),
    ),
  );
}

export function updateValue(refs, update) {
  const ref = refs.values.get(update.slug);
  if (ref) ref.cell.textContent = valueText(update.value, true, ref.unit);
  const control = refs.controls.get(update.slug);
  if (!control || document.activeElement === control) return;
  if (control.type === "checkbox") control.checked = update.value === true;
  else if (!control.dataset.dirty && update.value !== null) control.value = String(update.value);
}

// ---- pins -------------------------------------------------------------------------------

function pinRow(dev, pin, refs) {
  const n = pin.pin;
  const msg = messageSlot();
  const mode = el(
    "select",
    { "aria-label": `pin ${n} mode`, "aria-describedby": msg.id },
    el("option", { value: "", text: "(not set)", disabled: true, selected: pin.mode === null }),
    pin.modes.map((m) => el("option", { value: m, text: m, selected: pin.mode === m })),
  );
  mode.addEventListener("change", async () => {
    showOutcome(msg, await command(dev, `pin/${n}/mode/set`, mode.value), () => `mode ${mode.value}`);
  });
  const value = el("td", { class: "value", text: pin.value === null ? "—" : String(pin.value) });
  refs.pins.set(n, value);
  const actions = el("td", { class: "row" });
  if (pin.writable) {
    const input = el("input", {
      type: "number", min: 0, max: pin.pwm ? 255 : 1, step: 1,
      "aria-label": `pin ${n} value`, "aria-describedby": msg.id,
    });
    const form = el("form", { class: "inline", novalidate: true }, input,
      el("button", { type: "submit", "aria-label": `set pin ${n}`, text: "Set" }));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      showOutcome(msg, await command(dev, `pin/${n}/set`, input.value), (d) => `wrote ${d.value}`);
    });
    actions.append(form);
  }
  if (pin.readable) {
    actions.append(el("button", {
      type: "button", "aria-label": `read pin ${n}`, text: "Read",
      onclick: async () => {
        const result = await command(dev, `pin/${n}/get`, "");
        if (showOutcome(msg, result, (d) => `read ${d.value}`)) value.textContent = String(result.doc.value);
      },
    }));
  }
  if (pin.subscribe_modes.length) {
    const current = pin.subscription ? pin.subscription.mode : "off";
    const sub = el("select", { "aria-label": `pin ${n} subscribe`, "aria-describedby": msg.id },
      ["off", ...pin.subscribe_modes].map((m) => el("option", { value: m, text: m === "off" ? "not subscribed" : m, selected: m === current })));
    sub.addEventListener("change", async () => {
      const payload = sub.value === "off" ? "off" : JSON.stringify({ mode: sub.value });
      showOutcome(msg, await command(dev, `pin/${n}/subscribe/set`, payload), () => `subscription ${sub.value}`);
    });
    actions.append(sub);
  }
  actions.append(msg);
  return el("tr", {}, el("th", { scope: "row", text: String(n) }),
    el("td", { class: "muted", text: pin.capabilities.join(" ") }), el("td", {}, mode), value, actions);
}

export function pinTable(dev, board, refs) {
  if (!board.pins.length) return null;
  return el("details", {},
    el("summary", { text: `Pins (${board.pins.length})` }),
    el("div", { class: "scroll" }, el("table", { "aria-label": `pins of ${dev}` },
      el("thead", {}, el("tr", {}, ...["pin", "capabilities", "mode", "value", "actions"].map((t) => el("th", { text: t })))),
      el("tbody", {}, board.pins.map((pin) => pinRow(dev, pin, refs))))));
}

export function updatePin(refs, update) {
  const cell = refs.pins.get(update.pin);
  if (cell) cell.textContent = String(update.value);
}

// ---- module commands ----------------------------------------------------------------------

function argumentInput(label, arg) {
  const props = { "aria-label": label, name: arg.name, autocomplete: "off" };
  if (arg.input === "switch") return el("input", { ...props, type: "checkbox", role: "switch", checked: arg.default === 1 });
  if (arg.input === "choice") {
    return el("select", props, arg.choices.map((c) => el("option", { value: c, text: String(c), selected: c === arg.default })));
  }
  if (arg.input === "number") {
    return el("input", { ...props, type: "number", min: arg.min, max: arg.max, step: arg.step, placeholder: arg.default ?? "" });
  }
  return el("input", { ...props, type: "text", class: "wide", placeholder: arg.input === "bytes" ? "base64" : "" });
}

function argumentValue(arg, input) {
  if (arg.input === "switch") return input.checked;
  const text = input.value.trim();
  if (text === "") return undefined;
  if (arg.input === "number" || arg.input === "choice") {
    const number = Number(text);
    return Number.isFinite(number) ? number : text; // the bridge names what is wrong
  }
  return input.value;
}

function commandForm(dev, module, spec) {
  const title = `${module.name} ${spec.name}`;
  const msg = messageSlot();
  const inputs = spec.args.map((arg) => [arg, argumentInput(`${title} ${arg.name}`, arg)]);
  const form = el("form", { class: "inline", novalidate: true, "aria-label": title },
    el("span", { class: "mono", text: spec.name, title: spec.doc }),
    inputs.map(([arg, input]) => el("label", { class: "row", title: arg.doc }, el("span", { class: "muted", text: arg.name }), input)),
    el("button", { type: "submit", "aria-label": `run ${title}`, text: "Run" }), msg);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const args = {};
    for (const [arg, input] of inputs) {
      const value = argumentValue(arg, input);
      if (value !== undefined) args[arg.name] = value;
    }
    const result = await command(dev, `module/${module.slug}/${spec.name}`, JSON.stringify(args));
    showOutcome(msg, result, resultText);
  });
  return el("div", {}, form);
}

export function moduleForms(dev, board) {
  if (!board.modules.length) return null;
  return el("details", {},
    el("summary", { text: `Modules (${board.modules.map((m) => m.name).join(", ")})` }),
    board.modules.map((module) => el("fieldset", {},
      el("legend", { text: `${module.name} (id ${module.id})` }),
      module.commands.length
        ? module.commands.map((spec) => commandForm(dev, module, spec))
        : el("p", { class: "muted", text: "Not a built-in module: use raw MOD_CMD packets." }))));
}

// ---- raw packets ----------------------------------------------------------------------------

export function rawConsole(dev, board) {
  if (!board.allow_raw) return null;
  const msg = messageSlot();
  const input = el("input", { type: "text", class: "wide mono", "aria-label": "raw packet (hex)", placeholder: "43 32 01 05 00 00 …", autocomplete: "off" });
  const form = el("form", { class: "inline", novalidate: true }, input,
    el("button", { type: "submit", "aria-label": "send raw packet", text: "Send" }), msg);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { command: "cmd", payload_hex: input.value };
    const result = await post(boardPath(dev), body);
    showOutcome(msg, result, (d) => `${d.type} seq ${d.seq}: ${d.packet}`);
  });
  return el("details", {}, el("summary", { text: "Raw packets" }),
    el("p", { class: "muted", text: "One Conduyt packet in hex; the reply is shown here (allow_raw is on)." }), form);
}

export { messageSlot, show };
