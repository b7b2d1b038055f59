// The file manager of a server (`#/servers/<id>/files?path=/dir`):
// breadcrumbs, the directory's entries (directories first, with size,
// mode and time), multi-select with bulk delete and archive, per-entry
// actions in a dialog (open, edit, download, rename, copy, permissions,
// extract, delete), new folders and files, pulls from a URL, and uploads
// by file input or drag and drop, with a progress bar each; and, when the
// server's node serves SFTP, the address to sign in to it with.
//
// What shows follows the caller's permissions on the server (`file.read`
// for the tab at all; `file.read-content`, `file.create`, `file.update`,
// `file.delete`, `file.archive` for the actions). Every refusal shows in
// words that name the problem (`showProblem`), with the Panel's or the
// node's detail after it.
//
// Uploads outlive the page: a folder change or a visit elsewhere re-draws
// the page, so the upload list of each server lives at module level and
// the page shows it again.

import { ApiError, get, post, seg } from './api.js';
import { h, add, replace, field, setFieldError, alertBox, bytes, toast, modal, confirmModal } from './dom.js';
import { showError, form } from './pages.js';
import { upload, download } from './transfer.js';

// ------------------------------------------------------------------ paths

/** `path` with one leading slash, no empty segments and no trailing slash. */
export function cleanPath(path) {
  return `/${String(path || '').split('/').filter(Boolean).join('/')}`;
}

/** The path of `name` in directory `dir`. */
export function joinPath(dir, name) {
  return cleanPath(`${dir}/${name}`);
}

/** The directory `path` is in. */
export function parentOf(path) {
  const names = cleanPath(path).split('/').filter(Boolean);
  return cleanPath(names.slice(0, -1).join('/'));
}

/** The last segment of `path`. */
export function baseName(path) {
  return cleanPath(path).split('/').pop();
}

/** What the user typed as a name or path, from directory `dir`. */
function resolvePath(dir, typed) {
  const value = typed.trim();
  return value.startsWith('/') ? cleanPath(value) : joinPath(dir, value);
}

/** The query of the page's hash (`#/servers/x/files?path=…`). */
export function hashQuery() {
  return new URLSearchParams(location.hash.split('?')[1] || '');
}

/** The link to directory `dir` of server `id`. */
export function filesHref(id, dir = '/') {
  const path = cleanPath(dir);
  return `#/servers/${seg(id)}/files${path === '/' ? '' : `?path=${encodeURIComponent(path)}`}`;
}

/** The link to the editor of `path` (`creating`: a file not there yet). */
export function editorHref(id, path, creating = false) {
  return `#/servers/${seg(id)}/files/edit?path=${encodeURIComponent(cleanPath(path))}${creating ? '&new=1' : ''}`;
}

// ------------------------------------------------------------------ kinds

/** Names of text files the editor opens whatever their media type says. */
const TEXT_EXTENSIONS = new Set([
  'txt', 'log', 'md', 'cfg', 'conf', 'config', 'ini', 'properties', 'yml', 'yaml', 'toml',
  'json', 'json5', 'jsonc', 'xml', 'csv', 'tsv', 'env', 'sh', 'bash', 'bat', 'cmd', 'ps1',
  'lua', 'js', 'mjs', 'ts', 'py', 'rb', 'php', 'sql', 'html', 'htm', 'css', 'mcmeta',
  'mcfunction', 'lang', 'secret', 'list', 'whitelist', 'ban', 'vdf', 'acf', 'cs', 'java',
  'gradle', 'kts', 'ks', 'nut', 'sk', 'hjson', 'rules', 'motd', 'cvars',
]);
/** Non-`text/` media types of text files. */
const TEXT_MIMES = new Set([
  'application/json', 'application/xml', 'application/yaml', 'application/x-yaml',
  'application/toml', 'application/javascript', 'application/x-sh', 'application/x-shellscript',
  'application/sql', 'application/x-php', 'image/svg+xml',
]);
/** The largest file the editor opens (bigger ones are downloaded). */
export const MAX_EDIT_BYTES = 4 * 1024 * 1024;

function extension(name) {
  const dot = name.lastIndexOf('.');
  return dot > 0 ? name.slice(dot + 1).toLowerCase() : '';
}

/** Whether the editor opens `entry`. */
export function isEditable(entry) {
  if (entry.kind !== 'file') return false;
  const mime = (entry.mime || '').split(';')[0].trim();
  const ext = extension(entry.name);
  return mime.startsWith('text/') || TEXT_MIMES.has(mime) || TEXT_EXTENSIONS.has(ext)
    || (!ext && entry.size === 0) || /^\.[a-z0-9_-]+$/i.test(entry.name);
}

const ARCHIVE_MIMES = new Set([
  'application/zip', 'application/gzip', 'application/x-gzip', 'application/x-tar',
  'application/x-xz', 'application/zstd', 'application/x-zstd', 'application/x-7z-compressed',
]);

/** Whether `entry` is an archive the node extracts. */
export function isArchive(entry) {
  return entry.kind === 'file' && (ARCHIVE_MIMES.has(entry.mime || '')
    || /\.(zip|tar|tgz|tar\.gz|txz|tar\.xz|tzst|tar\.zst|7z)$/i.test(entry.name));
}

