// File contents to and from a server's node: the Panel signs a URL on the
// node's Agent (`POST …/files/upload` or `…/files/download`) and the bytes
// go straight between the browser and the Agent, never through the Panel
// (the page's Content-Security-Policy lets it connect to the Agents'
// origins; the Agents answer CORS for the Panel's).
//
// Uploads of at most CHUNK_BYTES go in one `PUT`. Larger ones go in
// chunks: `PATCH` with `Upload-Offset`, the last with `Upload-Complete:
// ?1`. After a failed chunk (the connection dropped, the node restarted,
// the grant expired) the upload asks the Agent with `HEAD` how much
// arrived and goes on from there, with a fresh grant when the old one
// expired. The Agent stages an upload by server, path and user, so bytes
// left staged by another upload of the same path are never resumed: only
// an upload this browser tab started (remembered in sessionStorage with
// the file's size and time) is; any other starts over with a `PUT`.
//
// XMLHttpRequest, not fetch: only it reports upload progress.

import { ApiError, post, seg } from './api.js';

/** Uploads larger than this go in chunks of this size. */
export const CHUNK_BYTES = 8 * 1024 * 1024;
/** Failed chunks in a row before an upload gives up. */
const ATTEMPTS = 5;
/** The Agent's refusals worth another try after asking where it stands. */
const RETRYABLE = new Set(['network', 'offset-mismatch', 'invalid-grant', 'no-grant-key', 'io']);

/** An Agent's error answer ({status, code, detail}) as an ApiError. */
function agentError(xhr) {
  let body = null;
  try {
    body = JSON.parse(xhr.responseText);
  } catch {
    body = null;
  }
  return problemOf(xhr.status, body);
}

function problemOf(status, body) {
  return new ApiError(status, {
    code: (body && body.code) || `http-${status}`,
    title: 'Refused by the node',
    detail: (body && body.detail) || `the node answered HTTP ${status}`,
  });
}

function unreachable(url) {
  let origin = url;
  try {
    origin = new URL(url).origin;
  } catch {
    // Shown as it is.
  }
  return new ApiError(0, {
    code: 'network',
    title: 'Node unreachable',
    detail: `the browser could not reach the server's node at ${origin}`,
  });
}

/**
 * One request: resolves to the finished XMLHttpRequest (any status),
 * rejects with an ApiError (`network`, or `cancelled` after `signal`
 * aborts).
 */
export function send(method, url, { body = null, headers = {}, onProgress = null, signal = null, responseType = '' } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    xhr.responseType = responseType;
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
    if (onProgress) xhr.upload.addEventListener('progress', (event) => onProgress(event.loaded));
    xhr.addEventListener('load', () => resolve(xhr));
    xhr.addEventListener('error', () => reject(unreachable(url)));
    xhr.addEventListener('abort', () => reject(new ApiError(0, { code: 'cancelled', title: 'Cancelled', detail: 'the upload was cancelled' })));
    if (signal) {
      if (signal.aborted) {
        reject(new ApiError(0, { code: 'cancelled', title: 'Cancelled', detail: 'the upload was cancelled' }));
        return;
      }
      signal.addEventListener('abort', () => xhr.abort(), { once: true });
    }
    xhr.send(body);
  });
}

/** A signed URL to download `path` of server `serverId`. */
export async function downloadUrl(serverId, path) {
  return (await post(`/servers/${seg(serverId)}/files/download`, { path })).url;
}

/** The bytes of `path` (a Uint8Array), read from the node. */
export async function readBytes(serverId, path) {
  const url = await downloadUrl(serverId, path);
  const xhr = await send('GET', url, { responseType: 'arraybuffer' });
  if (xhr.status !== 200) {
    // The error body came as bytes too.
    let body = null;
    try {
      body = JSON.parse(new TextDecoder().decode(xhr.response));
    } catch {
      body = null;
    }
    throw problemOf(xhr.status, body);
  }
  return new Uint8Array(xhr.response);
}

/** Starts a browser download of `path` (the Agent answers as an attachment). */
export async function download(serverId, path) {
  const url = await downloadUrl(serverId, path);
  const link = document.createElement('a');
  link.href = url;
  link.download = path.split('/').pop();
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
}

function stagedKey(serverId, path) {
  return `cap.upload:${serverId}:${path}`;
}

function fingerprint(file) {
  return `${file.size}:${file.lastModified || 0}:${file.name || ''}`;
}

/** How many bytes of the upload the Agent holds (`HEAD`). */
async function staged(url, signal) {
  const xhr = await send('HEAD', url, { signal });
  if (xhr.status !== 204 && xhr.status !== 200) throw agentError(xhr);
  const offset = Number(xhr.getResponseHeader('Upload-Offset'));
  return Number.isFinite(offset) ? offset : 0;
}

/** The entry the Agent answers a finished upload with. */
function finished(xhr) {
  try {
    return JSON.parse(xhr.responseText);
  } catch {
    return null;
  }
}

const pause = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

/**
 * Uploads `file` (a Blob or File) to `path` of server `serverId`.
 * `onProgress(sentBytes)` follows it; `signal` (an AbortSignal) cancels.
 * Resolves to the file's entry; rejects with an ApiError.
 */
export async function upload(serverId, path, file, { onProgress = () => {}, signal = null } = {}) {
  const grant = async () => (await post(`/servers/${seg(serverId)}/files/upload`, { path, size: file.size })).url;
  let url = await grant();
  const whole = async () => {
    const xhr = await send('PUT', url, {
      body: file, headers: { 'Content-Type': 'application/octet-stream' }, onProgress, signal,
    });
    if (xhr.status !== 201 && xhr.status !== 200) throw agentError(xhr);
    onProgress(file.size);
    return finished(xhr);
  };
  if (file.size <= CHUNK_BYTES) return whole();

  const key = stagedKey(serverId, path);
  let offset = await staged(url, signal);
  if (offset > 0 && (sessionStorage.getItem(key) !== fingerprint(file) || offset > file.size)) {
    // Bytes of another upload of this path: a PUT starts over.
    sessionStorage.removeItem(key);
    return whole();
  }
  sessionStorage.setItem(key, fingerprint(file));
  onProgress(offset);
  let failures = 0;
  for (;;) {
    try {
      if (failures > 0) {
        // Where does the Agent stand? A fresh grant first if it expired.
        offset = await staged(url, signal);
        onProgress(offset);
      }
      const end = Math.min(offset + CHUNK_BYTES, file.size);
      const last = end === file.size;
      const headers = { 'Content-Type': 'application/octet-stream', 'Upload-Offset': String(offset) };
      if (last) headers['Upload-Complete'] = '?1';
      const start = offset;
      const xhr = await send('PATCH', url, {
        body: file.slice(start, end), headers, signal, onProgress: (n) => onProgress(start + n),
      });
      if (last && (xhr.status === 201 || xhr.status === 200)) {
        sessionStorage.removeItem(key);
        onProgress(file.size);
        return finished(xhr);
      }
      if (!last && xhr.status === 204) {
        const told = Number(xhr.getResponseHeader('Upload-Offset'));
        offset = Number.isFinite(told) && told > 0 ? told : end;
        failures = 0;
        continue;
      }
      throw agentError(xhr);
    } catch (error) {
      const code = error instanceof ApiError ? error.code : 'network';
      const retry = RETRYABLE.has(code) || (error instanceof ApiError && error.status >= 500 && error.status !== 507);
      failures += 1;
      if (!retry || failures >= ATTEMPTS) throw error;
      await pause(250 * 2 ** (failures - 1));
      if (code === 'invalid-grant') url = await grant();
    }
  }
}
