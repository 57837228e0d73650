// The runner: a JSON payload (the trigger's sample at first, then remembered per hook in
// this browser) and Run, which runs the draft in the editor, saved or not, and shows the
// whole answer: status, result, error with the hook's stack, every line, timings.
import * as cm from "./vendor/hook-editor.js";
import { api, can } from "./api.js";
import { $, duration, el, fill, logLine, show } from "./dom.js";

export function createRunner({ hookId, trigger, nonce, getScript, savedScript, onRan }) {
  const payloadKey = `hookengine.payload.${hookId}`;
  const sample = JSON.stringify(trigger.payload, null, 2);
  const payload = cm.jsonEditor($("#payload"), localStorage.getItem(payloadKey) || sample, {
    nonce, label: "Payload", onRun: run,
    onChange: (text) => localStorage.setItem(payloadKey, text),
  });
  let running = false;

  async function run() {
    if (running) return;
    const answer = $("#answer");
    let parsed;
    try {
      parsed = JSON.parse(cm.getText(payload));
    } catch (error) {
      return shown(answer, { status: "error", error: { name: "Payload", message: `The payload is not valid JSON: ${error.message}` } });
    }
    const script = getScript();
    // A draft needs update:hooks too; the saved code runs with execute:hooks alone.
    const body = script !== savedScript() || can("update:hooks") ? { payload: parsed, script } : { payload: parsed };
    running = true;
    $("#run").disabled = true;
    fill($("#answer-status"), "running…");
    $("#answer-status").className = "status running";
    try {
      const { data } = await api("POST", `/hooks/${encodeURIComponent(hookId)}/run`, body);
      shown(answer, data);
      onRan();
    } catch (error) {
      shown(answer, { status: "refused", error: { name: `HTTP ${error.status}`, message: [error.message, ...error.errors].join("\n") } });
    } finally {
      running = false;
      $("#run").disabled = false;
    }
  }

  $("#run").addEventListener("click", run);
  $("#reset-payload").addEventListener("click", () => {
    cm.setText(payload, sample);
    localStorage.removeItem(payloadKey);
  });
  return { run };
}

// One execution record (or a refusal) in the answer area; every string as text.
function shown(answer, record) {
  show(answer, true);
  const status = $("#answer-status");
  status.textContent = record.status;
  status.className = `status ${record.status}`;
  const stats = record.stats || {};
  $("#answer-timings").textContent = stats.total_duration_ms === undefined ? "" :
    `total ${duration(stats.total_duration_ms)} · hook ${duration(stats.hook_duration_ms)} · boot ${duration(stats.boot_duration_ms)}`;
  $("#answer-result").textContent = record.result === undefined ? "" : JSON.stringify(record.result, null, 2);
  const error = record.error;
  show($("#answer-error-box"), Boolean(error));
  $("#answer-error").textContent = error ? (error.stack || `${error.name}: ${error.message}`) : "";
  fill($("#answer-logs"), ...(record.logs || []).map(logLine));
  if (!(record.logs || []).length) $("#answer-logs").append(el("li", { class: "muted" }, "(nothing printed)"));
}