/** Permission bits as `chmod` writes them (`644`). */
export function octal(mode) {
  return ((mode || 0) & 0o777).toString(8).padStart(3, '0');
}

/** Permission bits as `ls` shows them (`rw-r--r--`). */
function symbolic(mode) {
  return [6, 3, 0].map((shift) => {
    const bits = ((mode || 0) >> shift) & 7;
    return `${bits & 4 ? 'r' : '-'}${bits & 2 ? 'w' : '-'}${bits & 1 ? 'x' : '-'}`;
  }).join('');
}

function modified(ms) {
  if (typeof ms !== 'number' || !ms) return '—';
  return new Date(ms).toLocaleString();
}

// --------------------------------------------------------------- problems

/**
 * The refusals of the file routes and of the nodes' transfer endpoints
 * (which spell some codes shorter), in words: [title, what it means].
 */
const PROBLEMS = {
  'file-exists': ['Already exists', 'Something with that name already exists here; choose another name.'],
  'already-exists': ['Already exists', 'Something with that name already exists here; choose another name.'],
  'file-not-found': ['Not found', 'It is not there (any more): it may have been moved or deleted.'],
  'not-found': ['Not found', 'It is not there (any more): it may have been moved or deleted.'],
  'file-denied': ['Protected file', 'The game type protects this path: it cannot be read or changed here.'],
  denied: ['Protected file', 'The game type protects this path: it cannot be read or changed here.'],
  'file-outside-server': ['Outside the server', 'That path leads out of the server\'s folder.'],
  'outside-server': ['Outside the server', 'That path leads out of the server\'s folder.'],
  'file-invalid-path': ['Invalid name', 'Names may not be empty, hold NUL or be longer than the file system allows.'],
  'invalid-path': ['Invalid name', 'Names may not be empty, hold NUL or be longer than the file system allows.'],
  'not-a-directory': ['Not a folder', 'A folder was expected there, but it is a file.'],
  'is-a-directory': ['Is a folder', 'A file was expected there, but it is a folder.'],
  'special-file': ['Special file', 'Devices, pipes and sockets are never opened.'],
  'disk-limit': ['Server full', 'The server is full: this would take it over its disk limit. Delete files, or ask an administrator for more space.'],
  'files-read-only': ['Read-only', 'The server\'s files are read-only (the server is suspended).'],
  'read-only': ['Read-only', 'The server\'s files are read-only (the server is suspended).'],
  'bad-archive': ['Unreadable archive', 'That is not a zip, tar, tar.gz, tar.xz, tar.zst or 7z archive, or it is damaged.'],
  'archive-refused': ['Archive refused', 'It is too large, has too many entries, is compressed too much, or has entries that would land outside the folder.'],
  'pull-refused': ['URL refused', 'Only http and https URLs on public addresses can be downloaded, and only if this Panel allows pulls.'],
  'pull-failed': ['Download failed', 'The URL could not be downloaded.'],
  'invalid-mode': ['Invalid mode', 'A mode is three octal digits, such as 644 or 755.'],
  'node-offline': ['Node offline', 'The server\'s node is not connected; try again once it is back.'],
  'node-timeout': ['Node too slow', 'The server\'s node did not answer in time; try again.'],
  'node-busy': ['Node busy', 'The server\'s node has too many file requests waiting; try again in a moment.'],
  'node-no-transfers': ['No transfers', 'The server\'s node does not serve file transfers (its Agent has no public URL for them).'],
  'node-file-system': ['Node file-system error', 'The node\'s file system failed.'],
  io: ['Node file-system error', 'The node\'s file system failed.'],
  'server-not-on-node': ['Not on a node', 'The server is not on a node yet.'],
  forbidden: ['Not allowed', 'You may not do this on this server.'],
  'hook-denied': ['Denied by a plugin', 'A plugin of this Panel refused it.'],
  'invalid-grant': ['Link expired', 'The transfer link expired or is not valid; try again.'],
  'no-grant-key': ['Node connecting', 'The node has not finished connecting to the Panel; try again in a moment.'],
  'offset-mismatch': ['Upload out of step', 'The node holds a different part of this upload; try again.'],
  network: ['Node unreachable', 'The browser could not reach the server\'s node. Its file-transfer address must be reachable from your browser.'],
  cancelled: ['Cancelled', 'The upload was cancelled.'],
  'rate-limited': ['Too many requests', 'Wait a moment and try again.'],
  unencodable: ['Cannot save in this encoding', ''],
};

/**
 * Shows `error` in `box`: a file refusal (or one of `more`, another
 * module's refusals in the same form) in words with its detail, field
 * problems under their fields (`fields`: name → field), anything else
 * as `showError` does. `null` hides the box.
 */
