// DOM and HTTP helpers of the console. Every text from the bridge goes into the page
// through textContent / text nodes (el(), Node.append with strings), never through an
// API that parses markup: board data (datastream names, firmware names, log lines) is
// untrusted.

const csrfMeta = document.querySelector('meta[name="csrf-token"]');
const CSRF = csrfMeta ? csrfMeta.getAttribute("content") : "";

// el("input", {type: "number", "aria-label": name}, children...): properties "class",
// "text", "value", "checked" and on<event> handlers are special; the rest are attributes
// (set with setAttribute, which never parses markup).
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else if (key === "value") node.value = String(value);
    else if (key === "checked") node.checked = Boolean(value);
    else if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

let uid = 0;
export function newId(prefix) {
  uid += 1;
  return `${prefix}-${uid}`;
}

// POST JSON with the CSRF header; resolves to {status, doc} (never rejects).
export async function post(path, body) {
  let response;
  try {
    response = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": CSRF },
      body: JSON.stringify(body),
    });
  } catch (err) {
    return { status: 0, doc: { ok: false, message: `the bridge does not answer (${err})` } };
  }
  if (response.status === 401) {
    location.assign("/login");
  }
  let doc;
  try {
    doc = await response.json();
  } catch {
    doc = { ok: false, message: `HTTP ${response.status}` };
  }
  return { status: response.status, doc };
}

export function boardPath(dev) {
  return `/api/boards/${encodeURIComponent(dev)}/command`;
}

// Run a board command by its Conduyt command topic (docs/topics.md §4) with the payload
// an MQTT client would publish; the bridge validates it exactly as it would on MQTT.
export function command(dev, topic, payload) {
  return post(boardPath(dev), { command: topic, payload: String(payload) });
}

export function request(action, payload) {
  return post(`/api/requests/${action}`, payload);
}

// Show an outcome next to a control: the bridge's message on refusal.
export function show(msg, text, ok) {
  msg.textContent = text;
  msg.classList.toggle("error", !ok);
  msg.classList.toggle("done", ok);
  msg.setAttribute("role", ok ? "status" : "alert");
}

export function showOutcome(msg, result, okText) {
  const { doc } = result;
  if (doc && (doc.ok === true || doc.status === "ok")) {
    show(msg, okText(doc), true);
    return true;
  }
  const text = (doc && (doc.message || doc.error)) || `HTTP ${result.status}`;
  show(msg, text, false);
  return false;
}

const UNITS = { celsius: "°C", fahrenheit: "°F", kelvin: "K", percent: "%" };

export function unitText(unit) {
  if (!unit) return "";
  return UNITS[unit.toLowerCase()] || unit;
}

export function valueText(value, hasValue, unit) {
  if (!hasValue) return "—";
  let text;
  if (value === null) text = "NaN";
  else if (typeof value === "boolean") text = value ? "true" : "false";
  else text = String(value);
  if (text.length > 200) text = `${text.slice(0, 200)}…`;
  const u = unitText(unit);
  return u ? `${text} ${u}` : text;
}

export function clock(iso) {
  if (!iso) return "";
  const d = typeof iso === "number" ? new Date(iso * 1000) : new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : d.toLocaleTimeString();
}
