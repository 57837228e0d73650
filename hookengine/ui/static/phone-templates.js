// The message templates of the provider in use, edited with a live preview (the engine renders
// the draft with sample values, through the same Liquid check and renderer a delivery uses):
// - tenant-level: /branding/phone/templates, one SMS and one voice body per type;
// - Guardian: the enrollment and verification messages, one body for SMS and voice.
// "Send test" sends the saved template: a tenant-level one through its provider (.../try,
// which is not logged); a Guardian one as a real delivery with a random code, as
// `hookengine phone test` does, so it reaches the outbox (or the provider) and the log.
import { api, boot, can } from "./api.js";
import { $, el, fill, show, toast } from "./dom.js";

const PREVIEW_DELAY_MS = 300;
const TYPES = ["otp_verify", "otp_enroll", "change_password", "blocked_account", "password_breach"];
const GUARDIAN = [
  { key: "verification_message", label: "Verification message", action: "authentication" },
  { key: "enrollment_message", label: "Enrollment message", action: "enrollment" },
];
const PARTS = {
  upe: [["text", "SMS text"], ["voice", "Voice text"]],
  guardian: [["message", "Message"]],
};
const SHOWN_PART = { text: "SMS text", voice: "Voice text" };
// The GSM 03.38 alphabet: an SMS of only these holds 160 characters (153 per part when
// split), the ones after | counting twice; any other character makes it 70 (67).
const GSM = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM_TWICE = "^{}\\[~]|€";

function smsParts(text) {
  const gsm = [...text].every((c) => GSM.includes(c) || GSM_TWICE.includes(c));
  const length = gsm ? [...text].reduce((n, c) => n + (GSM_TWICE.includes(c) ? 2 : 1), 0) : text.length;
  const [single, part] = gsm ? [160, 153] : [70, 67];
  return { length, parts: length <= single ? 1 : Math.ceil(length / part) };
}