export function showProblem(box, error, fields = {}, more = {}) {
  const words = error && error.code ? (more[error.code] || PROBLEMS[error.code]) : null;
  if (!words || (error instanceof ApiError && error.fields.length)) {
    showError(box, error, fields);
    return;
  }
  for (const f of Object.values(fields)) setFieldError(f, '');
  const detail = error instanceof ApiError ? (error.problem.detail || '') : error.message;
  const explained = words[1]
    ? [words[1], detail ? h('span', { class: 'problem-detail' }, ` (${detail})`) : null]
    : h('span', { class: 'problem-detail' }, detail);
  replace(box, alertBox([h('strong', null, words[0]), ': ', explained], 'danger', { 'data-code': error.code }));
  box.hidden = false;
}

// --------------------------------------------------------- page furniture

/**
 * The server page's sections as tabs, when there is more than one: the
 * overview, the files (`file.read`), the backups (`backup.read`), the
 * databases (`database.read`) and the network (`allocation.read`).
 */
export function serverTabs(id, can, current) {
  const tabs = [['overview', `#/servers/${seg(id)}`, 'Overview']];
  if (can('file.read')) tabs.push(['files', filesHref(id, '/'), 'Files']);
  if (can('backup.read')) tabs.push(['backups', `#/servers/${seg(id)}/backups`, 'Backups']);
  if (can('database.read')) tabs.push(['databases', `#/servers/${seg(id)}/databases`, 'Databases']);
  if (can('allocation.read')) tabs.push(['network', `#/servers/${seg(id)}/network`, 'Network']);
  if (tabs.length < 2) return null;
  return h('nav', { class: 'tabs', 'aria-label': 'Server sections' }, tabs.map(([key, href, label]) => h('a', {
    href, id: `tab-${key}`, class: 'tab', 'aria-current': current === key ? 'page' : null,
  }, label)));
}

/**
 * Links to each folder of `dir`; `file` names a file in it, shown last.
 * None for the top folder itself.
 */
export function breadcrumbs(id, dir, file = null) {
  const names = cleanPath(dir).split('/').filter(Boolean);
  // At the top the heading says it all.
  if (!names.length && !file) return null;
  const crumb = (label, path, last) => h('li', null, last
    ? h('span', { 'aria-current': 'location' }, label)
    : h('a', { href: filesHref(id, path) }, label));
  const items = [crumb('Files', '/', !names.length && !file)];
  names.forEach((name, i) => {
    items.push(crumb(name, `/${names.slice(0, i + 1).join('/')}`, i === names.length - 1 && !file));
  });
  if (file) items.push(crumb(file, null, true));
  return h('nav', { class: 'breadcrumbs', 'aria-label': 'Folder', id: 'files-breadcrumbs' }, h('ol', null, items));
}

/** The page head: the server's name, the tabs and the breadcrumbs. */
export function filesHead(server, can, dir, file = null) {
  return [
    h('div', { class: 'page-head' }, h('h1', null, server.name)),
    serverTabs(server.id, can, 'files'),
    breadcrumbs(server.id, dir, file),
  ];
}

// ------------------------------------------------------------------- SFTP

/**
 * The SFTP address of `server` for the signed-in user, or null when its
 * node serves no SFTP (its `sftp` field null or absent). The username is
 * the Panel's (`<user>.<last 8 hex digits of the id>`, as the Agent's
 * SFTP server expects it); an IPv6 host goes in brackets.
 */
export function sftpAddress(server) {
  const s = server.sftp;
  if (!s || !s.host || !s.port || !s.username) return null;
  const user = s.username;
  const host = s.host.includes(':') && !s.host.startsWith('[') ? `[${s.host}]` : s.host;
  return `sftp://${encodeURIComponent(user)}@${host}:${s.port}`;
}

/** Copies `text` to the clipboard; selects `el`'s text when it cannot. */
export async function copyText(text, el) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const range = document.createRange();
    range.selectNodeContents(el);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    try {
      return document.execCommand('copy');
    } catch {
      return false;
    }
  }
}

/** The SFTP box of the files tab, or null (no SFTP, or no `file.sftp`). */
function sftpBox(server, can, me) {
  const address = can('file.sftp') ? sftpAddress(server) : null;
  if (!address) return null;
  const shown = h('code', { id: 'files-sftp-address', class: 'wrap' }, address);
  const copy = h('button', {
    type: 'button', class: 'small', id: 'files-sftp-copy', 'aria-label': 'Copy the SFTP address',
    onclick: async () => {
      const copied = await copyText(address, shown);
      toast(copied ? 'SFTP address copied' : 'Selected: copy it with Ctrl+C', copied ? 'success' : 'info');
    },
  }, 'Copy');
  return h('div', { class: 'sftp-box', id: 'files-sftp' },
    h('p', null, h('strong', null, 'SFTP: '), shown, ' ', copy),
    h('p', { class: 'hint' }, 'Sign in with an SSH key from ', h('a', { href: '#/account' }, 'your account'),
      ', or with your Panel password (not when two-factor authentication is on).'));
}

