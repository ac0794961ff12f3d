// A board's options form: the [[devices]] keys the request API's device/options action
// changes (docs/requests.md §3): read_only, allow_raw, each datastream's entity name and
// expire_after_s, and the pin subscriptions set up after every handshake. Each control is
// named by what it controls ("setpoint name", "pin 4 subscription"); the bridge validates
// the change exactly as it validates the config file, and its message is shown.

import { el, request, showOutcome } from "./dom.js";

function numberOrNull(input) {
  const text = input.value.trim();
  if (text === "") return null;
  const number = Number(text);
  return Number.isFinite(number) ? number : text; // the bridge says what is wrong
}

function field(label, input) {
  return el("label", { class: "row" }, el("span", { class: "muted", text: label }), input);
}

function datastreamRows(board) {
  const saved = board.options.datastreams;
  return board.datastreams.map((ds) => {
    const now = saved[ds.name] || {};
    const name = el("input", {
      type: "text", "aria-label": `${ds.name} name`, autocomplete: "off",
      placeholder: ds.name, value: now.name ?? "",
    });
    const expire = el("input", {
      type: "number", min: 1, step: 1, "aria-label": `${ds.name} expire_after_s`,
      placeholder: "never", value: now.expire_after_s ?? "",
    });
    const row = el("tr", {}, el("th", { scope: "row", text: ds.name }),
      el("td", {}, name), el("td", {}, expire));
    return { ds, name, expire, row };
  });
}

function pinRows(board) {
  const saved = new Map(board.options.pins.map((sub) => [sub.pin, sub]));
  return board.pins.filter((pin) => pin.subscribe_modes.length).map((pin) => {
    const n = pin.pin;
    const now = saved.get(n);
    const mode = el("select", { "aria-label": `pin ${n} subscription` },
      ["", ...pin.subscribe_modes].map((m) => el("option", {
        value: m, text: m || "none", selected: (now ? now.mode : "") === m,
      })));
    const interval = el("input", {
      type: "number", min: 1, max: 65535, step: 1, "aria-label": `pin ${n} interval_ms`,
      placeholder: "100", value: now ? now.interval_ms : "",
    });
    const threshold = el("input", {
      type: "number", min: 0, max: 65535, step: 1, "aria-label": `pin ${n} threshold`,
      placeholder: "0", value: now ? now.threshold : "",
    });
    const row = el("tr", {}, el("th", { scope: "row", text: String(n) }),
      el("td", {}, mode), el("td", {}, interval), el("td", {}, threshold));
    return { n, mode, interval, threshold, row };
  });
}

// The options payload: datastream entries keep their other keys (Home Assistant shaping,
// docs/home-assistant.md); subscriptions of pins the board does not declare are kept.
function collect(board, readOnly, allowRaw, dsRows, pins) {
  const datastreams = {};
  for (const [name, entry] of Object.entries(board.options.datastreams)) datastreams[name] = { ...entry };
  for (const { ds, name, expire } of dsRows) {
    const entry = { ...(datastreams[ds.name] || {}) };
    delete entry.name;
    delete entry.expire_after_s;
    if (name.value.trim()) entry.name = name.value.trim();
    const seconds = numberOrNull(expire);
    if (seconds !== null) entry.expire_after_s = seconds;
    if (Object.keys(entry).length) datastreams[ds.name] = entry;
    else delete datastreams[ds.name];
  }
  const shown = new Set(pins.map((p) => p.n));
  const subs = board.options.pins.filter((sub) => !shown.has(sub.pin));
  for (const { n, mode, interval, threshold } of pins) {
    if (!mode.value) continue;
    const sub = { pin: n, mode: mode.value };
    const ms = numberOrNull(interval);
    const min = numberOrNull(threshold);
    if (ms !== null) sub.interval_ms = ms;
    if (min !== null) sub.threshold = min;
    subs.push(sub);
  }
  subs.sort((a, b) => a.pin - b.pin);
  return {
    read_only: readOnly.checked,
    allow_raw: allowRaw.checked,
    datastreams: Object.keys(datastreams).length ? datastreams : null,
    pins: subs.length ? subs : null,
  };
}

export function optionsForm(dev, board, msg) {
  const readOnly = el("input", { type: "checkbox", role: "switch", "aria-label": `read_only for ${dev}`, checked: board.options.read_only });
  const allowRaw = el("input", { type: "checkbox", role: "switch", "aria-label": `allow_raw for ${dev}`, checked: board.options.allow_raw });
  const dsRows = datastreamRows(board);
  const pins = pinRows(board);
  const form = el("form", { class: "options", novalidate: true, "aria-label": `options of ${dev}` },
    el("div", { class: "row" },
      el("label", { class: "row" }, readOnly, "read only (refuse commands)"),
      el("label", { class: "row" }, allowRaw, "raw packets allowed")),
    dsRows.length ? el("div", { class: "scroll" }, el("table", { "aria-label": `datastream options of ${dev}` },
      el("thead", {}, el("tr", {}, ...["datastream", "entity name", "expire after (s)"].map((t) => el("th", { text: t })))),
      el("tbody", {}, dsRows.map((r) => r.row)))) : null,
    pins.length ? el("div", { class: "scroll" }, el("table", { "aria-label": `pin subscriptions of ${dev}` },
      el("thead", {}, el("tr", {}, ...["pin", "subscription", "interval (ms)", "threshold"].map((t) => el("th", { text: t })))),
      el("tbody", {}, pins.map((r) => r.row)))) : null,
    el("button", { type: "submit", "aria-label": `save options for ${dev}`, text: "Save options" }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const options = collect(board, readOnly, allowRaw, dsRows, pins);
    const result = await request("device/options", { id: dev, options });
    showOutcome(msg, result, (doc) => (doc.data && doc.data.restarted ? "options saved; board restarted" : "options saved"));
  });
  return form;
}
