// Databases: the Databases tab of a server (`#/servers/<id>/databases`)
// and the administrators' database hosts (`#/admin/database-hosts`).
//
// The tab lists the server's MySQL/MariaDB and PostgreSQL databases (name,
// host, user, where the user may connect from, and — for callers with
// `database.view-password` — the password and the full connection
// string, hidden until shown, with copy buttons), creates one (the name
// after the server's prefix, the host pattern, and the host when there
// is a choice), rotates a password and deletes a database after a
// confirmation. What shows follows the caller's permissions on the server
// (`database.read` for the tab at all; `database.create`,
// `database.update`, `database.delete` for the actions). The Panel refuses
// what the limits do not allow; each refusal shows in words with the
// Panel's detail.
//
// The hosts page (`admin.nodes`) lists the hosts with how many databases
// each holds, adds one and edits one (the Panel connects with the
// settings before it stores them, and says why when it cannot), and
// deletes one that holds no databases.

import { get, post, put, del, seg } from './api.js';
import { h, replace, field, badge, alertBox, when, toast, modal, confirmModal, table } from './dom.js';
import { showError, form } from './pages.js';
import { serverTabs, showProblem, copyText } from './files.js';
import { denied } from './admin.js';

/** The longest name the Panel takes after the server's prefix. */
const MAX_NAME = 48;
/** The longest MySQL host pattern. */
const MAX_REMOTE = 255;
/** What stands for a hidden password. */
const MASK = '••••••••';

/** The refusals of the database routes, in words: [title, what it means]. */
const PROBLEMS = {
  'database-limit-reached': ['Limit reached', 'This server has as many databases as it may have: delete one, or ask an administrator for a higher limit.'],
  'database-name-taken': ['Name taken', 'This server has a database of that name already: choose another name.'],
  'database-not-found': ['Not found', 'The database is not there any more.'],
  'no-database-host': ['No database host', 'No database server is available for this server\'s node: ask an administrator to add one.'],
  'database-host-not-allowed': ['Host not allowed', 'That database host does not serve this server\'s node.'],
  'database-host-full': ['Host full', 'That database host holds as many databases as it may: choose another.'],
  'database-host-not-found': ['Host not found', 'That database host is not there any more.'],
  'database-host-unreachable': ['Database host unreachable', 'The database server could not be reached: nothing answers at its address and port, or not in time.'],
  'database-host-login-refused': ['Login refused', 'The database server refused the administrative user name or password.'],
  'database-host-failed': ['Database host refused', 'The database server refused the operation.'],
  'database-host-in-use': ['Host in use', 'The host still holds databases: delete them (or their servers) first.'],
  'database-host-name-taken': ['Name taken', 'Another database host has this name.'],
};

/** The connection string of `d` with its password hidden. */
function maskedConnection(d) {
  return d.password ? d.connectionString.replace(`:${d.password}@`, `:${MASK}@`) : d.connectionString;
}

