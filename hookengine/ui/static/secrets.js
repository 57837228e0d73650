// Secrets: names only (values are write-only, as in Auth0), set or replace one, delete one;
// secrets the script declares but that are not set are flagged.
import { api, can } from "./api.js";
import { $, el, fill, problem, toast } from "./dom.js";

export function createSecrets(hookId) {
  const path = `/hooks/${encodeURIComponent(hookId)}/secrets`;
  const rows = $("#secrets-rows");
  const form = $("#secret-form");
  let names = [];
  let declared = null;
  const alert = $("#editor-problem");

  function render() {
    const wanted = declared ? [...declared.secrets, ...declared.optional_secrets] : [];
    const all = [...new Set([...names, ...wanted])].sort();
    fill(rows, ...all.map((name) => {
      const set = names.includes(name);
      const required = declared && declared.secrets.includes(name);
      const value = set ? el("span", { class: "muted" }, "value not shown")
        : el("span", { class: required ? "status error" : "muted" }, required ? "not set (declared by the script)" : "not set (optional)");
      return el("tr", {},
        el("td", {}, el("code", {}, name)),
        el("td", {}, value),
        el("td", {},
          el("button", { type: "button", "aria-label": `${set ? "Replace" : "Set"} ${name}`, disabled: !can("update:hooks"),
            onclick: () => { $("#secret-name").value = name; $("#secret-value").focus(); } }, set ? "Replace" : "Set"),
          set ? el("button", { type: "button", "aria-label": `Delete secret ${name}`, disabled: !can("delete:hooks"),
            onclick: () => remove(name) }, "Delete") : null));
    }));
  }

  async function load() {
    try {
      names = Object.keys((await api("GET", path)).data);
      render();
    } catch (error) {
      problem(alert, error.message);
    }
  }

  async function remove(name) {
    if (!confirm(`Delete secret ${name}?`)) return;
    try {
      await api("DELETE", path, [name]);
      toast(`Deleted ${name}`);
      await load();
    } catch (error) {
      problem(alert, error.message, error.errors);
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = $("#secret-name").value.trim();
    const value = $("#secret-value");
    try {
      // Replacing an existing secret is a PATCH; a new name is a POST (409 if taken).
      await api(names.includes(name) ? "PATCH" : "POST", path, { [name]: value.value });
      form.reset(); // the value leaves the page as soon as it is stored
      toast(`Secret ${name} set`);
      await load();
    } catch (error) {
      value.value = "";
      problem(alert, error.message, error.errors);
    }
  });

  return {
    shown: load,
    declared(found) {
      declared = found;
      render();
    },
  };
}
