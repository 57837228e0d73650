// The Phone MFA page: the phone factor and its message types, the provider that sends, the
// templates (live preview, test sends), the development outbox while that provider is in use,
// and the recent gd_send_* log events. Everything goes through /api/v2, as the CLI does.
import { api, applyScopes, boot } from "./api.js";
import { $, el, fill, problem, show, toast } from "./dom.js";
import { createProvider } from "./phone-provider.js";
import { createTemplates } from "./phone-templates.js";

const EVENTS = "/logs?q=type%3Agd_send_*&per_page=20&sort=date%3A-1";
const alert = $("#phone-problem");

// One alert region for the page: the API's message and its `errors` list; null clears it.
function report(error) {
  problem(alert, error ? error.message : "", error ? error.errors : []);
}

const when = (iso) => (iso || "").replace("T", " ").replace(/(\.\d+)?Z$/, "");

async function loadFactor() {
  try {
    const [{ data: factors }, { data: types }, { data: tenant }] = await Promise.all([
      api("GET", "/guardian/factors"), api("GET", "/guardian/factors/phone/message-types"),
      api("GET", "/tenants/settings?fields=friendly_name")]);
    $("#tenant-name").value = tenant.friendly_name || "";
    const phone = factors.find((factor) => factor.name === "sms"); // the phone factor's name
    $("#factor-enabled").checked = phone.enabled;
    $("#factor-note").textContent = phone.trial_expired
      ? `The development outbox has sent its ${boot.outboxCap} messages: choose another provider.` : "";
    $("#type-sms").checked = types.message_types.includes("sms");
    $("#type-voice").checked = types.message_types.includes("voice");
  } catch (error) {
    report(error);
  }
}

async function setFactor(event) {
  try {
    await api("PUT", "/guardian/factors/sms", { enabled: event.target.checked });
    toast(`Phone factor ${event.target.checked ? "on" : "off"}`);
  } catch (error) {
    event.target.checked = !event.target.checked;
    report(error);
  }
}

async function setMessageTypes(event) {
  const types = ["sms", "voice"].filter((type) => $(`#type-${type}`).checked);
  try {
    await api("PUT", "/guardian/factors/phone/message-types", { message_types: types });
    toast(`Message types: ${types.join(", ") || "none"}`);
  } catch (error) {
    event.target.checked = !event.target.checked;
    report(error);
  }
}

async function setTenantName(event) {
  try {
    await api("PATCH", "/tenants/settings", { friendly_name: event.target.value.trim() });
    toast("Tenant name saved");
    templates.refresh();
  } catch (error) {
    report(error);
  }
}

async function loadOutbox() {
  if ($("#outbox-panel").hidden) return;
  try {
    const { data } = await api("GET", "/guardian/factors/phone/dev-outbox");
    $("#outbox-count").textContent = `${data.length} of ${boot.outboxCap} messages used`;
    fill($("#outbox-rows"), ...data.reverse().map((message) => el("tr", {},
      el("td", {}, el("time", { datetime: message.created_at }, when(message.created_at))),
      el("td", {}, message.recipient), el("td", {}, message.message_type),
      el("td", { class: "message-text" }, message.text))));
  } catch (error) {
    report(error);
  }
}

async function loadEvents() {
  try {
    const { data } = await api("GET", EVENTS);
    fill($("#event-rows"), ...data.map((event) => {
      const details = event.details || {};
      const failed = event.type.endsWith("_failure");
      return el("tr", {},
        el("td", {}, el("time", { datetime: event.date }, when(event.date))),
        el("td", {}, el("span", { class: `status ${failed ? "error" : "success"}` }, event.type)),
        el("td", {}, event.description || ""),
        el("td", {}, (details.authenticator || {}).phone_number || ""),
        el("td", {}, details.provider || ""),
        el("td", {}, event.user_id || ""));
    }));
    if (!data.length) fill($("#event-rows"), el("tr", {}, el("td", { colspan: 6, class: "muted" }, "No deliveries yet.")));
  } catch (error) {
    report(error);
  }
}

const templates = createTemplates({
  report,
  onSent: () => Promise.all([loadOutbox(), loadEvents(), loadFactor()]),
});
const provider = createProvider({
  report,
  onChange: (inUse) => {
    show($("#outbox-panel"), inUse === "guardian:auth0");
    return Promise.all([loadOutbox(), templates.use(inUse)]);
  },
});

$("#factor-enabled").addEventListener("change", setFactor);
$("#type-sms").addEventListener("change", setMessageTypes);
$("#type-voice").addEventListener("change", setMessageTypes);
$("#tenant-name").addEventListener("change", setTenantName);
$("#outbox-refresh").addEventListener("click", loadOutbox);
$("#events-refresh").addEventListener("click", loadEvents);
applyScopes();
Promise.all([loadFactor(), provider.load(), loadEvents()]).then(() => {
  $("#phone").dataset.ready = "true"; // tests wait for this
});
