// The provider that sends the codes. With the tenant's Unified Phone Experience on, it is the
// tenant-level provider (/branding/phone/providers: Twilio or the custom hook); otherwise the
// Guardian factor's selected provider (the development outbox, Twilio or the hook). Saving a
// choice of the other kind switches the tenant setting. Credentials are write-only: the page
// only ever knows whether one is set.
import { api, can } from "./api.js";
import { $, show, toast } from "./dom.js";

const HIDDEN = "_VALUE_NOT_SHOWN_"; // what the API shows for a stored Guardian Twilio token
const TENANT_TEMPLATES = "Its templates are the tenant-level ones below.";
const GUARDIAN_TEMPLATES = "Its templates are the Guardian enrollment and verification messages below.";
const HELP = {
  "upe:twilio": `The engine sends through Twilio (under the egress policy). ${TENANT_TEMPLATES}`,
  "upe:custom": `The enabled send-phone-message hook sends each message. ${TENANT_TEMPLATES}`,
  "guardian:auth0": "Messages land in the development outbox below, never on a phone: SMS only, "
    + `at most 100 for this data directory's lifetime. ${GUARDIAN_TEMPLATES}`,
  "guardian:twilio": `The engine sends through Twilio with the Guardian factor's own settings. ${GUARDIAN_TEMPLATES}`,
  "guardian:phone-message-hook": `The enabled send-phone-message hook sends each message. ${GUARDIAN_TEMPLATES}`,
};

export function createProvider({ report, onChange }) {
  const choice = $("#provider-choice");
  const token = $("#twilio-token");
  // upe: the tenant setting; guardian: the selected provider; provider: the tenant-level one
  // (or null); twilio: the Guardian Twilio record, its token masked.
  const state = { upe: false, guardian: "auth0", provider: null, twilio: {} };

  const inUse = () => (state.upe ? `upe:${state.provider ? state.provider.name : "none"}` : `guardian:${state.guardian}`);
  const value = (id) => $(id).value.trim();

  async function load() {
    try {
      const [tenant, selected, twilio, providers] = await Promise.all([
        api("GET", "/tenants/settings?fields=phone_consolidated_experience"),
        api("GET", "/guardian/factors/phone/selected-provider"),
        api("GET", "/guardian/factors/phone/providers/twilio"),
        api("GET", "/branding/phone/providers"),
      ]);
      state.upe = tenant.data.phone_consolidated_experience === true;
      state.guardian = selected.data.provider;
      state.twilio = twilio.data;
      state.provider = providers.data.providers[0] || null;
    } catch (error) {
      report(error);
      return;
    }
    choice.value = inUse() === "upe:none" ? "upe:twilio" : inUse();
    showChoice();
    await onChange(inUse());
  }

  // The form for the chosen provider, filled with what is stored for it.
  function showChoice() {
    const chosen = choice.value;
    const [kind, name] = chosen.split(":");
    const stored = kind === "upe" && state.provider && state.provider.name === name ? state.provider : null;
    show($("#twilio-fields"), name === "twilio");
    show($("#upe-fields"), kind === "upe");
    if (kind === "upe") {
      const configuration = stored ? stored.configuration : {};
      $("#twilio-sid").value = configuration.sid || "";
      $("#twilio-from").value = configuration.default_from || "";
      $("#twilio-mssid").value = configuration.mssid || "";
      const methods = configuration.delivery_methods || ["text"];
      $("#method-text").checked = methods.includes("text");
      $("#method-voice").checked = methods.includes("voice");
      $("#provider-disabled").checked = Boolean(stored && stored.disabled);
      // A stored Twilio provider always has its token (the API refuses one without).
      $("#twilio-token-state").textContent = stored ? "set" : "not set";
    } else {
      $("#twilio-sid").value = state.twilio.sid || "";
      $("#twilio-from").value = state.twilio.from || "";
      $("#twilio-mssid").value = state.twilio.messaging_service_sid || "";
      $("#twilio-token-state").textContent = state.twilio.auth_token === HIDDEN ? "set" : "not set";
    }
    token.value = "";
    token.placeholder = $("#twilio-token-state").textContent === "set" ? "leave empty to keep it" : "";
    const used = inUse();
    $("#provider-in-use").textContent = used === chosen ? "in use"
      : used === "upe:none" ? "no tenant-level provider: deliveries are refused" : "not in use: save to switch";
    $("#provider-help").textContent = HELP[chosen];
    const allowed = mayPick(kind);
    $("#provider-save").disabled = !allowed;
    $("#provider-save").title = allowed ? "" : "Your token lacks the scopes to configure this provider";
    show($("#provider-delete"), Boolean(state.provider));
    $("#provider-delete").disabled = !can("delete:phone_providers");
  }

  function mayPick(kind) {
    const switching = state.upe !== (kind === "upe") ? can("update:tenant_settings") : true;
    if (kind === "guardian") return switching && can("update:guardian_factors");
    return switching && can(state.provider ? "update:phone_providers" : "create:phone_providers");
  }

  async function saveTenantLevel(name, secret) {
    const configuration = { delivery_methods: ["text", "voice"].filter((m) => $(`#method-${m}`).checked) };
    if (name === "twilio") {
      for (const [field, id] of [["sid", "#twilio-sid"], ["default_from", "#twilio-from"], ["mssid", "#twilio-mssid"]]) {
        if (value(id)) configuration[field] = value(id);
      }
    }
    const body = { name, disabled: $("#provider-disabled").checked, configuration };
    if (name === "custom") body.credentials = {};
    else if (secret) body.credentials = { auth_token: secret };
    if (state.provider) await api("PATCH", `/branding/phone/providers/${encodeURIComponent(state.provider.id)}`, body);
    else await api("POST", "/branding/phone/providers", { credentials: {}, ...body });
  }

  async function saveGuardian(name, secret) {
    if (name === "twilio") {
      // The record is replaced whole; the masked value keeps the stored token.
      const kept = state.twilio.auth_token === HIDDEN ? HIDDEN : null;
      await api("PUT", "/guardian/factors/phone/providers/twilio", {
        sid: value("#twilio-sid") || null, from: value("#twilio-from") || null,
        messaging_service_sid: value("#twilio-mssid") || null, auth_token: secret || kept,
      });
    }
    await api("PUT", "/guardian/factors/phone/selected-provider", { provider: name });
  }

  async function save(event) {
    event.preventDefault();
    const [kind, name] = choice.value.split(":");
    const secret = token.value;
    token.value = ""; // the token leaves the page with this request, stored or not
    try {
      if (kind === "upe") await saveTenantLevel(name, secret);
      else await saveGuardian(name, secret);
      // Switched last: a provider the API refused leaves the tenant as it was.
      if (state.upe !== (kind === "upe")) {
        await api("PATCH", "/tenants/settings", { phone_consolidated_experience: kind === "upe" });
      }
      report(null);
      toast("Provider saved");
    } catch (error) {
      report(error); // the form keeps what was typed (but the token), to be corrected
      return;
    }
    await load();
  }

  async function remove() {
    if (!confirm(`Delete the tenant-level ${state.provider.name} provider and its credentials?`)) return;
    try {
      await api("DELETE", `/branding/phone/providers/${encodeURIComponent(state.provider.id)}`);
      report(null);
      toast("Provider deleted");
    } catch (error) {
      report(error);
      return;
    }
    await load();
  }

  choice.addEventListener("change", showChoice);
  $("#provider-form").addEventListener("submit", save);
  $("#provider-delete").addEventListener("click", remove);
  return { load, inUse };
}
