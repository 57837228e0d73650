// Logs: a live tail of the hook's lines (Server-Sent Events). The browser reconnects by
// itself and resumes after the last line it received (Last-Event-ID); a stream the server
// refused or ended is reopened after the last line too, so nothing is lost or repeated.
import { $, el, logLine } from "./dom.js";

const MAX_LINES = 2000;
const RETRY_MS = 3000;

export function createLiveLogs(hookId) {
  const tail = $("#tail");
  const stateLabel = $("#tail-state");
  let source = null;
  let last = null;
  let paused = false;
  let retry = null;

  function status(text, kind) {
    stateLabel.textContent = text;
    stateLabel.className = `status ${kind}`;
  }

  function open() {
    clearTimeout(retry);
    const query = new URLSearchParams({ follow: "true" });
    if (last !== null) query.set("after", last);
    source = new EventSource(`/api/v2/hooks/${encodeURIComponent(hookId)}/logs?${query}`);
    status("connecting", "connecting");
    source.addEventListener("open", () => status("connected", "connected"));
    source.addEventListener("log", (event) => {
      last = event.lastEventId;
      const line = JSON.parse(event.data);
      const item = logLine(line);
      if (line.execution_id) item.prepend(el("span", { class: "muted" }, `${line.execution_id.slice(-6)} `));
      tail.append(item);
      while (tail.childElementCount > MAX_LINES) tail.firstElementChild.remove();
      tail.scrollTop = tail.scrollHeight;
    });
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        // Refused (too many streams) or gone: try again after the last line received.
        source.close();
        status("disconnected; retrying", "error");
        retry = setTimeout(open, RETRY_MS);
      } else {
        status("reconnecting", "connecting");
      }
    });
  }

  function close() {
    clearTimeout(retry);
    if (source) source.close();
    source = null;
  }

  $("#tail-pause").addEventListener("click", () => {
    paused = !paused;
    $("#tail-pause").textContent = paused ? "Resume" : "Pause";
    if (paused) {
      close();
      status("paused", "");
    } else {
      open(); // after the last line shown: what was printed meanwhile arrives now
    }
  });
  $("#tail-clear").addEventListener("click", () => tail.replaceChildren());
  window.addEventListener("pagehide", close);

  return {
    shown() {
      if (!source && !paused) open();
    },
  };
}
