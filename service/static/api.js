// Calls to the service, on this page's origin only, with the API key of this tab (sessionStorage) if any.

const KEY_STORAGE = "simsearch.apiKey";

// set by the page: what to do when the service answers 401 (the reason, and the key that was sent)
export const auth = { onUnauthorized: (reason, sent) => {} };

export class ApiError extends Error {
  constructor(status, message, retryAfter) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

export function storedKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE);
  } catch {
    return null;
  }
}

export async function api(path, { method = "GET", body, signal } = {}) {
  const headers = { Accept: "application/json" };
  const key = storedKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, `the service did not answer (${err.message})`);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const message =
      (data && typeof data.message === "string" && data.message) ||
      (data && typeof data.detail === "string" && data.detail) ||
      text.slice(0, 300) ||
      response.statusText ||
      "no explanation given";
    const error = new ApiError(response.status, message, response.headers.get("Retry-After"));
    if (response.status === 401) auth.onUnauthorized(message, key);
    throw error;
  }
  return data;
}


export function saveKey(key) {
  try {
    sessionStorage.setItem(KEY_STORAGE, key);
  } catch {
    /* a tab without storage keeps nothing */
  }
}

export function forgetKey() {
  try {
    sessionStorage.removeItem(KEY_STORAGE);
  } catch {
    /* storage off: nothing was kept */
  }
}
