// Executions: the hook's history, filtered by status and source, a page at a time; each
// row opens to its whole record.
import { api, boot } from "./api.js";
import { $, duration, el, fill, show } from "./dom.js";

const PER_PAGE = 20;

export function createExecutions(hookId) {
  let page = 0;
  const status = $("#filter-status");
  for (const name of boot.statuses) status.append(el("option", { value: name }, name));

  function row(execution) {
    const open = el("a", { href: `#${execution.id}`, onclick: (event) => { event.preventDefault(); detail(execution.id); } },
      execution.started_at);
    return el("tr", {},
      el("td", {}, open),
      el("td", {}, el("span", { class: `status ${execution.status}` }, execution.status)),
      el("td", {}, execution.source),
      el("td", {}, duration((execution.stats || {}).total_duration_ms)));
  }

  async function detail(id) {
    const { data } = await api("GET", `/executions/${encodeURIComponent(id)}`);
    $("#execution-id").textContent = id;
    $("#execution-record").textContent = JSON.stringify(data, null, 2);
    show($("#execution-detail"), true);
  }

  async function load(more = false) {
    page = more ? page + 1 : 0;
    const query = new URLSearchParams({ page, per_page: PER_PAGE, include_totals: "true" });
    if (status.value) query.set("status", status.value);
    if ($("#filter-source").value) query.set("source", $("#filter-source").value);
    const { data } = await api("GET", `/hooks/${encodeURIComponent(hookId)}/executions?${query}`);
    const rows = data.executions.map(row);
    if (more) $("#execution-rows").append(...rows);
    else fill($("#execution-rows"), ...rows);
    show($("#executions-more"), (page + 1) * PER_PAGE < data.total);
  }

  status.addEventListener("change", () => load());
  $("#filter-source").addEventListener("change", () => load());
  $("#executions-refresh").addEventListener("click", () => load());
  $("#executions-more").addEventListener("click", () => load(true));
  let visible = false;
  return {
    shown: () => { visible = true; return load(); },
    refresh: () => (visible ? load() : undefined),
  };
}
