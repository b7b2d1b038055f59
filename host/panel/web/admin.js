// Admin pages: users (and their roles), roles, nodes (online state,
// registration tokens, allocations) and plugins (installed; the
// Marketplace: search, install, review and grant, update all; upload;
// grant, activate, configure, logs, quarantine).

import { api, get, post, patch, put, del, seg } from './api.js';
import { h, add, replace, refresh, field, badge, table, alertBox, when, toast } from './dom.js';
import { showError, stateTone, form } from './pages.js';

/** A "Forbidden" page unless the user holds `permission`; null when they do. */
export function denied(ctx, permission) {
  return ctx.has(permission) ? null : h('section', null, h('h1', null, 'Forbidden'), alertBox(`This page needs the ${permission} permission.`));
}

// ---------------------------------------------------------------- users

export async function usersPage(ctx) {
  const no = denied(ctx, 'admin.users');
  if (no) return no;
  const listBox = h('div', { id: 'user-list' });
  const box = h('div', { hidden: true });
  const editor = h('div', { id: 'user-editor' });
  let roles = [];
  try { roles = (await get('/roles')).items; } catch { roles = []; }

  // Roles and the admin flag of one user, edited below the list.
  async function edit(u) {
    let detail;
    try {
      detail = await get(`/users/${seg(u.id)}`);
    } catch (error) {
      showError(box, error);
      return;
    }
    const have = new Set(detail.roles.map((r) => r.id));
    const ebox = h('div', { hidden: true });
    const adminCheck = h('input', { type: 'checkbox', checked: detail.admin, disabled: u.id === ctx.me.user.id });
    const checks = h('fieldset', { class: 'checks' }, h('legend', null, 'Roles'),
      roles.length ? roles.map((r) => h('label', { title: r.permissions.join(', ') }, h('input', { type: 'checkbox', value: r.id, checked: have.has(r.id) }), ` ${r.name}`))
        : h('p', { class: 'muted' }, 'No roles yet.'));
    replace(editor, h('section', { class: 'card' }, h('h2', null, `Edit ${u.username}`),
      u.id === ctx.me.user.id ? null : signInSection(u, detail),
      h('p', { class: 'muted small' }, `${detail.totp_enabled ? 'Two-factor authentication on' : 'Two-factor authentication off'} · signs in with ${detail.identities.map((i) => i.provider).join(', ') || 'no provider yet'}`),
      form({ id: 'user-edit-form' }, [h('label', null, adminCheck, ' Administrator'), checks, ebox,
        h('div', { class: 'power' }, h('button', { type: 'submit', class: 'primary' }, 'Save'),
          h('button', { type: 'button', onclick: () => replace(editor) }, 'Close'))], async () => {
        const body = { roles: [...checks.querySelectorAll('input:checked')].map((i) => i.value) };
        if (!adminCheck.disabled) body.admin = adminCheck.checked;
        try {
          await patch(`/users/${seg(u.id)}`, body);
          toast(`Saved ${u.username}`, 'success');
          replace(editor);
          await load();
        } catch (error) {
          showError(ebox, error);
        }
      })));
    editor.querySelector('input:not([disabled])')?.focus();
  }

  async function load() {
    try {
      const users = (await get('/users?limit=200')).items;
      replace(listBox, table(['Username', 'Email', 'Admin', 'State', 'Created', ''], users.map((u) => [
        u.username, u.email || '—', u.admin ? 'yes' : 'no',
        u.disabled ? badge('disabled', 'danger') : badge('active', 'success'), when(u.created_at),
        h('div', { class: 'row-actions' },
          h('button', { type: 'button', class: 'small', 'aria-label': `Edit ${u.username}`, onclick: () => edit(u) }, 'Edit'),
          u.id === ctx.me.user.id ? null : h('button', { type: 'button', class: 'small', 'aria-label': `${u.disabled ? 'Enable' : 'Disable'} ${u.username}`, onclick: async () => {
            try { await patch(`/users/${seg(u.id)}`, { disabled: !u.disabled }); await load(); } catch (error) { showError(box, error); }
          } }, u.disabled ? 'Enable' : 'Disable')),
      ])));
    } catch (error) {
      showError(box, error);
    }
  }
  await load();
  const username = field('Username', h('input', { name: 'username' }));
  const email = field('Email', h('input', { name: 'email', type: 'email' }));
  const admin = h('label', null, h('input', { type: 'checkbox', name: 'admin' }), ' Administrator');
  const roleChecks = h('fieldset', { class: 'checks' }, h('legend', null, 'Roles'),
    roles.map((r) => h('label', null, h('input', { type: 'checkbox', value: r.id }), ` ${r.name}`)));
  const initial = field('Initial password', h('input', { name: 'password', type: 'password', autocomplete: 'new-password', id: 'new-user-password' }),
    'Optional: or leave it empty and make an invitation link from the user\'s Edit panel.');
  const mustChange = h('label', null, h('input', { type: 'checkbox', id: 'new-user-must-change', checked: true }), ' Must choose a new password at the first sign-in');
  const mail = ctx.has('settings.write') ? await mailSection() : null;
  return h('section', null, h('h1', null, 'Users'), listBox, editor,
    h('section', { class: 'card' }, h('h2', null, 'New user'),
      h('p', { class: 'muted' }, 'Give the user an initial password here, or an invitation link from their Edit panel afterwards (or link a provider identity through the API). Users change their own password on their account page.'),
      form({ id: 'user-form' }, [username.row, email.row, admin, roleChecks, initial.row, mustChange, box, h('button', { type: 'submit', class: 'primary' }, 'Create user')], async () => {
        const body = {
          username: username.input.value,
          admin: admin.querySelector('input').checked,
          roles: [...roleChecks.querySelectorAll('input:checked')].map((i) => i.value),
        };
        if (email.input.value) body.email = email.input.value;
        const fields = { username, email, password: initial };
        showError(box, null, fields);
        let created;
        try {
          created = await post('/users', body);
        } catch (error) {
          showError(box, error, fields);
          return;
        }
        if (initial.input.value) {
          try {
            await put(`/users/${seg(created.id)}/password`, { password: initial.input.value, must_change: mustChange.querySelector('input').checked });
          } catch (error) {
            // The user exists; only the password was refused.
            await load();
            showError(box, error, fields);
            add(box, alertBox(`${created.username} was created without a password: set one from the Edit panel, or invite them.`, 'warning'));
            return;
          }
        }
        toast('User created', 'success');
        for (const f of Object.values(fields)) f.input.value = '';
        await load();
      })), mail);
}

