// The one way pages talk to the engine: /api/v2 with the session cookie, every change
// carrying the page's CSRF token, every failure turned into one Error with the API's message.

const csrfMeta = document.querySelector('meta[name="csrf-token"]');
const bootElement = document.getElementById("boot");

// What the page shell says about this page and session (scopes, hook id...).
export const boot = bootElement ? JSON.parse(bootElement.textContent) : { scopes: [] };

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
    this.errors = this.body.errors || [];
  }
}

export function signInAgain() {
  const next = encodeURIComponent(location.pathname + location.search);
  location.assign(`/ui/sign-in?problem=${encodeURIComponent("Your session has ended: sign in again.")}&next=${next}`);
}

// method, path under /api/v2, optional JSON body, optional headers -> {data, response}.
export async function api(method, path, body, headers = {}) {
  const init = { method, headers: { ...headers }, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (method !== "GET" && csrfMeta) init.headers["X-CSRF-Token"] = csrfMeta.content;
  let response;
  try {
    response = await fetch(`/api/v2${path}`, init);
  } catch (error) {
    throw new ApiError(0, { message: `The engine did not answer (${error.message}); is it running?` });
  }
  if (response.status === 401) signInAgain();
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { message: text.slice(0, 200) };
    }
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return { data, response };
}

export const can = (scope) => boot.scopes.includes(scope);

// Disable every control whose data-scope names scopes the session holds none of.
export function applyScopes(root = document) {
  for (const element of root.querySelectorAll("[data-scope]")) {
    const wanted = element.dataset.scope.split(" ");
    if (!wanted.some(can)) {
      element.disabled = true;
      element.title = `Your token lacks ${wanted.join(" or ")}`;
    }
  }
}
