// Dependencies: the packages the saved script declares, how their install went, and the
// lockfile they were installed from; refreshed after a save and while installing.
import { api } from "./api.js";
import { $, el, fill } from "./dom.js";

const POLL_MS = 2000;

export function createDependencies(hookId, hook) {
  let timer = null;

  async function refresh() {
    clearTimeout(timer);
    const declared = Object.entries(hook().dependencies || {});
    fill($("#dependency-rows"), ...declared.map(([name, version]) =>
      el("tr", {}, el("td", {}, el("code", {}, name)), el("td", {}, version))));
    if (!declared.length) $("#dependency-rows").append(el("tr", {}, el("td", { colspan: 2, class: "muted" }, "None declared")));
    try {
      const { data } = await api("GET", `/hooks/${encodeURIComponent(hookId)}/lockfile`);
      const status = $("#dependency-status");
      status.textContent = data.status;
      status.className = `status ${data.status}`;
      $("#dependency-error").textContent = data.error || "";
      $("#lockfile").textContent = data.lockfile || "(no lockfile: nothing to install)";
      if (data.status === "installing") timer = setTimeout(refresh, POLL_MS);
    } catch (error) {
      $("#dependency-error").textContent = error.message;
    }
  }

  return { refresh, shown: refresh };
}