/** The Panel's SMTP settings, for invitations and password resets. */
async function mailSection() {
  let current = null;
  try {
    current = await get('/mail');
  } catch {
    current = null;
  }
  const host = field('SMTP server', h('input', { name: 'host', id: 'mail-host', value: current ? current.host : '' }));
  const port = field('Port', h('input', { name: 'port', id: 'mail-port', inputmode: 'numeric', value: current ? String(current.port) : '587' }));
  const security = h('select', { name: 'security', id: 'mail-security' },
    [['starttls', 'STARTTLS'], ['tls', 'TLS'], ['none', 'None (loopback relay)']].map(([v, l]) => h('option', { value: v, selected: current ? current.security === v : v === 'starttls' }, l)));
  const securityField = field('Security', security);
  const username = field('User name', h('input', { name: 'username', id: 'mail-username', autocomplete: 'off', value: current && current.username ? current.username : '' }));
  const password = field('Password', h('input', { name: 'password', id: 'mail-password', type: 'password', autocomplete: 'new-password', placeholder: current && current.has_password ? 'stored; leave empty to keep' : '' }));
  const from = field('From', h('input', { name: 'from', id: 'mail-from', value: current ? current.from : '' }), 'An address, or Name <address>.');
  const testTo = field('Send a test to', h('input', { name: 'to', id: 'mail-test-to', type: 'email' }));
  const box = h('div', { hidden: true, id: 'mail-result' });
  const fields = { host, port, security: securityField, username, password, from, to: testTo };
  async function test() {
    showError(box, null, fields);
    try {
      await post('/mail/test', testTo.input.value ? { to: testTo.input.value } : {});
      replace(box, alertBox('The SMTP server took the test message.', 'success'));
      box.hidden = false;
    } catch (error) {
      showError(box, error, fields);
    }
  }
  return h('section', { class: 'card', id: 'mail' }, h('h2', null, 'Mail'),
    h('p', { class: 'muted' }, 'Invitations and password resets are sent with these settings.'),
    form({ id: 'mail-form' }, [host.row, port.row, securityField.row, username.row, password.row, from.row, testTo.row, box,
      h('div', { class: 'power' }, h('button', { type: 'submit', class: 'primary' }, 'Save mail settings'),
        h('button', { type: 'button', id: 'mail-test', onclick: test }, 'Send a test'))], async () => {
      showError(box, null, fields);
      const body = { host: host.input.value, port: Number(port.input.value), security: security.value, from: from.input.value };
      if (username.input.value) body.username = username.input.value;
      if (password.input.value) body.password = password.input.value;
      try {
        await put('/mail', body);
        password.input.value = '';
        toast('Mail settings saved', 'success');
      } catch (error) {
        showError(box, error, fields);
      }
    }));
}

