// The text editor of a server's files
// (`#/servers/<id>/files/edit?path=/file`, `&new=1` for a file to create).
//
// The content comes from the node through a signed download URL and goes
// back with one `PUT` to a signed upload URL, as bytes of the encoding and
// line endings the file had (`text-codec.js`); both can be changed before
// saving. A file the caller may not update opens read-only. Ctrl+S (or
// ⌘S) saves; leaving with unsaved changes asks first.

import { get, seg } from './api.js';
import { h, field, alertBox, bytes, toast } from './dom.js';
import { form } from './pages.js';
import { readBytes, upload, download } from './transfer.js';
import { decodeText, encodeText, ENCODINGS, LINE_ENDINGS } from './text-codec.js';
import {
  cleanPath, parentOf, baseName, hashQuery, filesHref, editorHref, filesHead, showProblem, MAX_EDIT_BYTES,
} from './files.js';

export async function editorPage(ctx, id) {
  const query = hashQuery();
  const path = cleanPath(query.get('path') || '/');
  let creating = query.get('new') === '1';
  const server = await get(`/servers/${seg(id)}`);
  const perms = new Set(server.permissions);
  const can = (p) => perms.has(p);
  const dir = parentOf(path);
  const name = baseName(path);
  const box = h('div', { id: 'editor-error', hidden: true });
  const back = h('a', { href: filesHref(id, dir), id: 'editor-close', class: 'button' }, 'Back to the folder');
  const page = (...content) => h('section', null, filesHead(server, can, dir, name), box, content);

  if (!can('file.read-content')) {
    return page(alertBox('You may not read the contents of this server\'s files.', 'warning'), back);
  }

  let decoded = null;
  try {
    const entry = await get(`/servers/${seg(id)}/files/stat?path=${encodeURIComponent(path)}`);
    if (entry.kind !== 'file') {
      showProblem(box, { code: 'is-a-directory', message: `${path} is not a file` });
      return page(back);
    }
    if (entry.size > MAX_EDIT_BYTES) {
      return page(alertBox(`${name} is ${bytes(entry.size)}; the editor opens files of up to ${bytes(MAX_EDIT_BYTES)}. Download it instead.`, 'warning', { id: 'editor-too-large' }),
        h('div', { class: 'dialog-actions' },
          h('button', { type: 'button', class: 'primary', onclick: () => download(id, path).catch((e) => showProblem(box, e)) }, 'Download'), back));
    }
    creating = false;
    decoded = decodeText(await readBytes(id, path));
  } catch (error) {
    if (!(creating && error.code === 'file-not-found')) {
      showProblem(box, error);
      return page(back);
    }
    decoded = { text: '', encoding: 'utf-8', eol: '\n', mixed: false, binary: false };
  }
  if (decoded.binary) {
    return page(alertBox(`${name} is not a text file (it holds NUL bytes); download it instead.`, 'warning', { id: 'editor-binary' }),
      h('div', { class: 'dialog-actions' },
        h('button', { type: 'button', class: 'primary', onclick: () => download(id, path).catch((e) => showProblem(box, e)) }, 'Download'), back));
  }

  const writable = () => (creating ? can('file.create') : can('file.update'));
  const text = field(`Contents of ${name}`, h('textarea', {
    id: 'editor-text', class: 'editor', spellcheck: 'false', autocomplete: 'off', autocapitalize: 'off',
    wrap: 'off', rows: '24', readonly: !writable(),
  }));
  text.input.value = decoded.text;
  const encoding = field('Encoding', h('select', { id: 'editor-encoding', name: 'encoding' },
    ENCODINGS.map(([value, label]) => h('option', { value, selected: value === decoded.encoding }, label))));
  const eol = field('Line endings', h('select', { id: 'editor-eol', name: 'eol' },
    LINE_ENDINGS.map(([value, label]) => h('option', { value, selected: value === decoded.eol }, label))));
  const status = h('p', { id: 'editor-status', class: 'muted small', role: 'status' },
    creating ? 'A new file: it is created when you save.'
      : decoded.mixed ? 'The file mixes line endings; saving writes the one chosen below throughout.' : '');

  let dirty = false;
  const markDirty = () => {
    if (!dirty) {
      dirty = true;
      status.textContent = 'Unsaved changes.';
    }
  };
  text.input.addEventListener('input', markDirty);
  encoding.input.addEventListener('change', markDirty);
  eol.input.addEventListener('change', markDirty);
  const guard = (event) => {
    if (dirty) event.preventDefault();
  };
  window.addEventListener('beforeunload', guard);
  ctx.onLeave(() => window.removeEventListener('beforeunload', guard));
  back.addEventListener('click', (event) => {
    if (dirty && !window.confirm(`Leave ${name} without saving your changes?`)) event.preventDefault();
  });

  const save = writable() ? h('button', { type: 'submit', class: 'primary', id: 'editor-save' }, 'Save') : null;
  const editor = form({ id: 'editor-form', class: 'editor-form' }, [
    h('div', { class: 'editor-bar' },
      encoding.row, eol.row,
      h('div', { class: 'dialog-actions' }, save, back)),
    status,
    writable() ? null : h('p', { class: 'hint', id: 'editor-read-only' }, 'Read-only: you may not change this file.'),
    text.row,
  ], async () => {
    if (!writable()) return;
    let content;
    try {
      content = encodeText(text.input.value, encoding.input.value, eol.input.value);
    } catch (error) {
      showProblem(box, error);
      return;
    }
    status.textContent = 'Saving…';
    try {
      await upload(id, path, new Blob([content]));
      showProblem(box, null);
      dirty = false;
      if (creating) {
        creating = false;
        history.replaceState(null, '', editorHref(id, path));
      }
      status.textContent = `Saved at ${new Date().toLocaleTimeString()} (${bytes(content.length)}).`;
      toast(`Saved ${name}`, 'success');
    } catch (error) {
      status.textContent = dirty ? 'Unsaved changes.' : '';
      showProblem(box, error);
    }
  });
  editor.addEventListener('keydown', (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === 's') {
      event.preventDefault();
      editor.requestSubmit();
    }
  });
  return page(editor);
}
