// The network of a server (`#/servers/<id>/network`): its allocations —
// the primary one the game runs on, marked, and the extra ones its users
// added within the limit an administrator set — with their notes edited in
// place, a primary switch, an addition (the node's first free allocation)
// and a removal behind a confirmation. An administrator also sets the
// limit here.
//
// What shows follows the caller's permissions on the server
// (`allocation.read` for the tab at all; `allocation.create`,
// `allocation.update` — notes and the primary —, `allocation.delete`
// for the actions; `admin.servers` for the limit). Each refusal of the
// Panel shows in words with its detail (the limit reached, no free
// allocation left on the node, the primary that cannot be removed).
//
// Changes reach a running game at its next start; the tab says so while
// the server runs, and after a change made while it runs.

import { get, post, patch, put, del, seg } from './api.js';
import { h, replace, field, setFieldError, badge, alertBox, toast, confirmModal, uid } from './dom.js';
import { showError, form } from './pages.js';
import { serverTabs } from './files.js';

/** Server states in which a process runs. */
const RUNNING = ['starting', 'running', 'stopping'];
/** The longest notes the Panel takes. */
const MAX_NOTES = 255;
/** The highest limit the Panel takes. */
const MAX_LIMIT = 100;

/** The refusals of the allocation routes, in words: [title, what it means]. */
const PROBLEMS = {
  'allocation-limit-reached': ['Allocation limit reached', 'The server holds as many allocations as it may. Remove one, or ask an administrator to raise the limit.'],
  'no-free-allocation': ['No free allocation', 'The server\'s node has no free allocation left. An administrator can add some to the node.'],
  'allocation-assigned': ['Allocation taken', 'Another server holds that allocation.'],
  'allocation-primary': ['Primary allocation', 'The game runs on its primary allocation, so it cannot be removed. Make another one primary first.'],
  'server-deleting': ['Server being deleted', 'The server is being deleted; its allocations no longer change.'],
  'not-found': ['Not found', 'The server no longer holds that allocation; the list is shown again.'],
  forbidden: ['Not allowed', 'You may not do this on this server.'],
  'rate-limited': ['Too many requests', 'Wait a moment and try again.'],
};

/**
 * Shows `error` in `box`: a refusal in words with the Panel's detail,
 * field problems under their fields, anything else as `showError` does.
 */
function showProblem(box, error, fields = {}) {
  const words = error && error.code ? PROBLEMS[error.code] : null;
  if (!words || (error.fields && error.fields.length)) {
    showError(box, error, fields);
    return;
  }
  for (const f of Object.values(fields)) setFieldError(f, '');
  const detail = (error.problem && error.problem.detail) || '';
  replace(box, alertBox([h('strong', null, words[0]), ': ', words[1],
    detail ? h('span', { class: 'problem-detail' }, ` (${detail})`) : null], 'danger', { 'data-code': error.code }));
  box.hidden = false;
}

/** `ip:port`, with an IPv6 address in brackets. */
function address(a) {
  return a.ip.includes(':') ? `[${a.ip}]:${a.port}` : `${a.ip}:${a.port}`;
}

/** The path segment of an allocation: its ip and port. */
function key(a) {
  return `${seg(a.ip)}/${a.port}`;
}