/**
 * How a user signs in, as an administrator sets it: a password (optionally
 * to be changed at the next sign-in), an invitation link or a reset link,
 * each shown once and optionally mailed.
 */
function signInSection(u, detail) {
  const box = h('div', { hidden: true, id: 'user-password-result' });
  const password = field('New password', h('input', { name: 'password', type: 'password', autocomplete: 'new-password', id: 'user-new-password' }), 'The sign-in provider decides what it accepts; the user\'s sessions end.');
  const mustChange = h('input', { type: 'checkbox', id: 'user-must-change', checked: true });
  const sendMail = h('input', { type: 'checkbox', id: 'user-send-mail', disabled: !u.email });
  const linkBox = h('div', { id: 'user-link', 'aria-live': 'polite' });
  async function makeLink(kind) {
    showError(box, null);
    try {
      const made = await post(`/users/${seg(u.id)}/${kind}`, { send_mail: sendMail.checked });
      const url = h('input', { readonly: true, value: made.url, id: 'user-link-url', 'aria-label': 'The link' });
      const mailNote = made.mail === 'sent' ? `Mailed to ${u.email}.`
        : made.mail === 'not-requested' ? 'Not mailed: pass it on yourself.'
          : `The mail could not be sent (${made.mail.replace(/^failed: /, '')}); pass the link on yourself.`;
      replace(linkBox, alertBox([
        h('strong', null, kind === 'invitation' ? 'Invitation link' : 'Reset link'),
        ` (works once, until ${when(made.expires_at)}; shown only now). ${mailNote}`, url,
      ], made.mail.startsWith('failed') ? 'warning' : 'success', { 'data-mail': made.mail }));
      url.select();
    } catch (error) {
      showError(box, error);
    }
  }
  return h('div', { class: 'card inset', id: 'user-sign-in' }, h('h3', null, 'Sign-in'),
    form({ id: 'user-password-form' }, [password.row,
      h('label', null, mustChange, ' Must choose a new password at the next sign-in'), box,
      h('button', { type: 'submit' }, 'Set password')], async () => {
      showError(box, null, { password });
      try {
        await put(`/users/${seg(u.id)}/password`, { password: password.input.value, must_change: mustChange.checked });
        password.input.value = '';
        toast(`Password set for ${u.username}`, 'success');
      } catch (error) {
        showError(box, error, { password });
      }
    }),
    h('div', { class: 'power' },
      h('label', { title: u.email ? '' : 'The user has no email address' }, sendMail, ` Send by mail${u.email ? ` to ${u.email}` : ''}`),
      detail.identities.length
        ? h('button', { type: 'button', id: 'user-reset-link', onclick: () => makeLink('password-reset') }, 'Make a reset link')
        : h('button', { type: 'button', id: 'user-invite', onclick: () => makeLink('invitation') }, 'Make an invitation link')),
    linkBox);
}

// ---------------------------------------------------------------- roles

