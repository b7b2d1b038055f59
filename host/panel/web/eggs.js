// Admin page "Game types": the game types imported from Pterodactyl and
// Pelican eggs, kept by a game-catalogue plugin (the bundled egg-bridge).
//
// Importing takes two steps, and nothing is kept before the second: the
// file's bytes are read once and sent with `?preview=true`, which checks
// the egg and answers what it would create; the review shows all of it
// (every variable with its rules, the images, the features, and what the
// Panel does not honour, as warnings); "Import" then sends the very same
// bytes again. A game type with the same id is replaced only when the
// admin says so after the Panel's `game-type-exists` refusal.
//
// Everything the egg says reaches the page as text nodes (dom.js): an
// egg is a document from the internet.

import { api, get, del, seg, download, ApiError } from './api.js';
import { h, replace, badge, table, alertBox, bytes, toast } from './dom.js';
import { showError } from './pages.js';
import { denied } from './admin.js';

/** The Panel's limit on an egg upload (eggs_routes.rs MAX_DOCUMENT_BYTES). */
const MAX_EGG_BYTES = 4 * 1024 * 1024;

/** The plugin kind that imports eggs. */
const CATALOGUE_KIND = 'game-catalogue';

/**
 * Shows `error` in `box`: a refused egg (422) as the list of its field
 * problems, each naming the egg's field; anything else as pages.js does.
 */
function showProblem(box, error) {
  if (error instanceof ApiError && error.status === 422 && error.fields.length) {
    const n = error.fields.length;
    replace(box, h('div', { class: 'alert tone-danger egg-problems', role: 'alert', 'data-code': error.code },
      h('p', null, h('strong', null, 'This egg cannot be imported'), ` (${n} ${n === 1 ? 'problem' : 'problems'}):`),
      h('ul', null, error.fields.map((fe) => h('li', { 'data-field': fe.field || '' },
        h('code', null, fe.field || 'the egg'), ': ', fe.message)))));
    box.hidden = false;
    return;
  }
  showError(box, error);
}

const yesNo = (value) => (value ? 'yes' : 'no');

/** The review of what an egg creates (a preview's or an import's answer). */
function describe(egg) {
  const variables = egg.variables.length
    ? table(['Variable', 'Default', 'Editable', 'Viewable', 'Required', 'Rules'], egg.variables.map((v) => [
      h('div', null, h('strong', null, v.name), ' ', h('code', { class: 'id' }, v.key),
        v.description ? h('p', { class: 'muted small pui-text' }, v.description) : null),
      v.default_value === null || v.default_value === undefined
        ? h('span', { class: 'muted' }, 'none')
        : v.default_value === '' ? h('span', { class: 'muted' }, 'empty') : h('code', { class: 'wrap' }, v.default_value),
      yesNo(v.user_editable), yesNo(v.user_viewable), yesNo(v.required),
      v.rules.length ? h('ul', { class: 'plain' }, v.rules.map((r) => h('li', null, r))) : h('span', { class: 'muted' }, 'none'),
    ]), { id: 'egg-review-variables' })
    : h('p', { class: 'muted' }, 'It takes no variables.');
  const images = egg.images.length
    ? h('ul', { id: 'egg-review-images' }, egg.images.map((i, n) => h('li', null,
      `${i.name}: `, h('code', { class: 'wrap' }, i.reference), n === 0 ? ' (default)' : '')))
    : h('p', { class: 'muted' }, 'It lists no images.');
  const unsupported = egg.unsupported.length
    ? h('div', { id: 'egg-review-unsupported' }, egg.unsupported.map((u) => alertBox(u, 'warning')))
    : h('p', { id: 'egg-review-unsupported', class: 'muted' }, 'Everything it asks for is supported.');
  return [
    egg.description ? h('p', { class: 'pui-text' }, egg.description) : null,
    h('dl', null,
      h('dt', null, 'Id'), h('dd', null, h('code', null, egg.type)),
      h('dt', null, 'Plugin'), h('dd', null, egg.plugin),
      h('dt', null, 'Format'), h('dd', null, egg.format),
      h('dt', null, 'Updates from'), h('dd', null, egg.update_url || '—')),
    h('h3', null, `Variables (${egg.variables.length})`), variables,
    h('h3', null, 'Images'), images,
    h('h3', null, 'Startup commands'),
    egg.startup_commands.length
      ? h('ul', { id: 'egg-review-startup' }, egg.startup_commands.map((c, n) => h('li', null, c, n === 0 ? ' (default)' : '')))
      : h('p', { class: 'muted' }, 'One; servers do not choose.'),
    h('h3', null, 'Files users may not reach'),
    egg.file_denylist.length
      ? h('ul', { id: 'egg-review-denylist' }, egg.file_denylist.map((p) => h('li', null, h('code', { class: 'wrap' }, p))))
      : h('p', { class: 'muted' }, 'None.'),
    h('h3', null, 'Features'),
    egg.features.length ? h('p', null, egg.features.join(', ')) : h('p', { class: 'muted' }, 'None.'),
    h('h3', null, `Not supported (${egg.unsupported.length})`), unsupported,
  ];
}