/** A form in a dialog: fields, an error box, submit and Cancel. */
function dialogForm(id, close, fields, submitLabel, action) {
  const box = h('div', { id: `${id}-error`, class: 'dialog-error', hidden: true });
  const status = h('p', { class: 'muted small', role: 'status', id: `${id}-status` });
  return form({ id }, [
    fields.map((f) => f.row || f),
    box,
    status,
    h('div', { class: 'dialog-actions' },
      h('button', { type: 'submit', class: 'primary', id: `${id}-submit` }, submitLabel),
      h('button', { type: 'button', onclick: close }, 'Cancel')),
  ], (event) => action(box, status, event));
}

// ---------------------------------------------------------------- uploads

/** Per server: the upload list shown on its file pages, and its queue. */
const uploadQueues = new Map();

function uploadsOf(serverId) {
  if (!uploadQueues.has(serverId)) {
    const list = h('ul', { class: 'uploads', id: 'files-uploads', 'aria-label': 'Uploads' });
    const clear = h('button', {
      type: 'button', class: 'small', id: 'files-uploads-clear', hidden: true,
      onclick: () => {
        list.querySelectorAll('li.done, li.failed').forEach((li) => li.remove());
        queue.refreshClear();
      },
    }, 'Clear finished uploads');
    const queue = {
      list, clear, waiting: [], running: false, listeners: new Set(),
      refreshClear() { clear.hidden = !list.querySelector('li.done, li.failed'); },
    };
    uploadQueues.set(serverId, queue);
  }
  return uploadQueues.get(serverId);
}

/** Queues `files` for upload into `dir` of server `serverId`. */
function enqueueUploads(serverId, dir, files) {
  const queue = uploadsOf(serverId);
  for (const file of files) {
    const path = joinPath(dir, file.name);
    const controller = new AbortController();
    const bar = h('progress', { max: String(Math.max(file.size, 1)), value: '0', 'aria-label': `Upload of ${file.name}` });
    const state = h('span', { class: 'upload-state' }, 'waiting');
    const cancel = h('button', {
      type: 'button', class: 'small', 'aria-label': `Cancel the upload of ${file.name}`,
      onclick: () => controller.abort(),
    }, 'Cancel');
    const item = h('li', { class: 'upload', 'data-path': path },
      h('span', { class: 'upload-name' }, path), h('span', { class: 'muted small' }, bytes(file.size)), bar, state, cancel);
    queue.list.append(item);
    queue.waiting.push({ file, path, dir, controller, bar, state, cancel, item });
  }
  runUploads(serverId);
}

async function runUploads(serverId) {
  const queue = uploadsOf(serverId);
  if (queue.running) return;
  queue.running = true;
  try {
    while (queue.waiting.length) {
      const job = queue.waiting.shift();
      if (job.controller.signal.aborted) {
        finishUpload(queue, job, 'failed', 'cancelled');
        continue;
      }
      job.state.textContent = 'uploading';
      try {
        await upload(serverId, job.path, job.file, {
          signal: job.controller.signal,
          onProgress: (sent) => { job.bar.value = Math.min(sent, job.file.size); },
        });
        job.bar.value = Math.max(job.file.size, 1);
        finishUpload(queue, job, 'done', 'uploaded');
      } catch (error) {
        const words = PROBLEMS[error.code];
        finishUpload(queue, job, 'failed', words ? `${words[0]}: ${words[1]}${error.problem && error.problem.detail ? ` (${error.problem.detail})` : ''}` : error.message);
        job.item.dataset.code = error.code || '';
      }
      for (const listener of queue.listeners) listener(job.dir);
    }
  } finally {
    queue.running = false;
  }
}

function finishUpload(queue, job, outcome, text) {
  job.item.classList.add(outcome);
  job.state.textContent = text;
  job.state.setAttribute('role', outcome === 'failed' ? 'alert' : 'status');
  job.cancel.remove();
  queue.refreshClear();
}

// ------------------------------------------------------------------- page