export async function allocationsPage(ctx, id) {
  let server = await get(`/servers/${seg(id)}`);
  const perms = new Set(server.permissions);
  const can = (p) => perms.has(p);
  const head = [h('div', { class: 'page-head' }, h('h1', null, server.name)), serverTabs(id, can, 'network')];
  if (!can('allocation.read')) {
    return h('section', null, head,
      alertBox('You may not see the network of this server.', 'warning', { id: 'allocations-alert' }));
  }
  const path = (rest = '') => `/servers/${seg(id)}/allocations${rest}`;
  let items = [];
  let limit = 0;

  const alert = h('div', { id: 'allocations-alert', hidden: true });
  const summary = h('div', { id: 'allocations-summary', role: 'status' });
  const runningNote = h('div', { id: 'allocations-running' });
  const listBox = h('div', { id: 'allocation-list' });
  const listHeading = h('h2', { id: 'allocations-heading', tabindex: '-1' }, 'Allocations');
  const focusList = () => listHeading.focus();

  /** Fetches the list and the server's state, and draws them. */
  async function load() {
    listBox.setAttribute('aria-busy', 'true');
    try {
      const [answer, fresh] = await Promise.all([get(path()), get(`/servers/${seg(id)}`)]);
      items = answer.items;
      limit = answer.limit;
      server = fresh;
      draw();
    } catch (error) {
      showProblem(alert, error);
    } finally {
      listBox.removeAttribute('aria-busy');
    }
  }

  function draw() {
    const extra = items.filter((a) => !a.primary).length;
    const full = extra >= limit;
    replace(summary, h('p', { class: 'muted', id: 'allocations-count' },
      limit === 0
        ? 'This server may hold its primary allocation only (its allocation limit is 0).'
        : `${extra} of ${limit} extra ${limit === 1 ? 'allocation' : 'allocations'} in use, besides the primary.`));
    if (addButton) {
      addButton.disabled = full;
      addButton.title = full ? 'At the limit: remove an allocation, or ask an administrator to raise the limit' : '';
    }
    replace(runningNote, RUNNING.includes(server.state)
      ? alertBox('The server is running: changes reach the game at its next start.', 'info', { id: 'allocations-running-note' })
      : null);
    const active = document.activeElement;
    const focusKey = listBox.contains(active) && active.dataset ? active.dataset.focusKey : null;
    replace(listBox, items.length ? listing() : h('p', { class: 'muted', id: 'allocations-empty' }, 'No allocations.'));
    if (focusKey) {
      const again = listBox.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`);
      if (again && !again.disabled) again.focus();
      else focusList();
    }
  }

  function listing() {
    return h('div', { class: 'table-wrap' },
      h('table', { class: 'stack allocations', id: 'allocation-table' },
        h('caption', { class: 'sr-only' }, `Allocations of ${server.name}, the primary first`),
        h('thead', null, h('tr', null,
          ['Address', 'Primary', 'Notes'].map((c) => h('th', { scope: 'col' }, c)),
          h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))),
        h('tbody', null, items.map(row))));
  }

  function row(a) {
    const cell = (label, ...content) => h('td', { 'data-label': label }, content);
    return h('tr', { 'data-ip': a.ip, 'data-port': String(a.port), 'data-primary': String(a.primary) },
      cell('Address', h('code', { class: 'allocation-address' }, address(a))),
      cell('Primary', a.primary
        ? badge('primary', 'success')
        : can('allocation.update') ? h('button', {
          type: 'button',
          class: 'small allocation-primary',
          'data-focus-key': `primary:${address(a)}`,
          'aria-label': `Make ${address(a)} the primary allocation`,
          onclick: () => makePrimary(a),
        }, 'Make primary') : h('span', { class: 'muted' }, '—')),
      cell('Notes', notesCell(a)),
      h('td', { class: 'allocation-actions', 'data-label': '' }, h('div', { class: 'row-actions' },
        can('allocation.delete') && !a.primary ? h('button', {
          type: 'button',
          class: 'small danger allocation-remove',
          'data-focus-key': `remove:${address(a)}`,
          'aria-label': `Remove ${address(a)}`,
          onclick: (event) => remove(a, event.currentTarget),
        }, 'Remove') : null)));
  }

  /** The notes, as text, or as a one-line form for those who may change them. */
  function notesCell(a) {
    if (!can('allocation.update')) {
      return a.notes ? h('span', { class: 'allocation-notes' }, a.notes) : h('span', { class: 'muted' }, '—');
    }
    const input = h('input', {
      name: 'notes', value: a.notes || '', maxlength: MAX_NOTES, autocomplete: 'off',
      class: 'allocation-notes-input', 'aria-label': `Notes for ${address(a)}`, id: uid('allocation-notes'),
      'data-focus-key': `notes:${address(a)}`, placeholder: 'Notes',
    });
    // A field without a visible label: the input names itself.
    const notes = { input, error: h('p', { class: 'field-error', id: `${input.id}-error`, hidden: true }) };
    input.setAttribute('aria-describedby', notes.error.id);
    const box = h('div', { class: 'allocation-notes-error', hidden: true });
    return form({ class: 'inline small allocation-notes-form', 'data-port': String(a.port) }, [
      input,
      h('button', { type: 'submit', class: 'small', 'data-focus-key': `save:${address(a)}` }, 'Save'),
      notes.error, box,
    ], async () => {
      showError(box, null, { notes });
      try {
        const saved = await patch(path(`/${key(a)}`), { notes: input.value });
        a.notes = saved.notes;
        toast(saved.notes ? `Notes of ${address(a)} saved` : `Notes of ${address(a)} cleared`, 'success');
      } catch (error) {
        showProblem(box, error, { notes });
      }
    });
  }

  // Requests under way, by action and allocation: a second press waits
  // for the first.
  const inFlight = new Set();
  async function once(what, action) {
    if (inFlight.has(what)) return;
    inFlight.add(what);
    try {
      await action();
    } finally {
      inFlight.delete(what);
    }
  }

  function makePrimary(a) {
    return once(`primary:${address(a)}`, async () => {
      showError(alert, null);
      try {
        const made = await post(path(`/${key(a)}/primary`));
        toast(made.applies_at_next_start
          ? `${address(a)} is the primary now; the game moves to it at its next start`
          : `${address(a)} is the primary now`, made.applies_at_next_start ? 'warning' : 'success');
        await load();
      } catch (error) {
        showProblem(alert, error);
        if (error.code === 'not-found') await load();
      }
    });
  }

  async function remove(a, opener) {
    showError(alert, null);
    const running = RUNNING.includes(server.state);
    const yes = await confirmModal(`Remove ${address(a)}?`, [
      h('p', null, 'It goes back to the node\'s pool, its notes cleared, and another server may take it.'),
      running ? h('p', null, 'The game keeps using it until its next start.') : null,
    ], 'Remove');
    if (!yes) return;
    try {
      await del(path(`/${key(a)}`));
      toast(`Removed ${address(a)}`, 'success');
      await load();
      if (!opener.isConnected) focusList();
    } catch (error) {
      showProblem(alert, error);
      if (error.code === 'not-found') await load();
    }
  }

  let addButton = null;
  if (can('allocation.create')) {
    addButton = h('button', { type: 'button', class: 'primary', id: 'allocation-add', onclick: () => once('add', async () => {
      showError(alert, null);
      try {
        const added = await post(path(), {});
        toast(added.applies_at_next_start
          ? `Added ${address(added)}; the game sees it at its next start`
          : `Added ${address(added)}`, 'success');
        await load();
      } catch (error) {
        showProblem(alert, error);
      }
    }) }, 'Add allocation');
  }

  // The limit, for administrators.
  let limitCard = null;
  if (ctx.has('admin.servers')) {
    const limitField = field('Allocation limit', h('input', {
      name: 'limit', type: 'number', min: 0, max: MAX_LIMIT, step: 1, inputmode: 'numeric', id: 'allocation-limit-input',
    }), `How many allocations this server may hold besides its primary (0 to ${MAX_LIMIT}; 0: the primary only).`);
    const box = h('div', { id: 'allocation-limit-error', hidden: true });
    limitCard = h('section', { class: 'card', id: 'allocation-limit', 'aria-labelledby': 'allocation-limit-heading' },
      h('h2', { id: 'allocation-limit-heading' }, 'Limit'),
      form({ id: 'allocation-limit-form', class: 'inline' }, [
        limitField.row,
        h('button', { type: 'submit', id: 'allocation-limit-submit' }, 'Set limit'),
      ], async () => {
        showError(box, null, { limit: limitField });
        const value = Number(limitField.input.value);
        try {
          const set = await put(`/servers/${seg(id)}/allocation-limit`, { limit: value });
          toast(`The allocation limit is ${set.limit}`, 'success');
          await load();
        } catch (error) {
          showProblem(box, error, { limit: limitField });
        }
      }),
      box);
    // Filled once the list is loaded.
    limitCard.fill = () => { limitField.input.value = String(limit); };
  }

  await load();
  if (limitCard) limitCard.fill();
  return h('section', null, head,
    h('section', { class: 'card', id: 'allocations', 'aria-labelledby': 'allocations-heading' },
      h('div', { class: 'files-card-head' }, listHeading,
        h('div', { class: 'row-actions' },
          addButton,
          h('button', { type: 'button', id: 'allocations-refresh', onclick: () => load() }, 'Refresh'))),
      summary, runningNote, alert, listBox),
    limitCard);
}
