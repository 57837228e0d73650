// The hooks page: the list (trigger, enabled, dependencies, last run), New hook, enable and
// disable, delete.
import { api, applyScopes, boot, can } from "./api.js";
import { $, el, fill, problem, show, toast } from "./dom.js";

const rows = $("#hooks tbody");
const alert = $("#hooks-problem");

function report(error) {
  problem(alert, error.message, error.errors);
}

async function lastRun(hook) {
  const { data } = await api("GET", `/hooks/${encodeURIComponent(hook.id)}/executions?per_page=1`);
  const execution = data[0];
  return execution ? el("span", { class: `status ${execution.status}`, title: execution.started_at }, execution.status) : "never";
}

function row(hook) {
  const enabled = el("input", {
    type: "checkbox", "aria-label": `Enabled ${hook.name}`, checked: hook.enabled,
    disabled: !can("update:hooks"),
    onchange: async (event) => {
      try {
        await api("PATCH", `/hooks/${encodeURIComponent(hook.id)}`, { enabled: event.target.checked });
        await load();
      } catch (error) {
        event.target.checked = !event.target.checked;
        report(error);
      }
    },
  });
  const remove = el("button", {
    type: "button", "aria-label": `Delete ${hook.name}`, disabled: !can("delete:hooks"),
    onclick: async () => {
      if (!confirm(`Delete hook ${hook.name} and its secrets?`)) return;
      try {
        await api("DELETE", `/hooks/${encodeURIComponent(hook.id)}`);
        toast(`Deleted ${hook.name}`);
        await load();
      } catch (error) {
        report(error);
      }
    },
  }, "Delete");
  const run = el("td", {}, "…");
  lastRun(hook).then((text) => fill(run, text), () => fill(run, "?"));
  const deps = hook.dependencies_error ? `${hook.dependencies_status}: ${hook.dependencies_error}` : hook.dependencies_status;
  return el("tr", {},
    el("td", {}, el("a", { href: `/ui/hooks/${encodeURIComponent(hook.id)}` }, hook.name)),
    el("td", {}, hook.triggerId),
    el("td", {}, enabled),
    el("td", {}, el("span", { class: `status ${hook.dependencies_status}` }, deps)),
    run,
    el("td", {}, remove));
}

async function load() {
  try {
    const { data } = await api("GET", "/hooks?per_page=100&include_totals=true&fields=script&include_fields=false");
    fill(rows, ...data.hooks.map(row));
    show($("#no-hooks"), data.hooks.length === 0);
    problem(alert, "");
  } catch (error) {
    report(error);
  }
}

async function create(event) {
  event.preventDefault();
  const name = $("#new-name").value.trim();
  const triggerId = $("#new-trigger").value;
  try {
    const { data: trigger } = await api("GET", `/triggers/${encodeURIComponent(triggerId)}`);
    const { data: hook } = await api("POST", "/hooks", { name, triggerId, script: trigger.template });
    location.assign(`/ui/hooks/${encodeURIComponent(hook.id)}`);
  } catch (error) {
    report(error);
  }
}

fill($("#new-trigger"), ...boot.triggers.map((trigger) => el("option", { value: trigger.id }, trigger.id)));
$("#new-hook").addEventListener("submit", create);
applyScopes();
load();