export async function filesPage(ctx, id) {
  const dir = cleanPath(hashQuery().get('path') || '/');
  const server = await get(`/servers/${seg(id)}`);
  const perms = new Set(server.permissions);
  const can = (p) => perms.has(p);
  if (!can('file.read')) {
    return h('section', null, filesHead(server, can, '/'),
      alertBox('You may not see the files of this server.', 'warning', { id: 'files-alert' }));
  }
  const api = (op) => `/servers/${seg(id)}/files/${op}`;
  const alert = h('div', { id: 'files-alert', hidden: true });
  const listBox = h('div', { id: 'file-list' });
  const listHeading = h('h2', { id: 'files-heading', tabindex: '-1' }, dir === '/' ? 'All files' : baseName(dir));
  let entries = [];
  const selected = new Set();

  // The selection bar.
  const selectAll = h('input', { type: 'checkbox', id: 'files-select-all' });
  const count = h('span', { id: 'files-selected-count', 'aria-live': 'polite' }, 'None selected');
  const deleteSelected = can('file.delete') ? h('button', {
    type: 'button', class: 'small danger', id: 'files-delete-selected', disabled: true,
    onclick: () => deleteEntries([...selected]),
  }, 'Delete selected') : null;
  const compressSelected = can('file.archive') ? h('button', {
    type: 'button', class: 'small', id: 'files-compress-selected', disabled: true,
    onclick: () => compressDialog([...selected]),
  }, 'Archive selected…') : null;
  selectAll.addEventListener('change', () => {
    if (selectAll.checked) entries.forEach((e) => selected.add(e.name));
    else selected.clear();
    listBox.querySelectorAll('input.file-select').forEach((c) => { c.checked = selectAll.checked; });
    updateSelection();
  });
  function updateSelection() {
    for (const name of [...selected]) if (!entries.some((e) => e.name === name)) selected.delete(name);
    const n = selected.size;
    count.textContent = n ? `${n} selected` : 'None selected';
    selectAll.checked = n > 0 && n === entries.length;
    selectAll.indeterminate = n > 0 && n < entries.length;
    selectAll.disabled = !entries.length;
    if (deleteSelected) deleteSelected.disabled = !n;
    if (compressSelected) compressSelected.disabled = !n;
  }

  async function load() {
    listBox.setAttribute('aria-busy', 'true');
    try {
      const page = await get(`/servers/${seg(id)}/files?path=${encodeURIComponent(dir)}`);
      entries = page.items;
      showProblem(alert, null);
      replace(listBox, entries.length ? listing() : h('p', { class: 'muted', id: 'files-empty' }, 'This folder is empty.'));
    } catch (error) {
      entries = [];
      replace(listBox);
      showProblem(alert, error);
    } finally {
      listBox.removeAttribute('aria-busy');
      updateSelection();
    }
  }

  function listing() {
    return h('div', { class: 'table-wrap' },
      h('table', { class: 'files', id: 'file-table' },
        h('caption', { class: 'sr-only' }, `Entries of ${dir}`),
        h('thead', null, h('tr', null,
          h('th', { scope: 'col', class: 'select' }, h('span', { class: 'sr-only' }, 'Selected')),
          h('th', { scope: 'col' }, 'Name'),
          h('th', { scope: 'col' }, 'Size'),
          h('th', { scope: 'col' }, 'Mode'),
          h('th', { scope: 'col' }, 'Modified'),
          h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))),
        h('tbody', null, entries.map(row))));
  }

  function row(entry) {
    const check = h('input', {
      type: 'checkbox', class: 'file-select', 'aria-label': `Select ${entry.name}`,
      'data-focus-key': `select:${entry.name}`, checked: selected.has(entry.name),
      onchange: (event) => {
        if (event.target.checked) selected.add(entry.name);
        else selected.delete(entry.name);
        updateSelection();
      },
    });
    return h('tr', { 'data-name': entry.name, 'data-kind': entry.kind },
      h('td', { class: 'select' }, check),
      h('td', { class: 'name' }, nameCell(entry)),
      h('td', { class: 'meta size', 'data-label': 'Size' }, entry.kind === 'directory' ? '—' : bytes(entry.size)),
      h('td', { class: 'meta mode', 'data-label': 'Mode' }, h('code', { title: symbolic(entry.mode) }, octal(entry.mode))),
      h('td', { class: 'meta modified', 'data-label': 'Modified' }, modified(entry.modifiedMs)),
      h('td', { class: 'actions' }, h('button', {
        type: 'button', class: 'small entry-actions', 'aria-haspopup': 'dialog',
        'aria-label': `Actions for ${entry.name}`, 'data-focus-key': `actions:${entry.name}`,
        onclick: (event) => entryDialog(entry, event.currentTarget),
      }, 'Actions')));
  }

  function nameCell(entry) {
    const key = `open:${entry.name}`;
    if (entry.kind === 'directory') {
      return h('a', { href: filesHref(id, entry.path), class: 'file-name dir', 'data-focus-key': key },
        entry.name, h('span', { class: 'sr-only' }, ' (folder)'));
    }
    const tag = entry.kind === 'symlink' ? h('span', { class: 'badge tone-neutral' }, 'link')
      : entry.kind === 'other' ? h('span', { class: 'badge tone-neutral' }, 'special') : null;
    if (entry.kind === 'file' && can('file.read-content') && isEditable(entry) && entry.size <= MAX_EDIT_BYTES) {
      return [h('a', { href: editorHref(id, entry.path), class: 'file-name', 'data-focus-key': key, title: `Edit ${entry.name}` }, entry.name), tag];
    }
    if (entry.kind === 'file' && can('file.read-content')) {
      return [h('button', {
        type: 'button', class: 'link file-name', 'data-focus-key': key, title: `Download ${entry.name}`,
        onclick: () => downloadEntry(entry),
      }, entry.name), tag];
    }
    return [h('span', { class: 'file-name' }, entry.name), ' ', tag];
  }

  async function downloadEntry(entry) {
    try {
      await download(id, entry.path);
    } catch (error) {
      showProblem(alert, error);
    }
  }

  const focusList = () => listHeading.focus();

  // One entry's actions, in a dialog.
  function entryDialog(entry, opener) {
    const then = (fn) => () => {
      current.close();
      fn();
    };
    const actions = [];
    if (entry.kind === 'directory') actions.push(h('a', { class: 'button', href: filesHref(id, entry.path), id: 'entry-open' }, 'Open folder'));
    if (entry.kind === 'file' && can('file.read-content')) {
      if (isEditable(entry) && entry.size <= MAX_EDIT_BYTES) actions.push(h('a', { class: 'button', href: editorHref(id, entry.path), id: 'entry-edit' }, 'Edit'));
      actions.push(h('button', { type: 'button', id: 'entry-download', onclick: then(() => downloadEntry(entry)) }, 'Download'));
    }
    if (can('file.update')) actions.push(h('button', { type: 'button', id: 'entry-rename', onclick: then(() => renameDialog(entry, opener)) }, 'Rename or move…'));
    if (can('file.create')) actions.push(h('button', { type: 'button', id: 'entry-copy', onclick: then(() => copyDialog(entry, opener)) }, 'Copy…'));
    if (can('file.update')) actions.push(h('button', { type: 'button', id: 'entry-chmod', onclick: then(() => chmodDialog(entry, opener)) }, 'Permissions…'));
    if (can('file.archive') && isArchive(entry)) actions.push(h('button', { type: 'button', id: 'entry-extract', onclick: then(() => extractDialog(entry, opener)) }, 'Extract…'));
    if (can('file.archive')) actions.push(h('button', { type: 'button', id: 'entry-compress', onclick: then(() => compressDialog([entry.name], opener)) }, 'Archive…'));
    if (can('file.delete')) actions.push(h('button', { type: 'button', class: 'danger', id: 'entry-delete', onclick: then(() => deleteEntries([entry.name], opener)) }, 'Delete'));
    const current = modal(entry.name, (close) => [
      h('dl', { class: 'entry-facts' },
        h('dt', null, 'Path'), h('dd', null, h('code', { class: 'wrap' }, entry.path)),
        h('dt', null, 'Kind'), h('dd', null, entry.kind === 'directory' ? 'folder' : entry.kind, entry.mime ? ` (${entry.mime})` : ''),
        entry.kind !== 'directory' ? [h('dt', null, 'Size'), h('dd', null, `${bytes(entry.size)} (${entry.size} bytes)`)] : null,
        h('dt', null, 'Mode'), h('dd', null, h('code', null, octal(entry.mode)), ` ${symbolic(entry.mode)}`),
        h('dt', null, 'Modified'), h('dd', null, modified(entry.modifiedMs))),
      h('div', { class: 'dialog-actions entry-action-list' }, actions,
        h('button', { type: 'button', id: 'entry-close', onclick: close }, 'Close')),
    ], { opener, id: 'entry-dialog', fallback: focusList });
  }

  async function done(close, message) {
    toast(message, 'success');
    await load();
    close();
  }

  function newFolderDialog() {
    const name = field('Folder name', h('input', { name: 'path', autocomplete: 'off', required: true, autofocus: true }),
      'A name, or a path with folders to create on the way (a/b/c).');
    modal('New folder', (close) => dialogForm('new-folder-form', close, [name], 'Create folder', async (box) => {
      if (!name.input.value.trim()) {
        setFieldError(name, 'Enter a name.');
        name.input.focus();
        return;
      }
      try {
        const entry = await post(api('folders'), { path: resolvePath(dir, name.input.value) });
        await done(close, `Created ${entry.path}`);
      } catch (error) {
        showProblem(box, error, { path: name });
      }
    }), { id: 'new-folder-dialog', fallback: focusList });
  }

  function newFileDialog() {
    const name = field('File name', h('input', { name: 'path', autocomplete: 'off', required: true, autofocus: true }),
      'It opens in the editor; it is created when you save it.');
    modal('New file', (close) => dialogForm('new-file-form', close, [name], 'Open in the editor', async (box) => {
      if (!name.input.value.trim()) {
        setFieldError(name, 'Enter a name.');
        name.input.focus();
        return;
      }
      const path = resolvePath(dir, name.input.value);
      try {
        await get(`/servers/${seg(id)}/files/stat?path=${encodeURIComponent(path)}`);
        showProblem(box, new ApiError(409, { code: 'file-exists', title: 'File exists', detail: `\`${path}\` already exists` }), { path: name });
        return;
      } catch (error) {
        if (error.code !== 'file-not-found') {
          showProblem(box, error, { path: name });
          return;
        }
      }
      close();
      location.hash = editorHref(id, path, true);
    }), { id: 'new-file-dialog', fallback: focusList });
  }

  function renameDialog(entry, opener) {
    const to = field('New name or path', h('input', { name: 'to', value: entry.name, autocomplete: 'off', autofocus: true }),
      'A name keeps it in this folder; a path starting with / moves it.');
    modal(`Rename ${entry.name}`, (close) => dialogForm('rename-form', close, [to], 'Rename', async (box) => {
      try {
        const moved = await post(api('rename'), { from: entry.path, to: resolvePath(dir, to.input.value) });
        selected.delete(entry.name);
        await done(close, `Renamed to ${moved.path}`);
      } catch (error) {
        showProblem(box, error, { to });
      }
    }), { opener, id: 'rename-dialog', fallback: focusList });
  }

  function copyName(entry) {
    const dot = entry.name.lastIndexOf('.');
    return entry.kind === 'file' && dot > 0
      ? `${entry.name.slice(0, dot)} copy${entry.name.slice(dot)}`
      : `${entry.name} copy`;
  }

  function copyDialog(entry, opener) {
    const to = field('Copy to', h('input', { name: 'to', value: copyName(entry), autocomplete: 'off', autofocus: true }),
      'A name in this folder, or a path starting with /. Folders are copied with all they hold.');
    modal(`Copy ${entry.name}`, (close) => dialogForm('copy-form', close, [to], 'Copy', async (box, status) => {
      status.textContent = 'Copying…';
      try {
        const copy = await post(api('copy'), { from: entry.path, to: resolvePath(dir, to.input.value) });
        await done(close, `Copied to ${copy.path}`);
      } catch (error) {
        status.textContent = '';
        showProblem(box, error, { to });
      }
    }), { opener, id: 'copy-dialog', fallback: focusList });
  }

  function chmodDialog(entry, opener) {
    const mode = field('Mode', h('input', {
      name: 'mode', value: octal(entry.mode), autocomplete: 'off', inputmode: 'numeric', pattern: '[0-7]{3,4}', autofocus: true,
    }), 'Octal, as chmod takes it: 644 lets the owner read and write and others read; 755 adds running.');
    modal(`Permissions of ${entry.name}`, (close) => dialogForm('chmod-form', close, [mode], 'Change mode', async (box) => {
      try {
        const changed = await post(api('chmod'), { path: entry.path, mode: mode.input.value.trim() });
        await done(close, `${changed.name} is now ${octal(changed.mode)}`);
      } catch (error) {
        showProblem(box, error, { mode });
      }
    }), { opener, id: 'chmod-dialog', fallback: focusList });
  }

  function extractDialog(entry, opener) {
    const destination = field('Extract into', h('input', { name: 'destination', value: dir, autocomplete: 'off', autofocus: true }),
      'A folder; it is created when missing. Existing files of the same names are replaced.');
    modal(`Extract ${entry.name}`, (close) => dialogForm('extract-form', close, [destination], 'Extract', async (box, status) => {
      status.textContent = 'Extracting…';
      try {
        const result = await post(api('decompress'), { path: entry.path, destination: resolvePath(dir, destination.input.value) });
        await done(close, `Extracted ${result.entries} entries (${bytes(result.bytes)})`);
      } catch (error) {
        status.textContent = '';
        showProblem(box, error, { destination });
      }
    }), { opener, id: 'extract-dialog', fallback: focusList });
  }

  function compressDialog(names, opener) {
    if (!names.length) return;
    const format = field('Format', h('select', { name: 'format', autofocus: true },
      h('option', { value: 'tar-gz' }, 'tar.gz'), h('option', { value: 'zip' }, 'zip')));
    const name = field('Archive name', h('input', { name: 'name', autocomplete: 'off', placeholder: 'archive-<date>' }),
      'Optional; written in this folder. Without one, the archive is named after the date.');
    const what = names.length === 1 ? names[0] : `${names.length} entries`;
    modal(`Archive ${what}`, (close) => dialogForm('compress-form', close, [format, name], 'Create archive', async (box, status) => {
      const body = { root: dir, paths: names, format: format.input.value };
      const typed = name.input.value.trim();
      if (typed) {
        const ext = format.input.value === 'zip' ? '.zip' : '.tar.gz';
        body.name = typed.endsWith(ext) ? typed : `${typed}${ext}`;
      }
      status.textContent = 'Archiving…';
      try {
        const archive = await post(api('compress'), body);
        selected.clear();
        await done(close, `Created ${archive.path}`);
      } catch (error) {
        status.textContent = '';
        showProblem(box, error, { name, format });
      }
    }), { opener, id: 'compress-dialog', fallback: focusList });
  }

  async function deleteEntries(names, opener) {
    if (!names.length) return;
    const what = names.length === 1 ? `“${names[0]}”` : `${names.length} entries`;
    const shown = names.slice(0, 10);
    const yes = await confirmModal(`Delete ${what}?`, [
      h('p', null, 'Folders are deleted with everything in them. This cannot be undone.'),
      h('ul', { class: 'delete-list' }, shown.map((n) => h('li', null, h('code', { class: 'wrap' }, joinPath(dir, n)))),
        names.length > shown.length ? h('li', null, `and ${names.length - shown.length} more`) : null),
    ], 'Delete');
    if (!yes) {
      if (opener && opener.isConnected) opener.focus();
      return;
    }
    try {
      const result = await post(api('delete'), { paths: names.map((n) => joinPath(dir, n)) });
      names.forEach((n) => selected.delete(n));
      toast(`Deleted ${result.deleted} ${result.deleted === 1 ? 'entry' : 'entries'}`, 'success');
      await load();
      focusList();
    } catch (error) {
      showProblem(alert, error);
    }
  }

  function pullDialog() {
    const url = field('URL', h('input', { name: 'url', type: 'url', autocomplete: 'off', required: true, autofocus: true, placeholder: 'https://' }));
    const fileName = field('File name', h('input', { name: 'fileName', autocomplete: 'off' }), 'Optional; by default the last part of the URL.');
    modal('Download from a URL', (close) => dialogForm('pull-form', close, [url, fileName], 'Download to this folder', async (box, status) => {
      if (!url.input.value.trim()) {
        setFieldError(url, 'Enter a URL.');
        url.input.focus();
        return;
      }
      const body = { url: url.input.value.trim(), directory: dir };
      if (fileName.input.value.trim()) body.fileName = fileName.input.value.trim();
      status.textContent = 'The node is downloading it…';
      try {
        const entry = await post(api('pull'), body);
        await done(close, `Downloaded ${entry.path} (${bytes(entry.size)})`);
      } catch (error) {
        status.textContent = '';
        showProblem(box, error, { url, fileName, directory: url });
      }
    }), { id: 'pull-dialog', fallback: focusList });
  }

  // Uploads: the file input, and files dropped on the list.
  const mayUpload = can('file.create') || can('file.update');
  const queue = uploadsOf(id);
  const reloadOnUpload = (uploadedTo) => {
    if (uploadedTo === dir) load();
  };
  queue.listeners.add(reloadOnUpload);
  ctx.onLeave(() => queue.listeners.delete(reloadOnUpload));

  async function startUploads(files) {
    if (!files.length) return;
    const existing = files.filter((f) => entries.some((e) => e.name === f.name));
    if (existing.length) {
      const names = existing.map((f) => f.name);
      const yes = await confirmModal(`Replace ${names.length === 1 ? `“${names[0]}”` : `${names.length} files`}?`,
        h('p', null, `This folder already has ${names.join(', ')}. Uploading replaces ${names.length === 1 ? 'it' : 'them'}.`),
        'Replace', 'tone-warning');
      if (!yes) return;
    }
    enqueueUploads(id, dir, files);
  }

  const fileInput = h('input', { type: 'file', multiple: true, id: 'files-upload-input' });
  fileInput.addEventListener('change', () => {
    const files = [...fileInput.files];
    fileInput.value = '';
    startUploads(files);
  });

  const dropZone = h('section', { class: 'card files-card', id: 'files-drop', 'aria-labelledby': 'files-heading' });
  if (mayUpload) {
    let depth = 0;
    dropZone.addEventListener('dragenter', (event) => {
      event.preventDefault();
      depth += 1;
      dropZone.classList.add('dragging');
    });
    dropZone.addEventListener('dragover', (event) => {
      event.preventDefault();
      if (event.dataTransfer) event.dataTransfer.dropEffect = 'copy';
    });
    dropZone.addEventListener('dragleave', () => {
      depth = Math.max(0, depth - 1);
      if (!depth) dropZone.classList.remove('dragging');
    });
    dropZone.addEventListener('drop', (event) => {
      event.preventDefault();
      depth = 0;
      dropZone.classList.remove('dragging');
      const transfer = event.dataTransfer;
      if (!transfer) return;
      // Read now: the items are gone once the handler returns.
      const files = [];
      const folders = [];
      const items = [...(transfer.items || [])].filter((i) => i.kind === 'file');
      if (items.length) {
        for (const item of items) {
          const entry = item.webkitGetAsEntry ? item.webkitGetAsEntry() : null;
          const file = item.getAsFile();
          if (entry && entry.isDirectory) folders.push(entry.name);
          else if (file) files.push(file);
        }
      } else {
        files.push(...transfer.files);
      }
      if (folders.length) {
        showProblem(alert, new Error(`Folders cannot be uploaded (${folders.join(', ')}): upload the files in them, or an archive to extract here.`));
      }
      startUploads(files);
    });
  }

  const toolbar = h('div', { class: 'files-toolbar', role: 'group', 'aria-label': 'Folder actions' },
    can('file.create') ? h('button', { type: 'button', id: 'files-new-folder', onclick: newFolderDialog }, 'New folder') : null,
    can('file.create') ? h('button', { type: 'button', id: 'files-new-file', onclick: newFileDialog }, 'New file') : null,
    can('file.create') ? h('button', { type: 'button', id: 'files-pull', onclick: pullDialog }, 'Download from URL') : null,
    h('button', { type: 'button', id: 'files-refresh', onclick: load }, 'Refresh'));
  const uploader = mayUpload ? h('div', { class: 'files-upload' },
    h('label', { for: 'files-upload-input' }, 'Upload files'),
    fileInput,
    h('p', { class: 'hint' }, 'Or drop files on the list. Files of the same name are replaced, after you confirm.')) : null;

  await load();
  add(dropZone,
    h('div', { class: 'files-card-head' }, listHeading, toolbar),
    uploader,
    queue.clear,
    queue.list,
    h('div', { class: 'files-selection', role: 'group', 'aria-label': 'Selection' },
      h('label', null, selectAll, 'Select all'), count, deleteSelected, compressSelected),
    listBox);
  return h('section', null, filesHead(server, can, dir), sftpBox(server, can, ctx.me), alert, dropZone);
}