export async function rolesPage(ctx) {
  const no = denied(ctx, 'admin.users');
  if (no) return no;
  const listBox = h('div', { id: 'role-list' });
  const box = h('div', { hidden: true });
  let permissions = [];
  try { permissions = (await get('/permissions')).items; } catch { permissions = []; }
  async function load() {
    try {
      const roles = (await get('/roles')).items;
      replace(listBox, roles.length === 0 ? h('p', { class: 'muted' }, 'No roles yet. Administrators may do everything; give everyone else roles.') : table(['Name', 'Description', 'Permissions', ''], roles.map((r) => [
        r.name, r.description, r.permissions.join(', '),
        h('button', { type: 'button', class: 'danger small', onclick: async () => {
          if (!window.confirm(`Delete the role ${r.name}?`)) return;
          try { await del(`/roles/${seg(r.id)}`); await load(); } catch (error) { showError(box, error); }
        } }, 'Delete'),
      ])));
    } catch (error) {
      showError(box, error);
    }
  }
  await load();
  const name = field('Name', h('input', { name: 'name' }));
  const description = field('Description', h('input', { name: 'description' }));
  const checks = h('fieldset', { class: 'checks' }, h('legend', null, 'Permissions'),
    permissions.map((p) => h('label', { title: p.description || '' }, h('input', { type: 'checkbox', value: p.name }), ` ${p.name}`)));
  return h('section', null, h('h1', null, 'Roles'), listBox,
    h('section', { class: 'card' }, h('h2', null, 'New role'),
      form({ id: 'role-form' }, [name.row, description.row, checks, box, h('button', { type: 'submit', class: 'primary' }, 'Create role')], async () => {
        try {
          await post('/roles', {
            name: name.input.value,
            description: description.input.value,
            permissions: [...checks.querySelectorAll('input:checked')].map((i) => i.value),
          });
          toast('Role created', 'success');
          showError(box, null, { name, description });
          await load();
        } catch (error) {
          showError(box, error, { name, description });
        }
      })));
}

// ---------------------------------------------------------------- nodes

export async function nodesPage(ctx) {
  const no = denied(ctx, 'admin.nodes');
  if (no) return no;
  const listBox = h('div', { id: 'node-list', 'aria-live': 'polite' });
  const box = h('div', { hidden: true });
  const tokenBox = h('div', { id: 'node-token' });
  async function load() {
    try {
      const nodes = (await get('/nodes?limit=200')).items;
      refresh(listBox, JSON.stringify(nodes), () => nodes.length ? table(['Name', 'Address', 'State', 'Last seen', 'Capacity', 'Agent', 'Actions'], nodes.map((n) => [
        n.name, n.address,
        h('span', { class: 'node-state' }, n.online ? badge('online', 'success') : badge(n.registered ? 'offline' : 'not registered', n.registered ? 'danger' : 'neutral')),
        when(n.last_seen_at),
        `${n.memory_mb} MiB, ${n.disk_mb} MiB disk, ${n.cpu_percent} % CPU`,
        n.agent_version || '—',
        h('div', { class: 'row-actions' },
          h('button', { type: 'button', class: 'small', onclick: async () => {
            try {
              const token = await post(`/nodes/${seg(n.id)}/registration-tokens`, {});
              replace(tokenBox, alertBox(['Registration token for ', n.name, ' (shown once, expires ', when(token.expires_at), '): ',
                h('code', { class: 'wrap' }, token.token)], 'success'));
            } catch (error) { showError(box, error); }
          } }, 'Registration token'),
          allocationForm(n, box)),
      ])) : h('p', { class: 'muted' }, 'No nodes yet.'));
    } catch (error) {
      showError(box, error);
    }
  }
  await load();
  const timer = setInterval(load, 5000);
  ctx.onLeave(() => clearInterval(timer));
  const name = field('Name', h('input', { name: 'name' }));
  const address = field('Address', h('input', { name: 'address' }));
  const memory = field('Memory (MiB)', h('input', { name: 'memory', type: 'number', value: '8192' }));
  const disk = field('Disk (MiB)', h('input', { name: 'disk', type: 'number', value: '50000' }));
  const cpu = field('CPU (%)', h('input', { name: 'cpu', type: 'number', value: '400' }));
  return h('section', null, h('h1', null, 'Nodes'), tokenBox, listBox,
    h('section', { class: 'card' }, h('h2', null, 'New node'),
      form({ id: 'node-form' }, [name.row, address.row, h('div', { class: 'grid3' }, memory.row, disk.row, cpu.row), box,
        h('button', { type: 'submit', class: 'primary' }, 'Create node')], async () => {
        const fields = { name, address, memory_mb: memory, disk_mb: disk, cpu_percent: cpu };
        try {
          await post('/nodes', {
            name: name.input.value, address: address.input.value,
            memory_mb: Number(memory.input.value), disk_mb: Number(disk.input.value), cpu_percent: Number(cpu.input.value),
          });
          toast('Node created', 'success');
          showError(box, null, fields);
          await load();
        } catch (error) {
          showError(box, error, fields);
        }
      })));
}