export function createTemplates({ report, onSent }) {
  const choice = $("#template-choice");
  // family: "upe" or "guardian"; entries: {key, label, id?, saved: {parts, from, disabled}};
  // drafts: key -> the unsaved edit of that template.
  const state = { family: null, provider: null, entries: [], drafts: new Map(), seq: 0, timer: null };

  const current = () => state.entries.find((entry) => entry.key === choice.value);
  const edited = (entry) => state.drafts.get(entry.key) || entry.saved;
  const dirty = (entry) => state.drafts.has(entry.key);

  async function use(provider) {
    const family = provider.startsWith("upe:") ? "upe" : "guardian";
    state.provider = provider;
    if (family === state.family) {
      showTest();
      return;
    }
    state.family = family;
    state.drafts.clear();
    await load();
  }

  async function load() {
    try {
      if (state.family === "upe") {
        const { data } = await api("GET", "/branding/phone/templates");
        state.entries = data.templates.map(tenantLevel).sort((a, b) => TYPES.indexOf(a.key) - TYPES.indexOf(b.key));
      } else {
        const { data } = await api("GET", "/guardian/factors/phone/templates");
        state.entries = GUARDIAN.map((t) => ({ ...t, saved: { parts: { message: data[t.key] } } }));
      }
    } catch (error) {
      report(error);
      return;
    }
    $("#templates-help").textContent = state.family === "upe"
      ? "The tenant-level templates: a type without one of its own sends the default."
      : "The Guardian factor's two messages; each serves SMS and voice (branch on {{ message_type }}).";
    show($("#template-upe"), state.family === "upe");
    const keep = choice.value;
    fill(choice, ...state.entries.map((entry) => el("option", { value: entry.key }, optionLabel(entry))));
    if (state.entries.some((entry) => entry.key === keep)) choice.value = keep;
    showTemplate();
  }

  function tenantLevel(template) {
    const body = template.content.body || {};
    return {
      key: template.type, label: template.type, id: template.id,
      saved: { parts: { text: body.text || "", voice: body.voice || "" }, from: template.content.from || "", disabled: template.disabled },
    };
  }

  function optionLabel(entry) {
    const isDefault = state.family === "upe" ? !entry.id : entry.saved.parts.message === boot.guardianDefaults[entry.key];
    return `${entry.label}${isDefault ? " (default)" : ""}${dirty(entry) ? " *" : ""}`;
  }

  // The editor for the chosen template: its draft if it has one, else what is saved.
  function showTemplate() {
    const entry = current();
    if (!entry) return;
    const draft = edited(entry);
    fill($("#template-bodies"), ...PARTS[state.family].map(([part, label]) => el("div", { class: "template-part" },
      el("label", { for: `template-part-${part}` }, label),
      el("textarea", { id: `template-part-${part}`, rows: 4, spellcheck: "false", "data-part": part, oninput: changed },
        draft.parts[part]))));
    if (state.family === "upe") {
      $("#template-from").value = draft.from;
      $("#template-disabled").checked = draft.disabled;
    }
    showState();
    preview();
  }

  function readForm() {
    const parts = {};
    for (const area of document.querySelectorAll("#template-bodies textarea")) parts[area.dataset.part] = area.value;
    return state.family === "upe" ? { parts, from: $("#template-from").value.trim(), disabled: $("#template-disabled").checked } : { parts };
  }

  function changed() {
    const entry = current();
    const draft = readForm();
    if (JSON.stringify(draft) === JSON.stringify(entry.saved)) state.drafts.delete(entry.key);
    else state.drafts.set(entry.key, draft);
    showState();
    clearTimeout(state.timer);
    state.timer = setTimeout(preview, PREVIEW_DELAY_MS);
  }

  function showState() {
    const entry = current();
    const said = dirty(entry) ? "Unsaved changes" : "Saved";
    if ($("#template-state").textContent !== said) $("#template-state").textContent = said; // a status is read out on change
    $("#template-state").className = dirty(entry) ? "state unsaved" : "state";
    choice.selectedOptions[0].textContent = optionLabel(entry);
    const write = state.family === "upe" ? (entry.id ? "update:phone_templates" : "create:phone_templates") : "update:guardian_factors";
    for (const id of ["#template-save", "#template-reset"]) {
      $(id).disabled = !can(write);
      $(id).title = can(write) ? "" : `Your token lacks ${write}`;
    }
    showTest();
  }

  // What the preview asks the engine to render: both bodies, or the one Guardian body as
  // both an SMS and a call. Empty bodies are left out (the API takes none).
  function previewBody(parts) {
    const body = state.family === "upe" ? { ...parts } : { text: parts.message, voice: parts.message };
    for (const [part, text] of Object.entries(body)) if (!text.trim()) delete body[part];
    return body;
  }

  async function preview() {
    clearTimeout(state.timer);
    const seq = ++state.seq;
    const body = previewBody(readForm().parts);
    if (!Object.keys(body).length) {
      showPreview({}, [], null);
      return;
    }
    try {
      const { data } = await api("POST", "/branding/phone/template-preview", { content: { body } });
      if (seq === state.seq) showPreview(data.body, data.problems, data.sample); // else a newer one is coming
    } catch (error) {
      if (seq === state.seq) $("#preview-note").textContent = `not updated: ${error.message}`;
    }
  }

  function showPreview(body, problems, sample) {
    for (const part of ["text", "voice"]) {
      const shown = body[part];
      $(`#preview-${part}`).textContent = shown === undefined ? "" : shown === null ? "(not rendered: see the problems)" : shown;
      $(`#preview-${part}`).classList.toggle("muted", shown === null || shown === undefined);
    }
    const sms = typeof body.text === "string" ? smsParts(body.text) : null;
    $("#preview-text-count").textContent = sms ? `${sms.length} characters, ${sms.parts} SMS${sms.parts > 1 ? " parts" : ""}` : "";
    // A Guardian body is rendered twice (SMS, call): the same mistake is shown once.
    const lines = [...new Set(problems.map((line) => line.replace(/^content\/body\/(text|voice): /,
      (_, part) => (state.family === "upe" ? `${SHOWN_PART[part]}: ` : "Message: "))))];
    fill($("#template-problems"), ...lines.map((line) => el("li", {}, line)));
    show($("#template-problems"), lines.length > 0);
    $("#preview-note").textContent = sample ? `with code ${sample.code}, user ${sample.user.name}, `
      + (sample.friendly_name ? `tenant name ${sample.friendly_name}` : "no tenant friendly_name set") : "";
  }

  async function save() {
    const entry = current();
    const draft = edited(entry);
    try {
      if (state.family === "upe") {
        const content = { from: draft.from, body: draft.parts };
        const { data } = entry.id
          ? await api("PATCH", `/branding/phone/templates/${encodeURIComponent(entry.id)}`, { disabled: draft.disabled, content })
          : await api("POST", "/branding/phone/templates", { type: entry.key, disabled: draft.disabled, content });
        Object.assign(entry, tenantLevel(data));
      } else {
        await saveGuardian(entry, draft.parts.message);
      }
    } catch (error) {
      report(error);
      return;
    }
    state.drafts.delete(entry.key);
    report(null);
    toast(`Saved ${entry.label}`);
    showTemplate();
  }

  async function saveGuardian(entry, message) {
    const both = Object.fromEntries(state.entries.map((e) => [e.key, e.saved.parts.message]));
    const { data } = await api("PUT", "/guardian/factors/phone/templates", { ...both, [entry.key]: message });
    for (const e of state.entries) e.saved = { parts: { message: data[e.key] } };
  }

  async function reset() {
    const entry = current();
    if (!confirm(`Replace ${entry.label} with its default text?`)) return;
    try {
      if (state.family === "guardian") {
        await saveGuardian(entry, boot.guardianDefaults[entry.key]);
      } else if (entry.id) {
        const { data } = await api("PATCH", `/branding/phone/templates/${encodeURIComponent(entry.id)}/reset`, {});
        Object.assign(entry, tenantLevel(data));
      } // a default (no id) is its default already: only the draft goes
    } catch (error) {
      report(error);
      return;
    }
    state.drafts.delete(entry.key);
    report(null);
    toast(`${entry.label} is back to its default text`);
    showTemplate();
  }

  // Send test: what it needs, and why it cannot when it cannot.
  function showTest() {
    const entry = current();
    if (!entry) return;
    const scope = state.family === "upe" ? "create:phone_templates" : "send:phone_messages";
    const why = !can(scope) ? `Your token lacks ${scope}.`
      : dirty(entry) ? "Save first: a test sends the saved template."
        : state.family === "upe" && state.provider === "upe:none" ? "Configure a tenant-level provider first."
          : state.family === "upe" && !entry.id ? "Save this template first: a test sends a template of the tenant's own." : "";
    $("#test-send").disabled = Boolean(why);
    $("#test-send").title = why;
    $("#test-help").textContent = why || (state.family === "upe"
      ? "Through the tenant-level provider; a test is not logged."
      : "A real delivery with a random code to a test user (one of its messages this hour), logged below.");
  }

  async function sendTest(event) {
    event.preventDefault();
    const entry = current();
    const to = $("#test-recipient").value.trim();
    const type = $("#test-type").value;
    try {
      if (state.family === "upe") {
        await api("POST", `/branding/phone/templates/${encodeURIComponent(entry.id)}/try`,
          { to, delivery_method: type === "voice" ? "voice" : "text" });
        toast("Test sent for processing");
      } else {
        const { data } = await api("POST", "/guardian/factors/phone/deliveries", {
          recipient: to.startsWith("+") ? to : `+${to}`, user_id: "hookengine-ui|phone-test", message_type: type,
          action: GUARDIAN.find((t) => t.key === entry.key).action, code: randomCode(), ip: "127.0.0.1",
          user_agent: navigator.userAgent.slice(0, 1024),
        });
        toast(`Sent by ${data.provider}; ${data.rate_limit.remaining} more for the test user this hour`);
      }
      report(null);
    } catch (error) {
      report(error);
    }
    onSent(); // a refused delivery is logged too
  }

  choice.addEventListener("change", showTemplate);
  $("#template-from").addEventListener("input", changed);
  $("#template-disabled").addEventListener("change", changed);
  $("#template-save").addEventListener("click", save);
  $("#template-reset").addEventListener("click", reset);
  $("#test-form").addEventListener("submit", sendTest);
  window.addEventListener("beforeunload", (event) => {
    if (state.drafts.size) event.preventDefault(); // the browser asks before dropping edits
  });
  return { use, refresh: preview };
}

function randomCode() {
  return String(crypto.getRandomValues(new Uint32Array(1))[0] % 1e6).padStart(6, "0");
}
