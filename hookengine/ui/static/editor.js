// The Hook editor: the code with the sandbox's own problems on their lines, Save with a
// conflict check, a draft kept in this browser until saved or discarded, and the panels.
import * as cm from "./vendor/hook-editor.js";
import { api, applyScopes, boot, can } from "./api.js";
import { $, el, fill, problem, toast } from "./dom.js";
import { createRunner } from "./runner.js";
import { createSecrets } from "./secrets.js";
import { createDependencies } from "./dependencies.js";
import { createExecutions } from "./executions.js";
import { createLiveLogs } from "./livelogs.js";

const hookId = boot.hookId;
const path = `/hooks/${encodeURIComponent(hookId)}`;
// CodeMirror injects its styles in a <style> element: the page's CSP admits it by this nonce.
const nonce = document.querySelector("script[nonce]").nonce;
const draftKey = `hookengine.draft.${hookId}`;
const alert = $("#editor-problem");
const CHECK_DELAY_MS = 400;

const state = { hook: null, etag: null, saved: "", checkSeq: 0, checkTimer: null, declared: null };
let code = null;

// The draft: the code and the version it was edited from, so a save of a draft restored
// after someone else saved still meets the conflict check.
function readDraft() {
  try {
    return JSON.parse(localStorage.getItem(draftKey));
  } catch {
    return null;
  }
}

function writeDraft(script) {
  if (script === state.saved) localStorage.removeItem(draftKey);
  else localStorage.setItem(draftKey, JSON.stringify({ script, etag: state.etag }));
}

const dirty = () => code && cm.getText(code) !== state.saved;

function showState() {
  const stateLabel = $("#draft-state");
  stateLabel.textContent = dirty() ? "Unsaved changes" : "Saved";
  stateLabel.className = dirty() ? "state unsaved" : "state";
  $("#discard").disabled = !dirty();
}

function changed(script) {
  writeDraft(script);
  showState();
  clearTimeout(state.checkTimer);
  state.checkTimer = setTimeout(check, CHECK_DELAY_MS);
}

// The sandbox's compile, metadata and dependency rules, applied to the draft without saving.
async function check() {
  if (!can("create:hooks") && !can("update:hooks")) {
    $("#problems-count").textContent = "Not checked: the session cannot edit hooks";
    return;
  }
  const seq = ++state.checkSeq;
  try {
    const { data } = await api("POST", "/hooks/check", { script: cm.getText(code), triggerId: state.hook.triggerId });
    if (seq !== state.checkSeq) return; // a newer check is on its way
    cm.showProblems(code, data.problems);
    const count = data.problems.length;
    $("#problems-count").textContent = count ? `${count} problem${count > 1 ? "s" : ""}` : "No problems";
    state.declared = data.declared || null;
    secrets.declared(state.declared);
  } catch (error) {
    if (seq === state.checkSeq) $("#problems-count").textContent = `Not checked: ${error.message}`;
  }
}

async function save() {
  if (!can("update:hooks")) return;
  const script = cm.getText(code);
  try {
    const { data, response } = await api("PATCH", path, { script }, { "If-Match": state.etag });
    loaded(data, response.headers.get("ETag"));
    localStorage.removeItem(draftKey);
    showState();
    problem(alert, "");
    toast("Saved");
    dependencies.refresh();
  } catch (error) {
    if (error.status === 412) {
      problem(alert, `Not saved: ${error.message} Your draft is kept in this browser.`);
    } else {
      problem(alert, `Not saved: ${error.message}`, error.errors);
      check();
    }
  }
}

function discard() {
  if (!confirm("Discard your unsaved changes and go back to the saved code?")) return;
  localStorage.removeItem(draftKey);
  cm.setText(code, state.saved);
  showState();
}

async function setEnabled(event) {
  try {
    const { data, response } = await api("PATCH", path, { enabled: event.target.checked }, { "If-Match": state.etag });
    loaded(data, response.headers.get("ETag"));
  } catch (error) {
    event.target.checked = !event.target.checked;
    problem(alert, error.message, error.errors);
  }
}

// The hook as saved (and its version); the editor itself is only filled once, at start.
function loaded(hook, etag) {
  state.hook = hook;
  state.etag = etag;
  state.saved = hook.script;
  document.title = `${hook.name} · hookengine`;
  $("#hook-name").textContent = hook.name;
  $("#hook-trigger").textContent = hook.triggerId;
  $("#hook-enabled").checked = hook.enabled;
}

function setUpTabs() {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  for (const tab of tabs) {
    tab.addEventListener("click", () => {
      for (const other of tabs) {
        other.setAttribute("aria-selected", String(other === tab));
        document.getElementById(other.getAttribute("aria-controls")).hidden = other !== tab;
      }
      panels[tab.id.replace("tab-", "")]?.shown?.();
    });
  }
}

let secrets, dependencies, panels;

async function start() {
  let trigger;
  try {
    const { data: hook, response } = await api("GET", path);
    loaded(hook, response.headers.get("ETag"));
    trigger = (await api("GET", `/triggers/${encodeURIComponent(hook.triggerId)}`)).data;
  } catch (error) {
    problem(alert, error.status === 404 ? `No hook ${hookId}: it may have been deleted.` : error.message);
    return;
  }
  let text = state.saved;
  const draft = readDraft();
  if (draft && draft.script !== state.saved) {
    text = draft.script;
    if (draft.etag) state.etag = draft.etag; // saving it checks against what it was edited from
    toast("Restored your unsaved changes from this browser");
  }
  secrets = createSecrets(hookId);
  dependencies = createDependencies(hookId, () => state.hook);
  panels = { secrets, dependencies, executions: createExecutions(hookId), logs: createLiveLogs(hookId) };
  const runner = createRunner({ hookId, trigger, nonce, getScript: () => cm.getText(code), savedScript: () => state.saved, onRan: () => panels.executions.refresh() });
  code = cm.pythonEditor($("#code"), text, {
    nonce, label: "Code", onChange: changed, onSave: save, onRun: runner.run,
    words: [...trigger.params, "print"],
  });
  $("#save").addEventListener("click", save);
  $("#discard").addEventListener("click", discard);
  $("#hook-enabled").addEventListener("change", setEnabled);
  window.addEventListener("beforeunload", (event) => {
    if (dirty()) event.preventDefault(); // the browser asks before leaving unsaved work
  });
  setUpTabs();
  secrets.shown();
  dependencies.refresh();
  applyScopes();
  showState();
  check();
  $("#code").dataset.ready = "true"; // tests wait for this
  performance.mark("hookengine:interactive"); // the benchmark's time to interactive
}

start();