export async function databasesPage(ctx, id) {
  const server = await get(`/servers/${seg(id)}`);
  const perms = new Set(server.permissions);
  const can = (p) => perms.has(p);
  const head = [h('div', { class: 'page-head' }, h('h1', null, server.name)), serverTabs(id, can, 'databases')];
  if (!can('database.read')) {
    return h('section', null, head,
      alertBox('You may not see the databases of this server.', 'warning', { id: 'databases-alert' }));
  }
  const path = (rest = '') => `/servers/${seg(id)}/databases${rest}`;
  let answer = { items: [], limit: null, prefix: '', hosts: [] };
  const alert = h('div', { id: 'databases-alert', hidden: true });
  const summary = h('div', { id: 'databases-limit', role: 'status' });
  const listBox = h('div', { id: 'database-list' });
  const listHeading = h('h2', { id: 'databases-heading', tabindex: '-1' }, 'Databases');
  // Which rows show their password, by id (kept across redraws).
  const revealed = new Set();

  async function load() {
    listBox.setAttribute('aria-busy', 'true');
    try {
      answer = await get(path());
      showError(alert, null);
      draw();
    } catch (error) {
      showProblem(alert, error, {}, PROBLEMS);
    } finally {
      listBox.removeAttribute('aria-busy');
    }
  }

  function draw() {
    const { items, limit } = answer;
    if (createCard) {
      createCard.hidden = limit === 0;
      prefixLabel.textContent = answer.prefix;
      drawHosts();
    }
    if (limit === 0) {
      replace(summary, alertBox(
        'Databases are turned off for this server (its database limit is 0). An administrator can set a limit.',
        'warning', { id: 'databases-off' }));
    } else if (typeof limit === 'number') {
      replace(summary, h('p', { class: 'muted', id: 'databases-count' },
        `${items.length} of ${limit} ${limit === 1 ? 'database' : 'databases'}.`));
    } else {
      replace(summary);
    }
    const active = document.activeElement;
    const focusKey = listBox.contains(active) && active.dataset ? active.dataset.focusKey : null;
    replace(listBox, items.length ? listing(items) : h('p', { class: 'muted', id: 'databases-empty' }, 'No databases yet.'));
    if (focusKey) {
      const again = listBox.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`);
      if (again) again.focus();
      else listHeading.focus();
    }
  }

  function listing(items) {
    return h('div', { class: 'table-wrap' },
      h('table', { class: 'stack databases', id: 'database-table' },
        h('caption', { class: 'sr-only' }, `Databases of ${server.name}`),
        h('thead', null, h('tr', null,
          ['Name', 'Host', 'User', 'Password', 'Connects from', 'Created'].map((c) => h('th', { scope: 'col' }, c)),
          h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))),
        h('tbody', null, items.map(row))));
  }

  function row(d) {
    const cell = (label, ...content) => h('td', { 'data-label': label }, content);
    const shown = revealed.has(d.id);
    const button = (kind, label, verb, attrs) => h('button', {
      type: 'button',
      'aria-label': `${verb} ${d.name}`,
      'data-focus-key': `${kind}:${d.id}`,
      ...attrs,
      class: `small database-${kind}${attrs.class ? ` ${attrs.class}` : ''}`,
    }, label);
    const connection = h('code', { class: 'wrap database-connection' }, shown ? d.connectionString : maskedConnection(d));
    const password = d.password
      ? h('span', { class: 'database-password-cell' },
        h('code', { class: 'database-password' }, shown ? d.password : MASK), ' ',
        button('reveal', shown ? 'Hide' : 'Show', shown ? 'Hide the password of' : 'Show the password of', {
          'aria-pressed': String(shown),
          onclick: () => {
            if (revealed.has(d.id)) revealed.delete(d.id); else revealed.add(d.id);
            draw();
          },
        }),
        ' ',
        button('copy-password', 'Copy', 'Copy the password of', {
          onclick: async (event) => {
            const copied = await copyText(d.password, event.currentTarget.parentElement.querySelector('code'));
            toast(copied ? 'Password copied' : 'Selected: copy it with Ctrl+C', copied ? 'success' : 'info');
          },
        }))
      : h('span', { class: 'muted small' }, 'hidden');
    return h('tr', { 'data-id': d.id, 'data-name': d.name },
      cell('Name', h('span', { class: 'database-name' }, d.name),
        h('div', { class: 'database-connection-row' }, connection, ' ',
          button('copy', 'Copy', 'Copy the connection string of', {
            onclick: async () => {
              const copied = await copyText(d.connectionString, connection);
              toast(copied ? 'Connection string copied' : 'Selected: copy it with Ctrl+C', copied ? 'success' : 'info');
            },
          }))),
      cell('Host', d.host.name, ' ', badge(d.host.kind === 'postgres' ? 'PostgreSQL' : 'MySQL', 'info')),
      cell('User', h('code', { class: 'database-user' }, d.username)),
      cell('Password', password),
      cell('Connects from', h('code', null, d.remote)),
      cell('Created', when(d.createdAt)),
      h('td', { class: 'database-actions', 'data-label': '' }, h('div', { class: 'row-actions' },
        can('database.update') ? button('rotate', 'Rotate password', 'Rotate the password of', {
          class: 'tone-warning',
          onclick: (event) => rotate(d, event.currentTarget),
        }) : null,
        can('database.delete') ? button('delete', 'Delete', 'Delete', {
          class: 'danger',
          onclick: (event) => remove(d, event.currentTarget),
        }) : null)));
  }

  // Requests under way, by action and database: a second click waits.
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

  function rotate(d, opener) {
    return once(`rotate:${d.id}`, async () => {
      showError(alert, null);
      const yes = await confirmModal(`Rotate the password of ${d.name}?`,
        h('p', null, 'The database user gets a new random password at once: whatever connects with the old one (the game server\'s configuration) stops working until it is given the new one.'),
        'Rotate password', 'tone-warning');
      if (!yes) return;
      try {
        await post(path(`/${seg(d.id)}/rotate-password`));
        toast(`New password for ${d.name}`, 'success');
        await load();
        if (!opener.isConnected) listHeading.focus();
      } catch (error) {
        showProblem(alert, error, {}, PROBLEMS);
      }
    });
  }

  function remove(d, opener) {
    return once(`delete:${d.id}`, async () => {
      showError(alert, null);
      const yes = await confirmModal(`Delete ${d.name}?`,
        h('p', null, 'The database, everything in it and its user are dropped on the database server. This cannot be undone.'),
        'Delete');
      if (!yes) return;
      try {
        await del(path(`/${seg(d.id)}`));
        revealed.delete(d.id);
        toast(`Deleted ${d.name}`, 'success');
        await load();
        if (!opener.isConnected) listHeading.focus();
      } catch (error) {
        showProblem(alert, error, {}, PROBLEMS);
      }
    });
  }

  // ---------------------------------------------------------- a new database

  let createCard = null;
  const prefixLabel = h('span', { class: 'database-prefix', id: 'database-prefix' });
  const hostSelect = h('select', { name: 'host', id: 'database-create-host' });
  const hostRow = h('div', { class: 'field', hidden: true },
    h('label', { for: 'database-create-host' }, 'Host'), hostSelect,
    h('p', { class: 'hint' }, 'Automatic picks the host with the fewest databases.'));
  function drawHosts() {
    const current = hostSelect.value;
    replace(hostSelect, h('option', { value: '' }, 'Automatic'),
      answer.hosts.map((host) => h('option', { value: host.id }, `${host.name} (${host.kind === 'postgres' ? 'PostgreSQL' : 'MySQL'})`)));
    hostSelect.value = answer.hosts.some((host) => host.id === current) ? current : '';
    hostRow.hidden = answer.hosts.length < 2;
  }
  if (can('database.create')) {
    const name = field('Name', h('input', {
      name: 'name', maxlength: MAX_NAME, autocomplete: 'off', spellcheck: 'false', required: true,
      pattern: '[a-z0-9_]+', placeholder: 'world',
    }), ['Lowercase letters, digits and underscores; the full name starts with ', prefixLabel, '.']);
    const remote = field('Connects from', h('input', {
      name: 'remote', maxlength: MAX_REMOTE, autocomplete: 'off', spellcheck: 'false', value: '%',
    }), 'Where the database user may connect from: % for anywhere, an address such as 10.0.0.5, or a pattern such as 10.0.0.%. PostgreSQL hosts take % only.');
    const box = h('div', { id: 'database-create-error', hidden: true });
    const fields = { name, remote };
    createCard = h('section', { class: 'card', id: 'database-create', 'aria-labelledby': 'database-create-heading' },
      h('h2', { id: 'database-create-heading' }, 'New database'),
      form({ id: 'database-create-form', class: 'database-create-form' }, [
        name.row, remote.row, hostRow, box,
        h('button', { type: 'submit', class: 'primary', id: 'database-create-submit' }, 'Create database'),
      ], async () => {
        showError(box, null, fields);
        const body = { name: name.input.value.trim(), remote: remote.input.value.trim() || '%' };
        if (hostSelect.value) body.host = hostSelect.value;
        try {
          const created = await post(path(), body);
          name.input.value = '';
          toast(`Created ${created.name}`, 'success');
          await load();
        } catch (error) {
          showProblem(box, error, fields, PROBLEMS);
        }
      }));
  }

  await load();
  return h('section', null, head,
    h('section', { class: 'card', id: 'databases', 'aria-labelledby': 'databases-heading' },
      h('div', { class: 'files-card-head' }, listHeading,
        h('button', { type: 'button', id: 'databases-refresh', onclick: () => load() }, 'Refresh')),
      summary, alert, listBox),
    createCard);
}

// ------------------------------------------------------------------ hosts

export async function databaseHostsPage(ctx) {
  const no = denied(ctx, 'admin.nodes');
  if (no) return no;
  const listBox = h('div', { id: 'database-host-list' });
  const alert = h('div', { id: 'database-hosts-alert', hidden: true });
  const heading = h('h1', { tabindex: '-1' }, 'Database hosts');
  let nodes = [];
  try {
    nodes = (await get('/nodes?limit=200')).items;
  } catch (error) {
    showProblem(alert, error, {}, PROBLEMS);
  }
  const nodeName = (nodeId) => (nodes.find((n) => n.id === nodeId) || { name: nodeId }).name;

  async function load() {
    listBox.setAttribute('aria-busy', 'true');
    try {
      const hosts = (await get('/database-hosts')).items;
      replace(listBox, hosts.length
        ? table(['Name', 'Kind', 'Address', 'User', 'Nodes', 'Databases', 'Actions'], hosts.map((host) => [
          h('span', { class: 'database-host-name', 'data-id': host.id }, host.name),
          host.kind === 'postgres' ? 'PostgreSQL' : 'MySQL / MariaDB',
          h('code', null, `${host.host}:${host.port}`),
          h('code', null, host.username),
          host.nodeIds.length ? host.nodeIds.map(nodeName).join(', ') : 'Every node',
          typeof host.maxDatabases === 'number' ? `${host.databases} of ${host.maxDatabases}` : String(host.databases),
          h('div', { class: 'row-actions' },
            h('button', {
              type: 'button', class: 'small database-host-edit', 'aria-haspopup': 'dialog',
              'aria-label': `Edit ${host.name}`, 'data-focus-key': `edit:${host.id}`,
              onclick: (event) => edit(host, event.currentTarget),
            }, 'Edit'),
            h('button', {
              type: 'button', class: 'small danger database-host-delete',
              'aria-label': `Delete ${host.name}`, 'data-focus-key': `delete:${host.id}`,
              onclick: () => remove(host),
            }, 'Delete')),
        ]), { id: 'database-host-table' })
        : h('p', { class: 'muted', id: 'database-hosts-empty' }, 'No database hosts yet: servers cannot have databases until one is added.'));
    } catch (error) {
      showProblem(alert, error, {}, PROBLEMS);
    } finally {
      listBox.removeAttribute('aria-busy');
    }
  }

  /**
   * The fields of a host form, filled from `host` when editing; `read()`
   * makes the request body.
   */
  function hostFields(prefix, host) {
    const name = field('Name', h('input', { name: 'name', id: `${prefix}-name`, value: host ? host.name : '', autocomplete: 'off' }));
    const kind = h('select', { name: 'kind', id: `${prefix}-kind` },
      h('option', { value: 'mysql' }, 'MySQL / MariaDB'),
      h('option', { value: 'postgres' }, 'PostgreSQL'));
    kind.value = host ? host.kind : 'mysql';
    const kindRow = h('div', { class: 'field' }, h('label', { for: kind.id }, 'Kind'), kind);
    const address = field('Address', h('input', { name: 'host', id: `${prefix}-host`, value: host ? host.host : '', autocomplete: 'off', spellcheck: 'false', placeholder: '10.0.0.5' }),
      'As the Panel reaches it; servers\' connection strings name it too.');
    const port = field('Port', h('input', { name: 'port', id: `${prefix}-port`, type: 'number', min: 1, max: 65535, value: host ? String(host.port) : '', placeholder: host ? '' : '3306 or 5432' }));
    const username = field('Administrative user', h('input', { name: 'username', id: `${prefix}-username`, value: host ? host.username : '', autocomplete: 'off', spellcheck: 'false' }),
      'A user that may create databases and users, and grant privileges (PostgreSQL: create roles and databases).');
    const password = field('Password', h('input', { name: 'password', id: `${prefix}-password`, type: 'password', autocomplete: 'new-password', placeholder: host ? 'unchanged' : 'none' }),
      host ? 'Leave empty to keep the stored password; it is never shown.' : 'Sealed at rest and never shown again.');
    const max = field('Most databases', h('input', { name: 'maxDatabases', id: `${prefix}-max`, type: 'number', min: 0, value: host && typeof host.maxDatabases === 'number' ? String(host.maxDatabases) : '', placeholder: 'no limit' }));
    const boxes = nodes.map((node) => h('label', null,
      h('input', { type: 'checkbox', name: 'nodeIds', value: node.id, checked: Boolean(host && host.nodeIds.includes(node.id)) }), ` ${node.name}`));
    const nodeSet = h('fieldset', { class: 'field', id: `${prefix}-nodes` },
      h('legend', null, 'Nodes whose servers may use it'),
      boxes.length ? boxes : h('p', { class: 'muted' }, 'No nodes yet.'),
      h('p', { class: 'hint' }, 'None ticked: every node.'));
    const fields = { name, host: address, port, username, password, maxDatabases: max };
    const read = () => {
      const body = {
        name: name.input.value.trim(),
        kind: kind.value,
        host: address.input.value.trim(),
        username: username.input.value.trim(),
        nodeIds: boxes.map((b) => b.querySelector('input')).filter((i) => i.checked).map((i) => i.value),
      };
      if (port.input.value.trim()) body.port = Number(port.input.value);
      if (max.input.value.trim()) body.maxDatabases = Number(max.input.value);
      if (password.input.value) body.password = password.input.value;
      return body;
    };
    const rows = [name.row, kindRow, h('div', { class: 'grid3' }, address.row, port.row, max.row), username.row, password.row, nodeSet];
    return { rows, fields, read };
  }

  function edit(host, opener) {
    const parts = hostFields('database-host-edit', host);
    modal(`Edit ${host.name}`, (close) => {
      const box = h('div', { id: 'database-host-edit-error', class: 'dialog-error', hidden: true });
      return form({ id: 'database-host-edit-form' }, [
        parts.rows, box,
        h('div', { class: 'dialog-actions' },
          h('button', { type: 'submit', class: 'primary', id: 'database-host-edit-submit' }, 'Save'),
          h('button', { type: 'button', autofocus: true, onclick: close }, 'Cancel')),
      ], async () => {
        showError(box, null, parts.fields);
        try {
          await put(`/database-hosts/${seg(host.id)}`, parts.read());
          toast(`Saved ${host.name}`, 'success');
          close();
          await load();
        } catch (error) {
          showProblem(box, error, parts.fields, PROBLEMS);
        }
      });
    }, { opener, id: 'database-host-dialog', fallback: () => heading.focus() });
  }

  async function remove(host) {
    showError(alert, null);
    const yes = await confirmModal(`Delete ${host.name}?`,
      h('p', null, 'The Panel forgets this database host. A host that still holds databases is refused.'), 'Delete');
    if (!yes) return;
    try {
      await del(`/database-hosts/${seg(host.id)}`);
      toast(`Deleted ${host.name}`, 'success');
      await load();
      heading.focus();
    } catch (error) {
      showProblem(alert, error, {}, PROBLEMS);
    }
  }

  const adding = hostFields('database-host', null);
  const box = h('div', { id: 'database-host-error', hidden: true });
  await load();
  return h('section', null, heading,
    h('p', { class: 'muted' }, 'MySQL, MariaDB and PostgreSQL servers the Panel creates servers\' databases on. The Panel connects to a host before it stores it.'),
    alert, listBox,
    h('section', { class: 'card', id: 'database-host-create', 'aria-labelledby': 'database-host-create-heading' },
      h('h2', { id: 'database-host-create-heading' }, 'New database host'),
      form({ id: 'database-host-form' }, [
        adding.rows, box,
        h('button', { type: 'submit', class: 'primary', id: 'database-host-submit' }, 'Add host'),
      ], async () => {
        showError(box, null, adding.fields);
        try {
          const created = await post('/database-hosts', adding.read());
          toast(`Added ${created.name}`, 'success');
          adding.fields.name.input.value = '';
          adding.fields.password.input.value = '';
          await load();
        } catch (error) {
          showProblem(box, error, adding.fields, PROBLEMS);
        }
      })));
}
