// One board's card: identity and state, link counters, datastreams, pins, modules, raw
// packets, recent errors, log lines and (with the request API) its management.

import { datastreamTable, moduleForms, pinTable, rawConsole, updatePin, updateValue, messageSlot } from "./controls.js";
import { clock, el, newId, request, showOutcome } from "./dom.js";
import { optionsForm } from "./options.js";

const COUNTERS = [
  ["packets_in", "packets in"], ["packets_out", "packets out"], ["crc_errors", "CRC errors"],
  ["framing_errors", "framing errors"], ["naks", "NAKs"], ["crc_naks", "CRC NAKs"],
  ["timeouts", "timeouts"], ["reconnects", "reconnects"],
];

function counterItems(c) {
  const items = COUNTERS.filter(([key]) => key in c).map(([key, label]) =>
    el("span", {}, `${label} `, el("b", { text: String(c[key]) })));
  const ms = (v) => (v === null || v === undefined ? "—" : `${v} ms`);
  if ("latency_ms_p50" in c) {
    items.push(el("span", {}, "latency p50 ", el("b", { text: ms(c.latency_ms_p50) }), " p99 ", el("b", { text: ms(c.latency_ms_p99) })));
  }
  if (c.last_error && c.state !== "online") items.push(el("span", { class: "msg error", text: `last link error: ${c.last_error}` }));
  return items;
}

function errorItems(errors) {
  if (!errors.length) return [el("li", { class: "muted", text: "none" })];
  return errors.map((e) => el("li", {},
    el("span", { class: "muted", text: `${clock(e.ts)} ` }),
    el("code", { text: e.topic || "" }), " ",
    el("span", { class: "name", text: e.name || e.error || "" }), ": ",
    el("span", { text: e.message || "" })));
}

function logItem(line) {
  return el("li", {}, el("span", { class: "muted", text: `${clock(line.ts)} ` }), el("span", { text: line.text }));
}

function management(dev, board) {
  const msg = messageSlot();
  const newName = el("input", { type: "text", "aria-label": `new id for ${dev}`, autocomplete: "off", value: dev });
  const rename = el("form", { class: "inline", novalidate: true }, newName,
    el("button", { type: "submit", "aria-label": `rename ${dev}`, text: "Rename" }));
  rename.addEventListener("submit", async (event) => {
    event.preventDefault();
    showOutcome(msg, await request("device/rename", { from: dev, to: newName.value.trim() }), () => "renamed");
  });
  const confirm = el("button", { type: "button", class: "danger", "aria-label": `confirm remove ${dev}`, text: `Really remove ${dev}`, hidden: true });
  const remove = el("button", { type: "button", class: "danger", "aria-label": `remove ${dev}`, text: "Remove…" });
  remove.addEventListener("click", () => { confirm.hidden = false; confirm.focus(); });
  confirm.addEventListener("click", async () => {
    confirm.hidden = true;
    showOutcome(msg, await request("device/remove", { id: dev }), () => "removed");
  });
  return el("details", {}, el("summary", { "aria-label": `manage ${dev}`, text: "Manage" }),
    el("div", { class: "row" }, rename, remove, confirm), msg, optionsForm(dev, board, msg));
}

export class BoardCard {
  constructor(board, context) {
    this.dev = board.id;
    this.refs = { values: new Map(), controls: new Map(), pins: new Map() };
    const titleId = newId("board");
    this.pill = el("span", { class: `pill ${board.state}`, text: board.state });
    const firmware = board.firmware ? `${board.firmware.name} ${board.firmware.version}` : "no handshake yet";
    const facts = [firmware, board.port];
    if (board.mcu_id) facts.push(`mcu ${board.mcu_id}`);
    if (board.firmware) facts.push(`${board.pin_count} pins`);
    this.counters = el("div", { class: "counters muted", "aria-label": `link counters of ${this.dev}` }, counterItems(board.counters));
    this.errors = el("ul", { class: "plain errors", "aria-label": `recent errors of ${this.dev}` }, errorItems(board.errors));
    this.log = el("ul", { class: "plain log", "aria-label": `log of ${this.dev}` }, board.log.map(logItem));
    this.node = el("section", { class: "card board", "aria-labelledby": titleId, "data-dev": this.dev },
      el("div", { class: "board-head" },
        el("h2", { id: titleId, text: this.dev }), this.pill,
        board.read_only ? el("span", { class: "pill connecting", text: "read-only" }) : null,
        el("span", { class: "muted", text: facts.join(" · ") })),
      this.counters,
      el("h3", { text: "Datastreams" }),
      datastreamTable(this.dev, board, this.refs),
      pinTable(this.dev, board, this.refs),
      moduleForms(this.dev, board),
      rawConsole(this.dev, board),
      el("div", { class: "cols" },
        el("div", {}, el("h3", { text: "Recent errors" }), this.errors),
        el("div", {}, el("h3", { text: "Log" }), this.log)),
      context.management ? management(this.dev, board) : null);
  }

  setState(state) {
    if (this.pill.textContent === state) return;
    this.pill.textContent = state;
    this.pill.className = `pill ${state}`;
  }

  setCounters(c, state) {
    this.counters.replaceChildren(...counterItems({ ...c, state }));
  }

  setErrors(errors) {
    this.errors.replaceChildren(...errorItems(errors));
  }

  addLog(line) {
    this.log.append(logItem(line));
    while (this.log.children.length > 50) this.log.firstElementChild.remove();
    this.log.scrollTop = this.log.scrollHeight;
  }

  updateValue(update) {
    updateValue(this.refs, update);
  }

  updatePin(update) {
    updatePin(this.refs, update);
  }
}
