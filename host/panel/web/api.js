// The Panel API client: JSON in and out, problem documents as ApiError,
// access and refresh tokens in sessionStorage, one refresh at a time on a
// 401 (refresh tokens are single use: two concurrent refreshes with the
// same token would revoke the session).

const KEY = 'cap.session';

/** An error answer of the API, carrying its problem document. */
export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
    this.code = this.problem.code || `http-${status}`;
    /** Per-field problems: [{in, field, message}]. */
    this.fields = Array.isArray(this.problem.errors) ? this.problem.errors : [];
  }
}

/** The stored session: {access, refresh, user} or null. */
export function session() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY) || 'null');
  } catch {
    return null;
  }
}

/** Stores the tokens of a login or refresh answer. */
export function saveTokens(answer) {
  sessionStorage.setItem(KEY, JSON.stringify({
    access: answer.access_token,
    refresh: answer.refresh_token,
    user: answer.user,
  }));
}

/** Forgets the session. */
export function clearSession() {
  sessionStorage.removeItem(KEY);
}

let signedOut = () => {};
/** Called when the session ends (refresh refused). */
export function onSignedOut(callback) {
  signedOut = callback;
}

let refreshing = null;
async function refresh() {
  if (!refreshing) {
    refreshing = (async () => {
      const current = session();
      if (!current || !current.refresh) return false;
      const res = await fetch('/api/v1/auth/refresh', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({ refresh_token: current.refresh }),
      });
      if (!res.ok) return false;
      saveTokens(await res.json());
      return true;
    })().finally(() => { setTimeout(() => { refreshing = null; }, 0); });
  }
  return refreshing;
}

/**
 * Calls the API. `body` is sent as JSON unless it is a Blob/ArrayBuffer
 * (sent as application/octet-stream). Resolves to the parsed JSON (or
 * null for 204), or with `options.file` to `{blob, filename}` (the name
 * from Content-Disposition); rejects with ApiError.
 */
export async function api(method, path, body, options = {}) {
  const { auth = true, retried = false, file = false } = options;
  const headers = { Accept: 'application/json' };
  let payload;
  if (body instanceof Blob || body instanceof ArrayBuffer) {
    headers['Content-Type'] = 'application/octet-stream';
    payload = body;
  } else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const current = session();
  if (auth && current) headers.Authorization = `Bearer ${current.access}`;
  const res = await fetch(`/api/v1${path}`, { method, headers, body: payload });
  if (res.status === 401 && auth && current) {
    if (!retried && await refresh()) {
      return api(method, path, body, { ...options, retried: true });
    }
    clearSession();
    signedOut();
  }
  if (file && res.ok) {
    const disposition = res.headers.get('content-disposition') || '';
    const name = disposition.match(/filename="([^"]+)"/);
    return { blob: await res.blob(), filename: name ? name[1] : 'download' };
  }
  if (res.status === 204) return null;
  const type = res.headers.get('content-type') || '';
  const data = type.includes('json') ? await res.json().catch(() => null) : null;
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body === undefined ? {} : body);
export const patch = (path, body) => api('PATCH', path, body);
export const put = (path, body) => api('PUT', path, body);
export const del = (path) => api('DELETE', path);
/** Downloads a file the API answers: `{blob, filename}`. */
export const download = (path) => api('GET', path, undefined, { file: true });

/** Path segment escaping. */
export const seg = (s) => encodeURIComponent(s);
