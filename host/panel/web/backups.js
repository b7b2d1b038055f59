// The backups of a server (`#/servers/<id>/backups`): the list (name,
// state and why it failed, size, a short SHA-256, times, the lock and the
// last restore), a new backup with `.pteroignore` lines, and per backup
// download, restore, lock or unlock and delete.
//
// What shows follows the caller's permissions on the server (`backup.read`
// for the tab at all; `backup.create`, `backup.download`,
// `backup.restore`, `backup.delete` — which also locks and unlocks — for
// the actions). The Panel refuses what the state does not allow (a
// restore while the server runs, a locked backup's deletion, a backup at
// the limit with every one locked); each refusal shows in words with the
// Panel's detail.
//
// Making and restoring a backup are asynchronous: the Agent reports when
// it is done. While a backup is pending or a restore runs, the list is
// fetched again every 2 s; the polling stops once nothing is under way,
// and when the user leaves the page.

import { get, post, del, seg } from './api.js';
import { h, replace, field, badge, alertBox, bytes, when, toast, modal, confirmModal, uid } from './dom.js';
import { showError, form, stateTone } from './pages.js';
import { serverTabs, showProblem } from './files.js';

/** How often the list is fetched again while something is under way. */
const POLL_MS = 2000;
/** Server states in which the Panel lets a restore run. */
const RESTORABLE = ['offline', 'crashed', 'install-failed'];
/** The longest backup name the Panel takes. */
const MAX_NAME = 191;
/** How much of the SHA-256 shows (all of it is in the title). */
const SHORT_SHA = 12;

/** Whether a restore from `backup` runs. */
function restoring(backup) {
  return Boolean(backup.restore && backup.restore.state === 'running');
}

/** Whether anything of `backups` is under way (made or restored). */
function underWay(backups) {
  return backups.some((b) => b.state === 'pending' || restoring(b));
}

/** The last restore of `backup`, as badge and words. */
function restoreCell(backup) {
  const r = backup.restore;
  if (!r) return '—';
  const [text, tone] = r.state === 'running' ? ['restoring', 'warning']
    : r.state === 'done' ? ['restored', 'success'] : ['restore failed', 'danger'];
  return h('span', { class: 'backup-restore-state', 'data-state': r.state },
    badge(text, tone),
    r.finishedAt ? h('span', { class: 'muted small' }, ` ${when(r.finishedAt)}`) : null,
    r.failure ? h('span', { class: 'backup-reason' }, r.failure) : null);
}

