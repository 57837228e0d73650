// Building the page: every string goes in as text (textContent), never as HTML, because
// names, logs, results and errors are written by hooks and by the people they serve.

// el("td", {class: "x", title: "y"}, "text", child, ...) -> an element.
export function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

export const $ = (selector, root = document) => root.querySelector(selector);

// Replace an element's children.
export function fill(element, ...children) {
  element.replaceChildren(...children.filter((child) => child !== null && child !== undefined));
}

export function show(element, visible) {
  element.hidden = !visible;
}

// A problem for the user, in an alert region; an empty message hides it.
export function problem(element, message, details = []) {
  element.hidden = !message;
  fill(element, message || "");
  if (details.length) element.append(el("ul", {}, ...details.map((item) => el("li", {}, item))));
}

// A short notice that goes away by itself.
export function toast(message) {
  const box = document.getElementById("toast");
  if (!box) return;
  box.textContent = message;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.textContent = ""; }, 4000);
}

// A log line as text: time, stream, message (control characters shown, never interpreted).
export function logLine(line) {
  const time = (line.time || "").replace("T", " ").replace("Z", "");
  return el("li", { class: `log ${line.stream}` },
    el("time", { datetime: line.time || "" }, time), " ",
    el("span", { class: "stream" }, line.stream), " ",
    el("span", { class: "message" }, visible(line.message || "")));
}

// Control characters (an escape sequence, a bell) shown as \xNN, keeping tabs and newlines.
export function visible(text) {
  return String(text).replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

export function duration(ms) {
  if (ms === null || ms === undefined) return "";
  return ms < 1000 ? `${Math.round(ms * 10) / 10} ms` : `${(ms / 1000).toFixed(2)} s`;
}