export async function eggsPage(ctx) {
  const no = denied(ctx, 'admin.plugins');
  if (no) return no;
  const listBox = h('div', { id: 'egg-list', 'aria-live': 'polite' });
  const listError = h('div', { id: 'egg-list-error', hidden: true });
  const actionBox = h('div', { id: 'egg-action' });
  const importError = h('div', { id: 'egg-import-error', hidden: true });
  const review = h('div', { id: 'egg-review' });

  // Which plugins import eggs: with none, say so; with several, the admin
  // picks one (the API's `plugin`).
  let catalogues = [];
  try {
    catalogues = (await get('/plugins')).items.filter((p) => p.kinds.includes(CATALOGUE_KIND) && p.state === 'active');
  } catch {
    catalogues = [];
  }
  const pluginSelect = catalogues.length > 1
    ? h('select', { id: 'egg-plugin', name: 'plugin' }, catalogues.map((p) => h('option', { value: p.id }, `${p.name} (${p.id})`)))
    : null;
  const importQuery = (extra) => {
    const params = new URLSearchParams(extra);
    if (pluginSelect) params.set('plugin', pluginSelect.value);
    const text = params.toString();
    return text ? `/eggs?${text}` : '/eggs';
  };

  async function load() {
    try {
      const items = (await get('/eggs')).items;
      showError(listError, null);
      replace(listBox, items.length ? table(['Game type', 'Plugin', 'Format', 'Images', 'Servers', 'Unsupported', ''], items.map((e) => [
        h('div', null, h('strong', null, e.name), ' ', h('code', { class: 'id' }, e.type)),
        e.plugin, e.format,
        e.images.length ? e.images.map((i) => i.name).join(', ') : '—',
        String(e.servers ?? 0),
        e.unsupported.length ? badge(String(e.unsupported.length), 'warning') : badge('0', 'success'),
        h('div', { class: 'row-actions', 'data-egg': `${e.plugin}/${e.type}` },
          h('button', { type: 'button', class: 'small egg-export', 'aria-label': `Export ${e.name}`, onclick: () => exportEgg(e) }, 'Export'),
          e.update_url ? h('button', { type: 'button', class: 'small egg-update', 'aria-label': `Check ${e.name} for an update`, onclick: () => checkUpdate(e) }, 'Check for update') : null,
          h('button', { type: 'button', class: 'small danger egg-delete', 'aria-label': `Delete ${e.name}`, onclick: () => remove(e) }, 'Delete')),
      ]), { id: 'egg-table' }) : h('p', { class: 'muted', id: 'egg-none' }, 'No game types imported yet.'));
    } catch (error) {
      replace(listBox);
      showError(listError, error);
    }
  }

  const eggPath = (e) => `/eggs/${seg(e.plugin)}/${seg(e.type)}`;

  async function exportEgg(e) {
    try {
      const file = await download(`${eggPath(e)}/export`);
      const url = URL.createObjectURL(file.blob);
      const link = h('a', { href: url, download: file.filename, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      toast(`Exported ${e.name} as ${file.filename}`, 'success');
    } catch (error) {
      const box = h('div');
      replace(actionBox, box);
      showError(box, error);
    }
  }

  // The update panel: what the published egg changes, then "Apply".
  async function checkUpdate(e) {
    const box = h('div', { id: 'egg-update-error', hidden: true });
    const panel = h('section', { class: 'card', id: 'egg-update', 'aria-labelledby': 'egg-update-title' },
      h('h2', { id: 'egg-update-title', tabindex: '-1' }, `Update ${e.name}`),
      h('p', { class: 'muted' }, ['Checking ', e.update_url, '…']), box);
    replace(actionBox, panel);
    const close = h('button', { type: 'button', onclick: () => replace(actionBox) }, 'Close');
    let answer;
    try {
      answer = await api('POST', `${eggPath(e)}/update`);
    } catch (error) {
      replace(panel, h('h2', { id: 'egg-update-title', tabindex: '-1' }, `Update ${e.name}`), box, h('div', { class: 'power' }, close));
      showProblem(box, error);
      panel.querySelector('h2').focus();
      return;
    }
    const apply = h('button', { type: 'button', class: 'primary', id: 'egg-update-apply', onclick: async () => {
      apply.disabled = true;
      try {
        const applied = await api('POST', `${eggPath(e)}/update?apply=true`);
        await load();
        replace(actionBox, alertBox(applied.applied
          ? `Updated ${applied.egg.name}: ${applied.changes.length} ${applied.changes.length === 1 ? 'change' : 'changes'} applied.`
          : `${applied.egg.name} is already the published version.`, 'success', { id: 'egg-update-done' }));
        toast(`Updated ${applied.egg.name}`, 'success');
      } catch (error) {
        apply.disabled = false;
        showProblem(box, error);
      }
    } }, 'Apply');
    replace(panel, h('h2', { id: 'egg-update-title', tabindex: '-1' }, `Update ${e.name}`),
      answer.changes.length
        ? [h('p', null, `The egg published at ${e.update_url} changes ${answer.changes.length === 1 ? 'one thing' : `${answer.changes.length} things`}:`),
          h('ul', { id: 'egg-update-changes' }, answer.changes.map((c) => h('li', { class: 'pui-text' }, c)))]
        : h('p', { id: 'egg-update-changes' }, 'The published egg is the same as the imported one: nothing to apply.'),
      box,
      h('div', { class: 'power' }, answer.changes.length ? apply : null, close));
    panel.querySelector('h2').focus();
  }

  async function remove(e) {
    if (!window.confirm(`Delete the game type ${e.name}? New servers can no longer use it.`)) return;
    const box = h('div', { id: 'egg-delete-error', hidden: true });
    replace(actionBox, box);
    try {
      await del(eggPath(e));
      toast(`Deleted ${e.name}`, 'success');
      replace(actionBox);
      await load();
    } catch (error) {
      // `game-type-in-use` says how many servers run it.
      showError(box, error);
    }
  }

  // ------------------------------------------------------------ import

  /** The file under review: {name, bytes}. */
  let chosen = null;
  const fileInput = h('input', { type: 'file', id: 'egg-file', name: 'egg', accept: '.json,.yaml,.yml,application/json,application/yaml' });

  function clearReview() {
    chosen = null;
    replace(review);
    showError(importError, null);
  }

  async function choose(file) {
    clearReview();
    if (!file) return;
    if (file.size > MAX_EGG_BYTES) {
      showError(importError, new Error(`${file.name} is ${bytes(file.size)}; an egg may be at most ${bytes(MAX_EGG_BYTES)}.`));
      return;
    }
    // Read once: the confirmed import sends exactly the reviewed bytes.
    const body = await file.arrayBuffer();
    replace(review, h('p', { class: 'muted', role: 'status' }, `Checking ${file.name}…`));
    let egg;
    try {
      egg = await api('POST', importQuery({ preview: 'true' }), body);
    } catch (error) {
      replace(review);
      showProblem(importError, error);
      return;
    }
    chosen = { name: file.name, body };
    showReview(egg);
  }

  function showReview(egg) {
    const outcome = h('div', { id: 'egg-import-outcome' });
    const confirm = h('button', { type: 'button', class: 'primary', id: 'egg-confirm' }, `Import ${egg.name}`);
    const cancel = h('button', { type: 'button', id: 'egg-cancel', onclick: () => {
      clearReview();
      fileInput.value = '';
      fileInput.focus();
    } }, 'Cancel');
    const submit = async (replaceExisting) => {
      if (!chosen) return;
      confirm.disabled = true;
      showError(importError, null);
      replace(outcome);
      try {
        const imported = await api('POST', importQuery(replaceExisting ? { replace: 'true' } : {}), chosen.body);
        clearReview();
        fileInput.value = '';
        replace(actionBox, alertBox(`Imported ${imported.name} (${imported.plugin}: ${imported.type}). It is offered when servers are created.`, 'success', { id: 'egg-imported' }));
        toast(`Imported ${imported.name}`, 'success');
        await load();
        actionBox.querySelector('.alert')?.setAttribute('tabindex', '-1');
        actionBox.querySelector('.alert')?.focus();
      } catch (error) {
        confirm.disabled = false;
        if (error instanceof ApiError && error.code === 'game-type-exists' && !replaceExisting) {
          const again = h('button', { type: 'button', class: 'danger', id: 'egg-replace', onclick: () => submit(true) }, `Replace ${egg.type}`);
          replace(outcome, h('div', { class: 'alert tone-warning', role: 'alert', 'data-code': error.code },
            h('p', null, error.message),
            h('p', null, 'Replacing it changes the game type for the servers that run it on their next start.'),
            h('div', { class: 'power' }, again)));
          again.focus();
          return;
        }
        showProblem(importError, error);
      }
    };
    confirm.addEventListener('click', () => submit(false));
    const title = h('h2', { id: 'egg-review-title', tabindex: '-1' }, `Review: ${egg.name}`);
    replace(review, h('section', { class: 'card review', 'aria-labelledby': 'egg-review-title' },
      title,
      h('p', { class: 'muted small' }, `From ${chosen.name}. Nothing is imported until you confirm.`),
      describe(egg),
      outcome,
      h('div', { class: 'power' }, confirm, cancel)));
    title.focus();
  }

  fileInput.addEventListener('change', () => choose(fileInput.files[0]));
  const drop = h('div', { class: 'dropzone', id: 'egg-drop' },
    h('label', { for: 'egg-file' }, 'Egg file (JSON or YAML, at most 4 MiB)'),
    fileInput,
    h('p', { class: 'hint' }, 'Choose a file, or drop one here. It is checked and shown for review; nothing is imported before you confirm.'));
  drop.addEventListener('dragover', (event) => {
    event.preventDefault();
    drop.classList.add('dragging');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('dragging'));
  drop.addEventListener('drop', (event) => {
    event.preventDefault();
    drop.classList.remove('dragging');
    const file = event.dataTransfer && event.dataTransfer.files[0];
    if (file) choose(file);
  });

  await load();
  return h('section', null,
    h('h1', null, 'Game types'),
    h('p', { class: 'muted' }, 'Game types imported from Pterodactyl and Pelican eggs. Servers are created from them like from any game type.'),
    catalogues.length ? null : alertBox(['No active plugin imports game types: install and activate egg-bridge on the ',
      h('a', { href: '#/admin/plugins' }, 'Plugins'), ' page.'], 'info', { id: 'egg-no-catalogue' }),
    h('section', { class: 'card' }, h('h2', null, 'Imported'), listError, listBox),
    actionBox,
    h('section', { class: 'card', id: 'egg-import' }, h('h2', null, 'Import an egg'),
      pluginSelect ? h('div', { class: 'field' }, h('label', { for: 'egg-plugin' }, 'Import into'), pluginSelect) : null,
      drop, importError),
    review);
}
