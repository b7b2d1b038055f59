// DOM helpers. Every piece of text reaches the page through text nodes
// (`append` of strings, `textContent`); nothing here parses HTML.

/**
 * Creates an element. `attrs` keys starting with `on` add listeners;
 * `class`, `value`, `checked`, `disabled` and `hidden` set properties;
 * other keys set attributes (`true` for a bare attribute, `null`/`false`
 * to leave it out). Children are nodes or strings (appended as text).
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      el.className = value;
    } else if (key === 'value' || key === 'checked' || key === 'disabled' || key === 'hidden') {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  add(el, children);
  return el;
}

/** Appends children (nodes, strings, arrays, null) to `el`. */
export function add(el, ...children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return add(el, children);
}

const shownKeys = new WeakMap();
/**
 * For polled content: replaces the children of `el` with `build()` unless
 * they already show `key`, and never while the keyboard focus is inside
 * `el` (a half-typed input or a focused button must not vanish under the
 * user; the next poll catches up).
 */
export function refresh(el, key, build) {
  if (shownKeys.get(el) === key) return;
  if (shownKeys.has(el) && el.contains(document.activeElement)) return;
  shownKeys.set(el, key);
  replace(el, build());
}

let ids = 0;
/** A fresh element id. */
export function uid(prefix = 'f') {
  ids += 1;
  return `${prefix}-${ids}`;
}

/**
 * A labelled form field. Returns `{row, input, error}`; `error` shows the
 * field's message from a problem document.
 */
export function field(label, input, hint) {
  input.id = input.id || uid('field');
  const error = h('p', { class: 'field-error', id: `${input.id}-error`, hidden: true });
  input.setAttribute('aria-describedby', error.id);
  const row = h('div', { class: 'field' },
    h('label', { for: input.id }, label),
    input,
    hint ? h('p', { class: 'hint' }, hint) : null,
    error);
  return { row, input, error };
}

/** Shows `message` under a field made by `field` (or hides it). */
export function setFieldError(f, message) {
  f.error.textContent = message || '';
  f.error.hidden = !message;
  f.input.setAttribute('aria-invalid', message ? 'true' : 'false');
}

/** A badge for a state or tone. */
export function badge(text, tone = 'neutral') {
  return h('span', { class: `badge tone-${tone}` }, text);
}

/**
 * A table with a header row; `rows` are arrays of cells (nodes or text).
 * On a narrow screen each row stacks into a block, every cell labelled
 * with its column (`data-label`).
 */
export function table(columns, rows, attrs = {}) {
  return h('div', { class: 'table-wrap' },
    h('table', { ...attrs, class: 'stack' },
      h('thead', null, h('tr', null, columns.map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', null, rows.map((cells) => h('tr', null, cells.map((c, i) => h('td', { 'data-label': columns[i] || '' }, c)))))));
}

/** An alert box. */
export function alertBox(text, tone = 'danger', attrs = {}) {
  return h('div', { class: `alert tone-${tone}`, role: tone === 'danger' ? 'alert' : 'status', ...attrs }, text);
}

/** Formats an RFC 3339 time for people. */
export function when(value) {
  if (!value) return '—';
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

/** Formats bytes. */
export function bytes(n) {
  if (typeof n !== 'number') return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${v.toFixed(i ? 1 : 0)} ${units[i]}`;
}

/** Formats seconds as a duration. */
export function duration(secs) {
  if (typeof secs !== 'number') return '—';
  const d = Math.floor(secs / 86400);
  const hh = Math.floor((secs % 86400) / 3600);
  const m = Math.floor((secs % 3600) / 60);
  const s = Math.floor(secs % 60);
  return d ? `${d}d ${hh}h` : hh ? `${hh}h ${m}m` : `${m}m ${s}s`;
}

/** Shows a short message in the live region. */
export function toast(message, tone = 'info') {
  const region = document.getElementById('toasts');
  if (!region) return;
  const item = h('div', { class: `toast tone-${tone}` }, message);
  region.append(item);
  setTimeout(() => item.remove(), 6000);
}

/**
 * A modal dialog (`<dialog>`, so the rest of the page is inert while it
 * is open and Escape closes it). `build(close)` returns its content; an
 * element in it with `autofocus` takes the focus. Closed, it is removed
 * and the focus goes back to `opener` (default: what had it), or, when a
 * reload replaced that element, to the element with its
 * `data-focus-key`, or else to `fallback()`. Returns `{dialog, close}`.
 */
export function modal(title, build, options = {}) {
  const opener = options.opener || document.activeElement;
  const heading = h('h2', { id: uid('dialog-title') }, title);
  const dialog = h('dialog', { class: 'dialog', 'aria-labelledby': heading.id, id: options.id || null });
  const close = () => {
    if (dialog.open) dialog.close();
  };
  dialog.addEventListener('close', () => {
    dialog.remove();
    let target = opener && opener.isConnected ? opener : null;
    const key = opener && opener.dataset ? opener.dataset.focusKey : null;
    if (!target && key) target = document.querySelector(`[data-focus-key="${CSS.escape(key)}"]`);
    if (target) target.focus();
    else if (options.fallback) options.fallback();
  });
  add(dialog, heading, build(close));
  (document.getElementById('main') || document.body).append(dialog);
  dialog.showModal();
  return { dialog, close };
}

/**
 * Asks to confirm in a modal dialog: resolves to true for the confirm
 * button, false for Cancel or Escape. Cancel has the focus first.
 */
export function confirmModal(title, body, confirmLabel, tone = 'danger') {
  return new Promise((resolve) => {
    let answer = false;
    const { dialog } = modal(title, (close) => [
      h('div', { class: 'dialog-body' }, body),
      h('div', { class: 'dialog-actions' },
        h('button', { type: 'button', class: tone, id: 'confirm-yes', onclick: () => { answer = true; close(); } }, confirmLabel),
        h('button', { type: 'button', id: 'confirm-no', autofocus: true, onclick: close }, 'Cancel')),
    ], { id: 'confirm-dialog' });
    dialog.addEventListener('close', () => resolve(answer));
  });
}