function allocationForm(node, box) {
  const ports = h('input', { 'aria-label': `Ports for ${node.name}`, placeholder: '25565-25570', size: 12 });
  return form({ class: 'inline small' }, [ports, h('button', { type: 'submit', class: 'small' }, 'Add ports')], async () => {
    try {
      const list = ports.value.split(',').map((p) => p.trim()).filter(Boolean).map((p) => (/^\d+$/.test(p) ? Number(p) : p));
      await post(`/nodes/${seg(node.id)}/allocations`, { ip: node.address, ports: list });
      toast('Ports added', 'success');
      ports.value = '';
    } catch (error) {
      showError(box, error);
    }
  });
}

// ---------------------------------------------------------------- plugins

export async function pluginsPage(ctx) {
  const no = denied(ctx, 'admin.plugins');
  if (no) return no;
  const listBox = h('div', { id: 'plugin-list', 'aria-live': 'polite' });
  const box = h('div', { hidden: true });
  let installed = new Map();
  async function load() {
    try {
      const plugins = (await get('/plugins')).items;
      installed = new Map(plugins.map((p) => [p.id, p]));
      refresh(listBox, JSON.stringify(plugins.map((p) => [p.id, p.name, p.version, p.kinds, p.state])), () => table(['Plugin', 'Version', 'Kinds', 'State'], plugins.map((p) => [
        h('a', { href: `#/admin/plugins/${seg(p.id)}` }, `${p.name} (${p.id})`), p.version, p.kinds.join(', '),
        badge(p.state, stateTone(p.state)),
      ])));
    } catch (error) {
      showError(box, error);
    }
  }
  await load();
  const timer = setInterval(load, 5000);
  ctx.onLeave(() => clearInterval(timer));
  const market = await marketplaceSection(() => installed, load);
  const file = h('input', { type: 'file', accept: '.cap', id: 'plugin-file' });
  return h('section', null, h('h1', null, 'Plugins'),
    h('section', { class: 'card' }, h('h2', null, 'Installed'), listBox), market,
    h('section', { class: 'card' }, h('h2', null, 'Upload a package'),
      form({ id: 'plugin-upload' }, [field('Package (.cap)', file).row, box, h('button', { type: 'submit', class: 'primary' }, 'Upload')], async () => {
        if (!file.files.length) {
          showError(box, new Error('Choose a .cap file first.'));
          return;
        }
        try {
          const answer = await api('POST', '/plugins', file.files[0]);
          toast(`Installed ${answer.plugin.id} ${answer.plugin.version}`, 'success');
          location.hash = `#/admin/plugins/${seg(answer.plugin.id)}`;
        } catch (error) {
          showError(box, error);
        }
      })));
}

function price(p) {
  if (!p.paid) return badge('free', 'success');
  if (!p.price) return badge('paid', 'warning');
  return badge(`${(p.price.amount / 100).toFixed(2)} ${String(p.price.currency).toUpperCase()}`, 'warning');
}

/**
 * Installs from the configured Marketplace: search, install (inactive,
 * nothing granted), then review what the verified package requests,
 * grant and activate; update everything installed from it. `installed()`
 * is the current plugin map; `reload()` refreshes the installed list.
 */
