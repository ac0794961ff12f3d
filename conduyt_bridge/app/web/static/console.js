// The console's entry point: one Server-Sent Events stream (/api/events) keeps the page
// current (no polling); the "state" event (first on every stream, and whenever boards are
// added or removed) renders everything from the bridge's live state.

import { BoardCard } from "./board.js";
import { el, post, request, show, showOutcome } from "./dom.js";

const cards = new Map();
const context = { management: false };
const $ = (id) => document.getElementById(id);

function renderBridge(doc) {
  $("bridge-info").textContent = `${doc.bridge_id} · v${doc.version} · base topic ${doc.base_topic}`;
  setBroker(doc.broker);
  context.management = Boolean(doc.management);
  $("manage").hidden = !context.management;
  $("logout").hidden = !doc.login;
}

function setBroker(broker) {
  const pill = $("broker");
  pill.textContent = broker.connected ? "broker connected" : "broker disconnected";
  pill.className = `pill ${broker.connected ? "ok" : "bad"}`;
}

function placeCard(board) {
  const card = new BoardCard(board, context);
  const old = cards.get(board.id);
  if (old) old.node.replaceWith(card.node);
  else $("boards").append(card.node);
  cards.set(board.id, card);
}

function renderAll(doc) {
  renderBridge(doc);
  const keep = new Set(doc.boards.map((b) => b.id));
  for (const [dev, card] of cards) {
    if (!keep.has(dev)) {
      card.node.remove();
      cards.delete(dev);
    }
  }
  // Re-render in the bridge's order (a board added at run time goes last).
  for (const board of doc.boards) placeCard(board);
  for (const board of doc.boards) $("boards").append(cards.get(board.id).node);
  $("empty").hidden = doc.boards.length > 0;
}

function setLive(ok) {
  const pill = $("live");
  pill.textContent = ok ? "live" : "reconnecting…";
  pill.className = `pill ${ok ? "live" : "connecting"}`;
  document.body.classList.toggle("stale", !ok);
}

function connect() {
  const source = new EventSource("/api/events");
  const on = (name, handler) => source.addEventListener(name, (event) => handler(JSON.parse(event.data)));
  source.addEventListener("open", () => setLive(true));
  source.addEventListener("error", () => setLive(false));
  on("state", renderAll);
  on("board", (board) => {
    placeCard(board);
    $("empty").hidden = true;
  });
  on("values", (batch) => {
    for (const update of batch.ds) cards.get(update.dev)?.updateValue(update);
    for (const update of batch.pins) cards.get(update.dev)?.updatePin(update);
  });
  on("log", (line) => cards.get(line.dev)?.addLog(line));
  on("errors", (doc) => cards.get(doc.dev)?.setErrors(doc.errors));
  on("counters", (doc) => {
    setBroker(doc.broker);
    for (const [dev, card] of cards) {
      const state = doc.states[dev];
      if (state) card.setState(state);
      if (doc.boards[dev]) card.setCounters(doc.boards[dev], state);
    }
  });
}

// ---- adding boards --------------------------------------------------------------------

// One scan result: the port, what answered (firmware, datastreams) or why nothing did,
// and for a board an "add" button that sends device/add with that port.
function scanRow(item, message) {
  let what = item.error || "no answer";
  if (item.ok) {
    const streams = item.datastreams.map((ds) => ds.name).join(", ");
    what = `${item.firmware.name} ${item.firmware.version} · mcu ${item.mcu_id} · ${item.pins} pins${streams ? ` · ${streams}` : ""}`;
  }
  const row = el("li", { class: "row" }, el("code", { text: item.port }), el("span", { class: item.ok ? "" : "muted", text: what }));
  if (item.ok) {
    row.append(el("button", {
      type: "button", "aria-label": `add ${item.port}`, text: "Add",
      onclick: async () => showOutcome(message, await request("device/add", { port: item.port }), (doc) => `added ${doc.data.id}`),
    }));
  }
  return row;
}

function setupManagement() {
  const message = $("manage-message");
  const form = $("add-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const id = form.elements.id.value.trim();
    const port = form.elements.port.value.trim();
    const payload = id ? { id, port } : { port };
    const result = await request("device/add", payload);
    if (showOutcome(message, result, (doc) => `added ${(doc.data && doc.data.id) || id || port}`)) form.reset();
  });
  const scanForm = $("scan-form");
  scanForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    // The scan action (docs/requests.md §3.5): {"ports"?: [...]} → {"results": [...]},
    // one entry per port in the form of `conduyt-bridge scan --json`.
    const ports = scanForm.elements.ports.value.split(/[\s,]+/).filter(Boolean);
    show(message, ports.length ? `scanning ${ports.join(", ")}…` : "scanning serial ports…", true);
    const list = $("scan-results");
    list.replaceChildren();
    const result = await request("scan", ports.length ? { ports } : {});
    if (!showOutcome(message, result, () => "scan done")) return;
    const found = result.doc.data.results;
    if (!found.length) show(message, "no serial ports found", true);
    for (const item of found) list.append(scanRow(item, message));
  });
  $("logout").addEventListener("click", async () => {
    await post("/logout", {});
    location.assign("/login");
  });
}

setupManagement();
connect();