export async function backupsPage(ctx, id) {
  const server = await get(`/servers/${seg(id)}`);
  const perms = new Set(server.permissions);
  const can = (p) => perms.has(p);
  const head = [h('div', { class: 'page-head' }, h('h1', null, server.name)), serverTabs(id, can, 'backups')];
  if (!can('backup.read')) {
    return h('section', null, head,
      alertBox('You may not see the backups of this server.', 'warning', { id: 'backups-alert' }));
  }
  const path = (rest = '') => `/servers/${seg(id)}/backups${rest}`;
  let serverState = server.state;
  let backups = [];
  let limit = null;

  const alert = h('div', { id: 'backups-alert', hidden: true });
  const loadError = h('div', { id: 'backups-load-error', hidden: true });
  const summary = h('div', { id: 'backups-limit', role: 'status' });
  const listBox = h('div', { id: 'backup-list' });
  const listHeading = h('h2', { id: 'backups-heading', tabindex: '-1' }, 'Backups');
  const focusList = () => listHeading.focus();

  // ---------------------------------------------------------- loading

  let drawnKey = null;
  let timer = null;
  let left = false;
  let loads = 0;
  ctx.onLeave(() => {
    left = true;
    clearTimeout(timer);
  });

  /**
   * Fetches the list and draws it; polls again while something is under
   * way (or while a poll could not draw because the focus was in the
   * list). `force` draws even under the focus, keeping it on the same
   * control (by `data-focus-key`).
   */
  async function load(force = false) {
    clearTimeout(timer);
    const seq = ++loads;
    let again = underWay(backups);
    listBox.setAttribute('aria-busy', 'true');
    try {
      const answer = await get(path());
      if (seq !== loads || left) return;
      backups = answer.items;
      limit = typeof answer.limit === 'number' ? answer.limit : null;
      showError(loadError, null);
      const drawn = draw(force);
      again = underWay(backups) || !drawn;
    } catch (error) {
      if (seq !== loads || left) return;
      showProblem(loadError, error);
    } finally {
      if (seq === loads) listBox.removeAttribute('aria-busy');
    }
    if (again && !left) timer = setTimeout(() => load(false), POLL_MS);
  }

  /** Draws the list and the limit; false when the focus kept it from it. */
  function draw(force) {
    drawSummary();
    const key = JSON.stringify(backups);
    if (key === drawnKey) return true;
    const active = document.activeElement;
    const inside = listBox.contains(active);
    if (inside && !force) return false;
    const focusKey = inside && active.dataset ? active.dataset.focusKey : null;
    drawnKey = key;
    replace(listBox, backups.length ? listing() : h('p', { class: 'muted', id: 'backups-empty' }, 'No backups yet.'));
    if (inside) {
      const again = focusKey ? listBox.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`) : null;
      if (again && !again.disabled) again.focus();
      else focusList();
    }
    return true;
  }

  function drawSummary() {
    if (createCard) createCard.hidden = limit === 0;
    if (limit === null) {
      replace(summary);
      return;
    }
    if (limit === 0) {
      replace(summary, alertBox(
        'Backups are turned off for this server (its backup limit is 0). An administrator can set a limit.',
        'warning', { id: 'backups-off' }));
      return;
    }
    // Pending and done backups count against the limit; failed ones do not.
    const kept = backups.filter((b) => b.state !== 'failed');
    const full = kept.length >= limit;
    const stuck = full && kept.every((b) => b.locked || b.state === 'pending' || restoring(b));
    replace(summary,
      h('p', { class: 'muted', id: 'backups-count' },
        `${kept.length} of ${limit} ${limit === 1 ? 'backup' : 'backups'} kept. `,
        full ? 'At the limit, a new backup deletes the oldest unlocked one first.' : 'Failed backups do not count.'),
      stuck && can('backup.create')
        ? alertBox('Every backup is locked or under way: unlock or delete one before making another.', 'warning', { id: 'backups-full' })
        : null);
  }

  // ---------------------------------------------------------- the list

  function listing() {
    const busy = backups.some(restoring);
    return h('div', { class: 'table-wrap' },
      h('table', { class: 'stack backups', id: 'backup-table' },
        h('caption', { class: 'sr-only' }, `Backups of ${server.name}, newest first`),
        h('thead', null, h('tr', null,
          ['Name', 'State', 'Size', 'SHA-256', 'Created', 'Completed', 'Last restore'].map((c) => h('th', { scope: 'col' }, c)),
          h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))),
        h('tbody', null, backups.map((b) => row(b, busy)))));
  }

  function row(b, busy) {
    const cell = (label, ...content) => h('td', { 'data-label': label }, content);
    return h('tr', { 'data-id': b.id, 'data-name': b.name, 'data-state': b.state, 'data-locked': String(b.locked) },
      cell('Name',
        h('span', { class: 'backup-name' }, b.name),
        b.locked ? [' ', badge('locked', 'info')] : null,
        b.ignored && b.ignored.length ? h('details', { class: 'backup-ignored' },
          h('summary', null, `Leaves out ${b.ignored.length} ${b.ignored.length === 1 ? 'pattern' : 'patterns'}`),
          h('pre', { class: 'json' }, b.ignored.join('\n'))) : null),
      cell('State',
        badge(b.state, stateTone(b.state)),
        b.state === 'failed' && b.failure ? h('span', { class: 'backup-reason' }, b.failure) : null),
      cell('Size', b.state === 'done' ? bytes(b.bytes) : '—'),
      cell('SHA-256', b.sha256 ? h('code', { class: 'backup-sha', title: b.sha256 }, `${b.sha256.slice(0, SHORT_SHA)}…`) : '—'),
      cell('Created', when(b.createdAt)),
      cell('Completed', b.completedAt ? when(b.completedAt) : '—'),
      cell('Last restore', restoreCell(b)),
      h('td', { class: 'backup-actions', 'data-label': '' }, h('div', { class: 'row-actions' }, actions(b, busy))));
  }

  function actions(b, busy) {
    const done = b.state === 'done';
    // `verb` names the action for screen readers, with the backup's name.
    const button = (kind, label, verb, attrs) => h('button', {
      type: 'button',
      'aria-label': `${verb} ${b.name}`,
      'data-focus-key': `${kind}:${b.id}`,
      ...attrs,
      class: `small backup-${kind}${attrs.class ? ` ${attrs.class}` : ''}`,
    }, label);
    return [
      can('backup.download') && done ? button('download', 'Download', 'Download', {
        onclick: () => download(b),
      }) : null,
      can('backup.restore') && done ? button('restore', 'Restore…', 'Restore', {
        class: 'tone-warning',
        'aria-haspopup': 'dialog',
        disabled: busy,
        title: busy ? 'A restore of this server is running' : null,
        onclick: (event) => restoreDialog(b, event.currentTarget),
      }) : null,
      can('backup.delete') ? button('lock', b.locked ? 'Unlock' : 'Lock', b.locked ? 'Unlock' : 'Lock', {
        onclick: () => toggleLock(b),
      }) : null,
      can('backup.delete') && b.state !== 'pending' ? button('delete', 'Delete', 'Delete', {
        class: 'danger',
        disabled: b.locked || restoring(b),
        title: b.locked ? 'Locked: unlock it before deleting it' : restoring(b) ? 'It is being restored' : null,
        onclick: (event) => deleteBackup(b, event.currentTarget),
      }) : null,
    ];
  }

  // ---------------------------------------------------------- actions

  // Requests under way, by action and backup: a second click waits for
  // the first (the buttons stay enabled, so the keyboard focus stays).
  const inFlight = new Set();
  async function once(key, action) {
    if (inFlight.has(key)) return;
    inFlight.add(key);
    try {
      await action();
    } finally {
      inFlight.delete(key);
    }
  }

  function download(b) {
    return once(`download:${b.id}`, () => startDownload(b));
  }

  async function startDownload(b) {
    showError(alert, null);
    try {
      const answer = await post(path(`/${seg(b.id)}/download`));
      // The Agent (or the bucket) answers as an attachment: the page stays.
      const link = h('a', { href: answer.url, download: `${b.name}.tar.zst`, hidden: true, rel: 'noreferrer' });
      document.body.append(link);
      link.click();
      link.remove();
      toast(`Downloading ${b.name}`, 'info');
    } catch (error) {
      showProblem(alert, error);
    }
  }

  function toggleLock(b) {
    return once(`lock:${b.id}`, async () => {
      showError(alert, null);
      try {
        const changed = await post(path(`/${seg(b.id)}/lock`));
        toast(changed.locked ? `Locked ${changed.name}` : `Unlocked ${changed.name}`, 'success');
        await load(true);
      } catch (error) {
        showProblem(alert, error);
      }
    });
  }

  async function deleteBackup(b, opener) {
    showError(alert, null);
    const yes = await confirmModal(`Delete ${b.name}?`,
      h('p', null, 'Its archive is deleted for good. This cannot be undone.'), 'Delete');
    if (!yes) return;
    try {
      await del(path(`/${seg(b.id)}`));
      toast(`Deleted ${b.name}`, 'success');
      await load(true);
      if (!opener.isConnected) focusList();
    } catch (error) {
      showProblem(alert, error);
    }
  }

  async function restoreDialog(b, opener) {
    showError(alert, null);
    try {
      serverState = (await get(`/servers/${seg(id)}`)).state;
    } catch {
      // The state known from before, then; the Panel decides anyway.
    }
    const stopped = RESTORABLE.includes(serverState);
    const hintId = uid('restore-truncate-hint');
    const truncate = h('input', { type: 'checkbox', name: 'truncate', id: 'restore-truncate', 'aria-describedby': hintId });
    const box = h('div', { id: 'restore-form-error', class: 'dialog-error', hidden: true });
    const submit = h('button', { type: 'submit', class: 'tone-warning', id: 'restore-form-submit' }, 'Restore');
    truncate.addEventListener('change', () => {
      submit.className = truncate.checked ? 'danger' : 'tone-warning';
      submit.textContent = truncate.checked ? 'Delete all files and restore' : 'Restore';
    });
    modal(`Restore ${b.name}?`, (close) => form({ id: 'restore-form' }, [
      h('p', null, `The files of this backup (made ${when(b.createdAt)}) replace the server's files of the same names. `
        + 'The archive is checked against its SHA-256 before any file changes.'),
      h('p', null, 'The server must be stopped while it is restored; start it again once the restore is done.'),
      stopped ? null : alertBox(`The server is ${serverState} now: stop it first, or the Panel refuses the restore.`,
        'warning', { id: 'restore-server-state' }),
      h('label', null, truncate, 'Delete all files first'),
      h('p', { class: 'hint', id: hintId },
        'Every file of the server is removed before the backup\'s files are written (once the archive has been read whole and verified). '
        + 'Without it, files that are not in the backup stay.'),
      box,
      h('div', { class: 'dialog-actions' },
        submit,
        h('button', { type: 'button', id: 'restore-form-cancel', autofocus: true, onclick: close }, 'Cancel')),
    ], async () => {
      showError(box, null);
      try {
        await post(path(`/${seg(b.id)}/restore`), { truncate: truncate.checked });
        toast(`Restoring ${b.name}`, 'info');
        close();
        await load(true);
      } catch (error) {
        showProblem(box, error);
      }
    }), { opener, id: 'restore-dialog', fallback: focusList });
  }

  // ---------------------------------------------------------- a new backup

  let createCard = null;
  if (can('backup.create')) {
    const name = field('Name', h('input', { name: 'name', maxlength: MAX_NAME, autocomplete: 'off', placeholder: 'Backup <date and time>' }),
      'Optional; without one, the backup is named after the date and time.');
    const ignored = field('Leave out', h('textarea', {
      name: 'ignored', rows: 4, spellcheck: 'false', autocomplete: 'off', class: 'ignore-lines',
      placeholder: '*.log\n/cache/\n!keep.log',
    }), 'Optional; one pattern a line, as in a .pteroignore (or .gitignore) file, from the server\'s folder: '
      + '*.log leaves out every log, /cache/ the cache folder at the top, !keep.log keeps a file an earlier line left out.');
    const lock = h('input', { type: 'checkbox', name: 'locked', id: 'backup-create-locked' });
    const box = h('div', { id: 'backup-create-error', hidden: true });
    const fields = { name, ignored };
    createCard = h('section', { class: 'card', id: 'backup-create', 'aria-labelledby': 'backup-create-heading' },
      h('h2', { id: 'backup-create-heading' }, 'New backup'),
      form({ id: 'backup-create-form', class: 'backup-create-form' }, [
        name.row, ignored.row,
        h('label', null, lock, 'Lock it against deletion'),
        box,
        h('button', { type: 'submit', class: 'primary', id: 'backup-create-submit' }, 'Make backup'),
      ], async () => {
        showError(box, null, fields);
        const body = { ignored: ignored.input.value, locked: lock.checked };
        if (name.input.value.trim()) body.name = name.input.value.trim();
        try {
          const started = await post(path(), body);
          name.input.value = '';
          ignored.input.value = '';
          lock.checked = false;
          toast(`Backing up: ${started.name}`, 'info');
          await load(true);
        } catch (error) {
          showProblem(box, error, fields);
        }
      }));
  }

  await load(true);
  return h('section', null, head,
    h('section', { class: 'card', id: 'backups', 'aria-labelledby': 'backups-heading' },
      h('div', { class: 'files-card-head' }, listHeading,
        h('button', { type: 'button', id: 'backups-refresh', onclick: () => load(true) }, 'Refresh')),
      summary, alert, loadError, listBox),
    createCard);
}