async function marketplaceSection(installed, reload) {
  const section = h('section', { class: 'card', id: 'marketplace' });
  const list = h('div', { id: 'market-list', 'aria-live': 'polite' });
  const box = h('div', { id: 'market-error', hidden: true });
  const outcome = h('div', { id: 'market-outcome' });
  const q = h('input', { name: 'q', type: 'search', 'aria-label': 'Search the Marketplace', placeholder: 'Name, id or description' });
  let locked = new Map();

  function status(p) {
    const have = installed().get(p.id);
    if (!have) return '—';
    const from = locked.has(p.id) ? '' : ' (uploaded, not from the Marketplace)';
    if (have.version === p.latest_version) return badge(`installed ${have.version}${from}`, 'success');
    return badge(`installed ${have.version}, ${p.latest_version} available${from}`, 'warning');
  }

  function installForm(p) {
    const requirement = h('input', { name: 'requirement', size: 8, placeholder: 'any version', 'aria-label': `Version requirement for ${p.id}` });
    return form({ class: 'inline small market-install', 'data-package': p.id },
      [requirement, h('button', { type: 'submit', class: 'small primary', 'aria-label': `Install ${p.id}` }, 'Install')], async () => {
        showError(box, null);
        replace(outcome);
        const body = { package: p.id, grants: {}, activate: false };
        if (requirement.value.trim()) body.requirement = requirement.value.trim();
        try {
          const answer = await post('/marketplace/install', body);
          await reload();
          await render();
          showOutcome(answer, 'Installed');
        } catch (error) {
          showError(box, error);
        }
      });
  }

  function showOutcome(answer, verb) {
    if (!answer.changed.length) {
      replace(outcome, alertBox('Everything is up to date; nothing changed.', 'info'));
      return;
    }
    replace(outcome, answer.changed.map((c) => {
      const p = c.plugin;
      const what = c.replaced ? `${verb} ${p.name} (${p.id}) ${c.replaced} → ${p.version}` : `${verb} ${p.name} (${p.id}) ${p.version}`;
      if (p.state === 'active') return alertBox(`${what}; it is active.`, 'success');
      return h('div', { class: 'alert tone-info market-review', 'data-plugin': p.id },
        h('p', null, h('strong', null, what), '. It passed every check and is installed, but not active: none of its code runs yet.'),
        grantForm(p, async () => {
          await reload();
          await render();
          replace(outcome, alertBox(`${p.name} is active.`, 'success'));
        }));
    }));
    const first = outcome.querySelector('input, button');
    if (first) first.focus();
  }

  async function render() {
    const params = new URLSearchParams({ limit: '50', sort: 'downloads' });
    if (q.value.trim()) params.set('q', q.value.trim());
    try {
      locked = new Map((await get('/marketplace/lockfile')).lockfile.map((p) => [p.id, p.version]));
      const page = await get(`/marketplace/packages?${params}`);
      replace(list, page.items.length ? table(['Package', 'Latest', 'Price', 'Installed', ''], page.items.map((p) => [
        h('div', null, h('strong', null, p.name), ' ', h('code', null, p.id),
          h('p', { class: 'muted small pui-text' }, p.description),
          h('p', { class: 'muted small pui-text' }, [`by ${p.publisher}`, p.kinds.join(', '), p.games.join(', '), `${p.downloads} downloads`].filter(Boolean).join(' · '))),
        p.latest_version, price(p), status(p),
        installed().has(p.id) ? '' : installForm(p),
      ]), { id: 'market-table' }) : h('p', { class: 'muted' }, q.value.trim() ? 'No package matches.' : 'The Marketplace has no packages yet.'));
    } catch (error) {
      if (error.status === 409 && error.code === 'conflict') {
        replace(section, h('h2', null, 'Marketplace'), alertBox(['No Marketplace is configured on this Panel: ', error.message], 'info', { id: 'market-unconfigured' }));
        return;
      }
      replace(list);
      showError(box, error);
    }
  }

  const update = h('button', { type: 'button', id: 'market-update', onclick: async () => {
    showError(box, null);
    replace(outcome);
    update.disabled = true;
    try {
      const answer = await post('/marketplace/update');
      await reload();
      await render();
      showOutcome(answer, 'Updated');
    } catch (error) {
      showError(box, error);
    } finally {
      update.disabled = false;
    }
  } }, 'Update all');

  add(section, h('div', { class: 'page-head' }, h('h2', null, 'Marketplace'), update),
    h('p', { class: 'muted small' }, 'Every package is checked (signatures, transparency log, timestamp, digest) before anything is installed. A new plugin is installed inactive; then you choose what it may use.'),
    form({ class: 'inline', id: 'market-search' }, [q, h('button', { type: 'submit' }, 'Search')], () => render()),
    box, outcome, list);
  await render();
  return section;
}

/** The capabilities in a grant set, as [label, apply] pairs; `apply(g)` adds it to grant set `g`. */
function capabilities(set) {
  const items = [];
  if (set.kv) items.push(['key-value store', (g) => { g.kv = true; }]);
  if (set.config) items.push(['configuration', (g) => { g.config = true; }]);
  if (set.clock) items.push(['clock', (g) => { g.clock = true; }]);
  if (set.random) items.push(['randomness', (g) => { g.random = true; }]);
  for (const s of set.secrets || []) items.push([`secret ${s}`, (g) => { g.secrets.push(s); }]);
  for (const host of set.http_hosts || []) items.push([`HTTP to ${host}`, (g) => { g.http_hosts.push(host); }]);
  for (const t of set.events_publish || []) items.push([`publish ${t}`, (g) => { g.events_publish.push(t); }]);
  for (const s of set.panel || []) items.push([`Panel API ${s}`, (g) => { g.panel.push(s); }]);
  return items;
}

function grantList(set) {
  return capabilities(set).map(([label]) => label);
}

/** Checkboxes for what `plugin` requests; grants the checked ones and activates it. */
function grantForm(plugin, done) {
  const items = capabilities(plugin.requested);
  const checks = items.map(([label]) => h('input', { type: 'checkbox', checked: true, value: label }));
  const box = h('div', { hidden: true });
  return form({ class: 'grant-form', 'data-plugin': plugin.id }, [
    items.length
      ? h('fieldset', { class: 'checks' }, h('legend', null, `${plugin.name} requests`),
        items.map(([label], i) => h('label', null, checks[i], ` ${label}`)))
      : h('p', null, `${plugin.name} requests no capabilities.`),
    box,
    h('button', { type: 'submit', class: 'primary' }, items.length ? 'Grant the checked and activate' : 'Activate'),
  ], async () => {
    const grants = { kv: false, config: false, clock: false, random: false, secrets: [], http_hosts: [], events_publish: [], panel: [] };
    items.forEach(([, apply], i) => { if (checks[i].checked) apply(grants); });
    try {
      await post(`/plugins/${seg(plugin.id)}/grant`, grants);
      await post(`/plugins/${seg(plugin.id)}/activate`);
      toast(`${plugin.name} is active`, 'success');
      await done();
    } catch (error) {
      showError(box, error);
    }
  });
}

export async function pluginDetailPage(ctx, id) {
  const no = denied(ctx, 'admin.plugins');
  if (no) return no;
  const box = h('div', { hidden: true, id: 'plugin-error' });
  const page = h('section');
  async function render() {
    let plugin;
    let status = null;
    try {
      plugin = await get(`/plugins/${seg(id)}`);
      status = await get(`/plugins/${seg(id)}/status`).catch(() => null);
      shown = fingerprint(plugin, status);
    } catch (error) {
      showError(box, error);
      replace(page, h('h1', null, id), box);
      return;
    }
    const act = (path, body) => async () => {
      try {
        await post(`/plugins/${seg(id)}/${path}`, body);
        await render();
      } catch (error) {
        showError(box, error);
      }
    };
    const requested = grantList(plugin.requested);
    const granted = new Set(grantList(plugin.granted));
    const caps = h('section', { class: 'card' }, h('h2', null, 'Capabilities'),
      requested.length ? h('ul', { class: 'caps' }, requested.map((c) => h('li', null, granted.has(c) ? badge('granted', 'success') : badge('not granted', 'warning'), ` ${c}`)))
        : h('p', { class: 'muted' }, 'This plugin requests no capabilities.'),
      requested.some((c) => !granted.has(c)) ? h('button', { type: 'button', id: 'grant-all', onclick: act('grant', plugin.requested) }, 'Grant everything requested') : null);
    const config = h('section', { class: 'card' }, h('h2', null, 'Configuration'));
    try {
      const cfg = await get(`/plugins/${seg(id)}/config`);
      if (cfg.items.length) {
        const fields = {};
        for (const e of cfg.items) {
          fields[e.key] = field(`${e.key}${e.required ? ' (required)' : ''}`, h('input', { name: e.key, value: e.value || '', placeholder: e.default || '' }), e.description || null);
        }
        const cbox = h('div', { hidden: true });
        add(config, form({ id: 'plugin-config' }, [Object.values(fields).map((f) => f.row), cbox, h('button', { type: 'submit', class: 'primary' }, 'Save')], async () => {
          const values = {};
          for (const [key, f] of Object.entries(fields)) values[key] = f.input.value === '' ? null : f.input.value;
          try {
            await put(`/plugins/${seg(id)}/config`, { values });
            showError(cbox, null, fields);
            toast('Configuration saved', 'success');
          } catch (error) {
            showError(cbox, error, fields);
          }
        }));
      } else {
        add(config, h('p', { class: 'muted' }, 'Nothing to configure.'));
      }
      if (cfg.secrets_set.length) add(config, h('p', null, `Secrets set: ${cfg.secrets_set.join(', ')}`));
    } catch (error) {
      add(config, alertBox(error.message));
    }
    const logs = h('section', { class: 'card' }, h('h2', null, 'Logs'));
    try {
      const lines = (await get(`/plugins/${seg(id)}/logs`)).items;
      add(logs, lines.length ? h('div', { class: 'console small-console' }, lines.map((l) => h('div', { class: `log-${l.level}` }, `${when(l.at)} ${l.level} ${l.message}`)))
        : h('p', { class: 'muted' }, 'No log lines.'));
    } catch (error) {
      add(logs, alertBox(error.message));
    }
    const quarantine = status && status.quarantine_reason
      ? alertBox(['Quarantined since ', when(status.quarantined_since), ': ', status.quarantine_reason, ' ',
        h('button', { type: 'button', onclick: act('release') }, 'Release')], 'danger')
      : null;
    replace(page,
      h('div', { class: 'page-head' }, h('h1', null, `${plugin.name} ${plugin.version}`), h('span', { id: 'plugin-state' }, badge(plugin.state, stateTone(plugin.state)))),
      h('p', { class: 'muted' }, `${plugin.id} · ${plugin.kinds.join(', ')}`),
      box, quarantine,
      h('div', { class: 'power' },
        plugin.state === 'active'
          ? h('button', { type: 'button', onclick: act('deactivate') }, 'Deactivate')
          : h('button', { type: 'button', class: 'primary', id: 'activate', onclick: act('activate') }, 'Activate'),
        h('button', { type: 'button', class: 'danger', onclick: async () => {
          if (!window.confirm(`Uninstall ${plugin.name}?`)) return;
          try { await del(`/plugins/${seg(id)}`); location.hash = '#/admin/plugins'; } catch (error) { showError(box, error); }
        } }, 'Uninstall')),
      status ? h('p', { class: 'muted' }, `${status.calls} calls, ${status.failures} failures${status.last_error ? `; last error: ${status.last_error}` : ''}`) : null,
      caps, config, logs);
  }
  let shown = null;
  await render();
  // A state change (activation elsewhere, a quarantine) shows without a
  // reload; the page is drawn again only when one happened, so that a
  // half-typed configuration survives.
  const timer = setInterval(async () => {
    try {
      const plugin = await get(`/plugins/${seg(id)}`);
      const status = await get(`/plugins/${seg(id)}/status`).catch(() => null);
      if (fingerprint(plugin, status) !== shown) await render();
    } catch {
      // Transient, or uninstalled: the next poll or the user's action says.
    }
  }, 5000);
  ctx.onLeave(() => clearInterval(timer));
  return page;
}

/** What, if it changes, the plugin page must show again. */
function fingerprint(plugin, status) {
  return JSON.stringify([plugin.state, plugin.version, plugin.granted, status && status.quarantine_reason]);
}
