// Pages: sign in, server list, create server, account, audit log and
// plugin navigation pages.

import { api, get, post, del, seg, saveTokens, ApiError } from './api.js';
import { h, add, replace, refresh, field, setFieldError, badge, table, alertBox, when, toast, confirmModal } from './dom.js';
import { pluginWidget } from './plugin-ui.js';

/** Tone of a server or command state. */
export function stateTone(state) {
  if (['running', 'online', 'done', 'active'].includes(state)) return 'success';
  if (['starting', 'stopping', 'installing', 'pending', 'acked', 'deleting'].includes(state)) return 'warning';
  if (['crashed', 'failed', 'quarantined'].includes(state)) return 'danger';
  return 'neutral';
}

/**
 * Shows an API error in `box` and per-field messages on `fields`
 * (an object field-path → field from dom.field). Returns nothing.
 */
export function showError(box, error, fields = {}) {
  for (const f of Object.values(fields)) setFieldError(f, '');
  if (!error) {
    replace(box);
    box.hidden = true;
    return;
  }
  const shown = new Set();
  if (error instanceof ApiError) {
    for (const fe of error.fields) {
      const f = fields[fe.field];
      if (f) {
        setFieldError(f, fe.message);
        shown.add(fe.field);
      }
    }
    // Keyboard and screen-reader users land on the first field to fix.
    const first = Object.entries(fields).find(([path]) => shown.has(path));
    if (first) first[1].input.focus();
    const rest = error.fields.filter((fe) => !shown.has(fe.field));
    const detail = error.problem.detail || error.problem.title || error.message;
    replace(box, alertBox([
      h('strong', null, error.problem.title || 'Error'), ': ', detail,
      rest.length ? h('ul', null, rest.map((fe) => h('li', null, `${fe.field || 'request'}: ${fe.message}`))) : null,
    ], 'danger', { 'data-code': error.code }));
  } else {
    replace(box, alertBox(String(error && error.message ? error.message : error)));
  }
  box.hidden = false;
}

/** A form whose submit runs `action` with its button disabled meanwhile. */
export function form(attrs, children, action) {
  const el = h('form', { ...attrs, novalidate: true }, children);
  el.addEventListener('submit', async (event) => {
    event.preventDefault();
    const buttons = el.querySelectorAll('button[type=submit]');
    buttons.forEach((b) => { b.disabled = true; });
    try {
      await action(event);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  });
  return el;
}

// ---------------------------------------------------------------- sign in

/** What the sign-in page says when a redirect provider's callback refused. */
const REDIRECT_REFUSALS = {
  'sign-in-refused': 'The sign-in did not go through: it expired, was used already, was begun in another browser, or the provider\'s answer did not verify. Try again.',
  'account-not-linked': 'No account here is linked to that identity, and the provider does not create one for it. Ask an administrator, or sign in another way and link it from your account page.',
  'identity-linked-elsewhere': 'That identity is linked to another account.',
  'username-taken': 'An account with that username exists already: sign in to it and link this identity from your account page.',
  'account-disabled': 'This account is disabled.',
  'hook-denied': 'A plugin of this Panel refused the sign-in.',
  'provider-unavailable': 'The sign-in provider is unavailable; try again later.',
  'provider-failed': 'The sign-in provider failed; try again later.',
  'rate-limited': 'Too many sign-ins; wait a moment and try again.',
};

/** The query of the page's hash (`#/login?ticket=…`). */
function hashQuery() {
  return new URLSearchParams(location.hash.split('?')[1] || '');
}

/** Sends the browser to redirect provider `id` (to sign in, or with a token to link). */
async function beginRedirect(path, auth, box) {
  try {
    const answer = await api('POST', path, undefined, { auth });
    location.assign(answer.authorize_url);
  } catch (error) {
    showError(box, error);
  }
}

export async function signInPage(ctx) {
  let providers = [];
  let redirects = [];
  try {
    const all = (await api('GET', '/auth/providers', undefined, { auth: false })).items;
    providers = all.filter((p) => p.kind === 'password');
    redirects = all.filter((p) => p.kind === 'redirect');
  } catch {
    providers = [];
  }
  const errorBox = h('div', { id: 'login-error', hidden: true });
  const username = field('Username', h('input', { name: 'username', autocomplete: 'username', required: true }));
  const password = field('Password', h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true }));
  const provider = h('select', { name: 'provider', id: 'login-provider' },
    providers.map((p) => h('option', { value: p.id }, p.name)));
  const providerField = providers.length > 1
    ? field('Sign in with', provider).row
    : null;
  const container = h('section', { class: 'card narrow' });

  function secondFactorStep(challenge) {
    const code = field('Code from your authenticator app', h('input', { name: 'code', inputmode: 'numeric', autocomplete: 'one-time-code' }));
    const recovery = field('Or a recovery code', h('input', { name: 'recovery_code', autocomplete: 'off' }));
    const box = h('div', { hidden: true, id: 'second-factor-error' });
    replace(container,
      h('h1', null, 'Second factor'),
      h('p', null, 'Your account has two-factor authentication on.'),
      form({ id: 'second-factor-form' }, [code.row, recovery.row, box,
        h('div', { class: 'power' },
          h('button', { type: 'submit', class: 'primary' }, 'Verify'),
          h('button', { type: 'button', onclick: () => { location.reload(); } }, 'Start over'))], async () => {
        const body = { challenge };
        if (recovery.input.value.trim()) body.recovery_code = recovery.input.value.trim();
        else body.code = code.input.value.trim();
        try {
          saveTokens(await api('POST', '/auth/login/second-factor', body, { auth: false }));
          await ctx.signedIn();
        } catch (error) {
          showError(box, error, { code, recovery_code: recovery });
          if (error.code === 'invalid-challenge') {
            // The challenge expired or was used: start over.
            setTimeout(() => { location.reload(); }, 2000);
          } else if (body.code) {
            code.input.value = '';
            code.input.focus();
          }
        }
      }));
    code.input.focus();
  }

  function forgotStep() {
    const login = field('Username or email address', h('input', { name: 'login', autocomplete: 'username', id: 'forgot-login' }));
    const box = h('div', { hidden: true, id: 'forgot-result' });
    replace(container,
      h('h1', null, 'Forgotten password'),
      h('p', null, 'We mail a link to choose a new password to the address of your account. It works once, for an hour.'),
      form({ id: 'forgot-form' }, [login.row, box,
        h('div', { class: 'power' },
          h('button', { type: 'submit', class: 'primary' }, 'Send the link'),
          h('button', { type: 'button', onclick: () => { location.reload(); } }, 'Back to sign in'))], async () => {
        showError(box, null, { login });
        try {
          await api('POST', '/auth/password-reset', { login: login.input.value }, { auth: false });
          replace(box, alertBox('If an account with an email address matches, a link is on its way. Check your mail.', 'success'));
          box.hidden = false;
        } catch (error) {
          showError(box, error, { login });
        }
      }));
    login.input.focus();
  }

  // Back from a redirect provider: the ticket buys a session in this
  // browser (its cookie came back with the callback), once.
  const ticket = hashQuery().get('ticket');
  if (ticket) {
    history.replaceState(null, '', '#/login');
    try {
      const answer = await api('POST', '/auth/redirect/exchange', { ticket }, { auth: false });
      if (answer && answer.second_factor_required) {
        secondFactorStep(answer.challenge);
        return container;
      }
      saveTokens(answer);
      await ctx.signedIn();
      return container;
    } catch (error) {
      showError(errorBox, error);
    }
  }

  // Back from a redirect provider that refused: say why.
  const refused = hashQuery().get('error');
  if (refused) {
    history.replaceState(null, '', '#/login');
    replace(errorBox, alertBox(REDIRECT_REFUSALS[refused] || `The sign-in was refused (${refused}).`, 'danger', { 'data-code': refused }));
    errorBox.hidden = false;
  }

  const redirectButtons = redirects.length
    ? h('div', { class: 'power', id: 'redirect-providers' }, redirects.map((p) => h('button', {
      type: 'button',
      class: 'redirect-provider',
      'data-provider': p.id,
      onclick: () => beginRedirect(`/auth/redirect/${seg(p.id)}/begin`, false, errorBox),
    }, `Sign in with ${p.name}`)))
    : null;
  add(container,
    h('h1', null, 'Sign in'),
    providers.length === 0 && redirects.length === 0 ? alertBox('No sign-in provider is active on this Panel. Ask an administrator.', 'warning') : null,
    redirectButtons,
    providers.length === 0 ? (redirects.length ? errorBox : null) : form({ id: 'login-form' }, [providerField, username.row, password.row, errorBox,
      h('div', { class: 'power' },
        h('button', { type: 'submit', class: 'primary', id: 'login-submit' }, 'Sign in'),
        h('button', { type: 'button', class: 'link', id: 'forgot-password', onclick: forgotStep }, 'Forgot your password?'))], async () => {
      const body = { username: username.input.value, password: password.input.value };
      if (providers.length) body.provider = provider.value || providers[0].id;
      try {
        const answer = await api('POST', '/auth/login', body, { auth: false });
        if (answer && answer.second_factor_required) {
          secondFactorStep(answer.challenge);
          return;
        }
        saveTokens(answer);
        await ctx.signedIn();
      } catch (error) {
        showError(errorBox, error, { username, password });
      }
    }));
  return container;
}

// ---------------------------------------------------------------- one-time links

/**
 * The page an invitation or reset link opens (`#/link/<token>`): says for
 * whom, then takes the new password once.
 */
export async function linkPage(ctx, token) {
  const container = h('section', { class: 'card narrow', id: 'link-page' });
  let info;
  try {
    info = await api('GET', `/account-links/${seg(token)}`, undefined, { auth: false });
  } catch (error) {
    const words = {
      'link-used': 'This link was used already: each link works once.',
      'link-expired': 'This link expired.',
      'link-not-found': 'This link does not exist.',
    }[error.code] || error.message;
    return add(container, h('h1', null, 'Link not usable'),
      alertBox(`${words} Ask an administrator for a new one, or use “Forgot your password?” on the sign-in page.`, 'danger', { 'data-code': error.code }),
      h('p', null, h('a', { href: '#/login' }, 'Sign in')));
  }
  const invited = info.purpose === 'invitation';
  const password = field('New password', h('input', { name: 'password', type: 'password', autocomplete: 'new-password', id: 'link-password' }), 'Your sign-in provider decides what it accepts.');
  const again = field('New password again', h('input', { name: 'password_again', type: 'password', autocomplete: 'new-password', id: 'link-password-again' }));
  const box = h('div', { hidden: true, id: 'link-result' });
  add(container,
    h('h1', null, invited ? `Welcome, ${info.username}` : `New password for ${info.username}`),
    h('p', null, invited ? 'Choose the password you will sign in with.' : 'Choose a new password; your other sessions end.',
      ` This link works once, until ${when(info.expires_at)}.`),
    form({ id: 'link-form' }, [h('input', { type: 'text', name: 'username', autocomplete: 'username', value: info.username, hidden: true }),
      password.row, again.row, box,
      h('button', { type: 'submit', class: 'primary' }, invited ? 'Set my password' : 'Change my password')], async () => {
      showError(box, null, { password, password_again: again });
      if (password.input.value !== again.input.value) {
        setFieldError(again, 'does not match the new password');
        again.input.focus();
        return;
      }
      try {
        await api('POST', `/account-links/${seg(token)}`, { password: password.input.value }, { auth: false });
        replace(container, h('h1', null, 'Password set'),
          alertBox('Your password is set. Sign in with it now.', 'success'),
          h('p', null, h('a', { href: '#/login', id: 'link-sign-in' }, 'Sign in')));
      } catch (error) {
        showError(box, error, { password, password_again: again });
      }
    }));
  return container;
}

/**
 * Shown instead of every page while an administrator requires a new
 * password: the change, and nothing else.
 */
export function forcedChangePage(ctx) {
  const section = passwordSection(async () => {
    await ctx.refreshMe();
    if (location.hash === '#/servers') await ctx.reroute();
    else location.hash = '#/servers';
  });
  return h('section', { id: 'forced-change' }, h('h1', null, 'Choose a new password'),
    alertBox('An administrator asks you to choose a new password before you go on.', 'warning'), section);
}

// ---------------------------------------------------------------- servers

/** A server's game as people read it: the plugin, and the game type when it has several. */
export function gameLabel(game) {
  return game.type && game.type !== game.plugin ? `${game.plugin}: ${game.type}` : game.plugin;
}

function serverRow(s) {
  return [
    h('a', { href: `#/servers/${seg(s.id)}`, class: 'server-link' }, s.name),
    s.suspension
      ? h('span', { class: 'badges', title: `Suspended: ${s.suspension.reason}` }, badge(s.state, stateTone(s.state)), ' ', badge('suspended', 'danger'))
      : badge(s.state, stateTone(s.state)),
    gameLabel(s.game),
    s.allocation ? `${s.allocation.ip}:${s.allocation.port}` : '—',
  ];
}

export async function serversPage(ctx) {
  const list = h('div', { id: 'server-list', 'aria-live': 'polite' });
  const widgets = h('div', { class: 'widgets' });
  async function load() {
    try {
      const page = await get('/servers?limit=200');
      refresh(list, JSON.stringify(page.items.map((s) => [s.id, s.name, s.state, s.game, s.allocation, s.suspension])), () => (page.items.length
        ? table(['Name', 'State', 'Game', 'Address'], page.items.map(serverRow))
        : h('p', { class: 'muted' }, 'No servers yet.')));
    } catch (error) {
      showError(list, error);
    }
  }
  await load();
  const timer = setInterval(load, 5000);
  ctx.onLeave(() => clearInterval(timer));
  for (const c of ctx.contributions.filter((c) => c.slot === 'dashboard-widget')) {
    widgets.append(pluginWidget(c, null));
  }
  return h('section', null,
    h('div', { class: 'page-head' },
      h('h1', null, 'Servers'),
      ctx.has('server.create') ? h('a', { class: 'button primary', href: '#/servers/new', id: 'new-server' }, 'Create server') : null),
    list,
    widgets);
}

export async function createServerPage(ctx) {
  const box = h('div', { id: 'create-error', hidden: true });
  let games = [];
  try {
    games = (await get('/game-types')).items;
  } catch (error) {
    showError(box, error);
  }
  let nodes = null;
  if (ctx.has('admin.nodes')) {
    try {
      nodes = (await get('/nodes?limit=200')).items;
    } catch {
      nodes = null;
    }
  }
  const name = field('Name', h('input', { name: 'name', required: true, maxlength: 128 }));
  // A plugin may offer several game types (the egg bridge, one per egg):
  // an option is the pair.
  const gameKey = (g) => `${g.plugin}|${g.type}`;
  const game = field('Game', h('select', { name: 'game' }, games.map((g) => h('option', { value: gameKey(g) }, g.type === g.plugin ? `${g.name} (${g.plugin})` : `${g.name} (${g.plugin}: ${g.type})`))));
  const image = field('Image', h('select', { name: 'image' }), 'The container image the server runs in.');
  const startup = field('Startup command', h('select', { name: 'startup_command' }), 'The command the server starts with.');
  const node = nodes
    ? field('Node', h('select', { name: 'node' }, nodes.map((n) => h('option', { value: n.id }, `${n.name}${n.online ? '' : ' (offline)'}`))))
    : field('Node id', h('input', { name: 'node', required: true }), 'Ask an administrator which node to use.');
  const allocation = field('Address', h('select', { name: 'allocation' }, h('option', { value: '' }, 'First free')));
  const memory = field('Memory (MiB)', h('input', { name: 'memory', type: 'number', min: 1, value: '1024' }));
  const disk = field('Disk (MiB)', h('input', { name: 'disk', type: 'number', min: 1, value: '2048' }));
  const cpu = field('CPU (% of one core)', h('input', { name: 'cpu', type: 'number', min: 1, value: '100' }));
  if (!games.length && !box.childElementCount) {
    replace(box, alertBox(ctx.has('admin.plugins')
      ? ['No game type is available yet: activate a game-type plugin on the ', h('a', { href: '#/admin/plugins' }, 'Plugins'),
        ' page, or ', h('a', { href: '#/admin/eggs' }, 'import an egg'), '.']
      : 'No game type is available yet; ask an administrator.', 'warning'));
    box.hidden = false;
  }
  const varsBox = h('fieldset', { class: 'vars' });
  let varFields = {};

  function renderVariables() {
    const g = games.find((x) => gameKey(x) === game.input.value);
    varFields = {};
    replace(varsBox, h('legend', null, 'Game variables'));
    replace(image.input, ...(g ? g.images : []).map((i) => h('option', { value: i.reference }, `${i.name} (${i.reference})`)));
    image.row.hidden = !g || g.images.length === 0;
    replace(startup.input, ...(g ? g.startup_commands : []).map((c) => h('option', { value: c }, c)));
    startup.row.hidden = !g || g.startup_commands.length === 0;
    if (!g) return;
    if (g.min_memory_mb && Number(memory.input.value) < g.min_memory_mb) memory.input.value = String(g.min_memory_mb);
    for (const v of g.variables.filter((x) => x.user_editable)) {
      const input = v.choices.length
        ? h('select', { name: v.key }, v.choices.map((c) => h('option', { value: c, selected: c === v.default_value }, c)))
        : v.kind === 'boolean'
          ? h('select', { name: v.key }, ['true', 'false'].map((c) => h('option', { value: c, selected: c === v.default_value }, c)))
          : h('input', { name: v.key, value: v.default_value || '', type: v.kind === 'integer' ? 'number' : 'text' });
      const f = field(v.name, input, v.description);
      varFields[`variables.${v.key}`] = f;
      varsBox.append(f.row);
    }
  }

  async function loadAllocations() {
    replace(allocation.input, h('option', { value: '' }, 'First free'));
    if (!nodes || !node.input.value) return;
    try {
      const free = (await get(`/nodes/${seg(node.input.value)}/allocations?state=free`)).items;
      for (const a of free) allocation.input.append(h('option', { value: `${a.ip}|${a.port}` }, `${a.ip}:${a.port}`));
    } catch {
      // Keep "first free".
    }
  }

  game.input.addEventListener('change', renderVariables);
  node.input.addEventListener('change', loadAllocations);
  renderVariables();
  await loadAllocations();

  const fields = {
    name, node_id: node, allocation, 'game.plugin': game, 'game.type': game, image, startup_command: startup,
    'limits.memory_mb': memory, 'limits.disk_mb': disk, 'limits.cpu_percent': cpu,
  };
  return h('section', { class: 'card' },
    h('h1', null, 'Create server'),
    form({ id: 'create-server-form' }, [name.row, game.row, image.row, startup.row, node.row, allocation.row,
      h('div', { class: 'grid3' }, memory.row, disk.row, cpu.row), varsBox, box,
      h('button', { type: 'submit', class: 'primary', id: 'create-submit' }, 'Create')], async () => {
      const variables = {};
      for (const [key, f] of Object.entries(varFields)) variables[key.slice('variables.'.length)] = f.input.value;
      const body = {
        name: name.input.value,
        node_id: node.input.value,
        game: (() => {
          const g = games.find((x) => gameKey(x) === game.input.value);
          return g ? { plugin: g.plugin, type: g.type } : { plugin: game.input.value };
        })(),
        variables,
        limits: {
          memory_mb: Number(memory.input.value),
          disk_mb: Number(disk.input.value),
          cpu_percent: Number(cpu.input.value),
        },
      };
      if (!image.row.hidden && image.input.value) body.image = image.input.value;
      if (!startup.row.hidden && startup.input.value) body.startup_command = startup.input.value;
      if (allocation.input.value) {
        const [ip, port] = allocation.input.value.split('|');
        body.allocation = { ip, port: Number(port) };
      }
      try {
        const created = await post('/servers', body);
        toast(`Created ${created.name}`, 'success');
        location.hash = `#/servers/${seg(created.id)}`;
      } catch (error) {
        showError(box, error, { ...fields, ...varFields });
      }
    }));
}

// ---------------------------------------------------------------- account

async function totpSection() {
  const section = h('section', { class: 'card', id: 'totp' });
  async function render() {
    const box = h('div', { hidden: true });
    let status;
    try {
      status = await get('/account/totp');
    } catch (error) {
      showError(box, error);
      replace(section, h('h2', null, 'Two-factor authentication'), box);
      return;
    }
    replace(section, h('h2', null, 'Two-factor authentication'));
    if (status.enabled) {
      // Turning it off needs a current code or a recovery code: a stolen
      // session alone must not remove the second factor.
      const code = field('Code from the app, or a recovery code', h('input', { name: 'totp-off-code', autocomplete: 'one-time-code' }));
      add(section,
        h('p', { id: 'totp-status' }, badge('On', 'success'), ` ${status.recovery_codes_remaining} recovery codes left.`),
        form({ id: 'totp-off', class: 'inline' }, [code.row, h('button', { type: 'submit', class: 'danger' }, 'Turn off')], async () => {
          const value = code.input.value.trim();
          if (!value) {
            setFieldError(code, 'Enter a current code or one of your recovery codes.');
            return;
          }
          const body = /^\d{6}$/.test(value) ? { code: value } : { recovery_code: value };
          try {
            await api('DELETE', '/account/totp', body);
            toast('Two-factor authentication is off', 'success');
            await render();
          } catch (error) {
            showError(box, error, { code, recovery_code: code });
          }
        }), box);
      return;
    }
    add(section, h('p', { id: 'totp-status' }, badge('Off'), ' Protect your account with an authenticator app.'),
      h('button', { type: 'button', id: 'totp-begin', onclick: async () => {
        try {
          const enrollment = await post('/account/totp');
          const code = field('Code from the app', h('input', { name: 'code', inputmode: 'numeric', autocomplete: 'one-time-code' }));
          const confirmBox = h('div', { hidden: true });
          replace(section, h('h2', null, 'Two-factor authentication'),
            h('p', null, 'Add this account to your authenticator app with the secret below (or the otpauth link), then enter the code it shows.'),
            h('dl', null, h('dt', null, 'Secret'), h('dd', null, h('code', { id: 'totp-secret' }, enrollment.secret)),
              h('dt', null, 'Link'), h('dd', null, h('code', { class: 'wrap' }, enrollment.otpauth_url))),
            form({ id: 'totp-confirm' }, [code.row, confirmBox, h('button', { type: 'submit', class: 'primary' }, 'Confirm')], async () => {
              try {
                const answer = await post('/account/totp/confirm', { code: code.input.value.trim() });
                replace(section, h('h2', null, 'Two-factor authentication'),
                  alertBox('Two-factor authentication is on. Keep these recovery codes somewhere safe; they are shown once.', 'success'),
                  h('ul', { class: 'codes' }, answer.recovery_codes.map((c) => h('li', null, h('code', null, c)))),
                  h('button', { type: 'button', id: 'totp-done', onclick: render }, 'Done'));
              } catch (error) {
                showError(confirmBox, error, { code });
              }
            }));
        } catch (error) {
          showError(box, error);
        }
      } }, 'Set up'), box);
  }
  await render();
  return section;
}

/** Changing the caller's password through their sign-in provider. */
function passwordSection(changed) {
  const current = field('Current password', h('input', { name: 'current_password', type: 'password', autocomplete: 'current-password' }));
  const next = field('New password', h('input', { name: 'new_password', type: 'password', autocomplete: 'new-password' }), 'Your sign-in provider decides what it accepts.');
  const again = field('New password again', h('input', { name: 'new_password_again', type: 'password', autocomplete: 'new-password' }));
  const box = h('div', { hidden: true, id: 'password-result' });
  const fields = { current_password: current, new_password: next, new_password_again: again };
  return h('section', { class: 'card', id: 'password' }, h('h2', null, 'Password'),
    form({ id: 'password-form' }, [current.row, next.row, again.row, box,
      h('button', { type: 'submit', class: 'primary' }, 'Change password')], async () => {
      showError(box, null, fields);
      if (next.input.value !== again.input.value) {
        setFieldError(again, 'does not match the new password');
        again.input.focus();
        return;
      }
      try {
        await api('PUT', '/account/password', { current_password: current.input.value, new_password: next.input.value });
        for (const f of Object.values(fields)) f.input.value = '';
        replace(box, alertBox('Your password is changed.', 'success'));
        box.hidden = false;
        if (changed) await changed();
      } catch (error) {
        showError(box, error, fields);
      }
    }));
}

async function apiKeysSection(ctx) {
  const section = h('section', { class: 'card', id: 'api-keys' });
  const listBox = h('div');
  const box = h('div', { hidden: true });
  const secretBox = h('div');
  async function load() {
    try {
      const keys = (await get('/account/api-keys')).items;
      replace(listBox, keys.length ? table(['Name', 'Prefix', 'Scopes', 'Created', 'Last used', ''],
        keys.map((k) => [k.name, h('code', null, k.prefix), k.scopes.join(', '), when(k.created_at), when(k.last_used_at),
          k.revoked_at ? badge('revoked') : h('button', { type: 'button', class: 'danger small', onclick: async () => {
            if (!window.confirm(`Revoke the key ${k.name}?`)) return;
            try { await del(`/account/api-keys/${seg(k.id)}`); await load(); } catch (error) { showError(box, error); }
          } }, 'Revoke')])) : h('p', { class: 'muted' }, 'No API keys.'));
    } catch (error) {
      showError(box, error);
    }
  }
  const name = field('Name', h('input', { name: 'key-name', maxlength: 128 }));
  const scopes = h('fieldset', { class: 'checks' }, h('legend', null, 'Scopes (permissions the key may use)'),
    [...ctx.me.permissions].sort().map((p) => h('label', null, h('input', { type: 'checkbox', value: p }), ` ${p}`)));
  await load();
  return add(section, h('h2', null, 'API keys'), listBox, secretBox,
    form({ id: 'api-key-form' }, [name.row, scopes, box, h('button', { type: 'submit', class: 'primary' }, 'Create key')], async () => {
      const chosen = [...scopes.querySelectorAll('input:checked')].map((i) => i.value);
      try {
        const created = await post('/account/api-keys', { name: name.input.value, scopes: chosen });
        replace(secretBox, alertBox(['Copy the key now; it is shown once: ', h('code', { id: 'api-key-secret' }, created.secret)], 'success'));
        box.hidden = true;
        await load();
      } catch (error) {
        showError(box, error, { name });
      }
    }));
}

/**
 * The SSH public keys the user signs in to the servers' SFTP with: the
 * list, adding one (a name and one OpenSSH line), removing one after a
 * confirmation. The Panel refuses what is not one public key of an
 * accepted kind, a key the account holds already, and more keys than an
 * account may hold; its message shows as it says it.
 */
async function sshKeysSection() {
  const section = h('section', { class: 'card', id: 'ssh-keys', 'aria-labelledby': 'ssh-keys-heading' });
  const heading = h('h2', { id: 'ssh-keys-heading', tabindex: '-1' }, 'SSH keys');
  const listBox = h('div', { id: 'ssh-key-list' });
  const listError = h('div', { hidden: true, id: 'ssh-key-list-error' });
  async function load() {
    try {
      const keys = (await get('/account/ssh-keys')).items;
      showError(listError, null);
      replace(listBox, keys.length ? table(['Name', 'Fingerprint', 'Added', ''], keys.map((k) => [
        h('span', { class: 'ssh-key-name' }, k.name),
        h('code', { class: 'id', title: k.public_key }, k.fingerprint),
        when(k.created_at),
        h('button', {
          type: 'button', class: 'danger small ssh-key-remove', 'data-name': k.name,
          'data-focus-key': `ssh-key:${k.id}`, 'aria-label': `Remove the SSH key ${k.name}`,
          onclick: async () => {
            const yes = await confirmModal(`Remove the SSH key ${k.name}?`, [
              h('p', null, 'SFTP sign-ins with this key stop working at once.'),
              h('p', null, h('code', { class: 'id' }, k.fingerprint)),
            ], 'Remove');
            if (!yes) return;
            try {
              await del(`/account/ssh-keys/${seg(k.id)}`);
              toast(`Removed the SSH key ${k.name}`, 'success');
              await load();
              heading.focus();
            } catch (error) {
              showError(listError, error);
            }
          },
        }, 'Remove')])) : h('p', { class: 'muted', id: 'ssh-keys-empty' }, 'No SSH keys.'));
    } catch (error) {
      showError(listError, error);
    }
  }
  const name = field('Name', h('input', { name: 'ssh-key-name', maxlength: 128, autocomplete: 'off', placeholder: 'laptop' }));
  const publicKey = field('Public key', h('textarea', {
    name: 'public_key', rows: 3, spellcheck: 'false', autocomplete: 'off', class: 'ssh-key-text',
    placeholder: 'ssh-ed25519 AAAA… you@laptop',
  }), 'One line in OpenSSH format: the content of your .pub file (such as ~/.ssh/id_ed25519.pub). '
    + 'ssh-ed25519, ecdsa-sha2-nistp256/384/521 and ssh-rsa of 2048 bits or more are accepted. Never paste the private key.');
  const box = h('div', { hidden: true, id: 'ssh-key-form-error' });
  const fields = { name, public_key: publicKey };
  await load();
  return add(section, heading,
    h('p', { class: 'muted' }, 'Sign in to your servers\' files over SFTP with one of these keys, or with your password. '
      + 'The Files tab of each server shows its SFTP address.'),
    listError, listBox,
    form({ id: 'ssh-key-form' }, [name.row, publicKey.row, box,
      h('button', { type: 'submit', class: 'primary', id: 'ssh-key-submit' }, 'Add key')], async () => {
      showError(box, null, fields);
      try {
        const added = await post('/account/ssh-keys', { name: name.input.value.trim(), public_key: publicKey.input.value.trim() });
        name.input.value = '';
        publicKey.input.value = '';
        toast(`Added the SSH key ${added.name}`, 'success');
        await load();
      } catch (error) {
        showError(box, error, fields);
        // A refused key is the key field's problem, whatever the code.
        if (error.code === 'invalid-ssh-key' || error.code === 'ssh-key-exists') {
          publicKey.input.setAttribute('aria-invalid', 'true');
          publicKey.input.focus();
        }
      }
    }));
}

export async function accountPage(ctx) {
  const user = ctx.me.user;
  return h('section', null,
    h('h1', null, 'Account'),
    h('section', { class: 'card' }, h('h2', null, 'You'),
      h('dl', null, h('dt', null, 'Username'), h('dd', null, user.username),
        h('dt', null, 'Email'), h('dd', null, user.email || '—'),
        h('dt', null, 'Administrator'), h('dd', null, user.admin ? 'yes' : 'no')),
      h('p', { class: 'muted' }, 'Your password is kept by your sign-in provider.')),
    await linkSection(),
    passwordSection(),
    await totpSection(),
    await apiKeysSection(ctx),
    await sshKeysSection());
}

/** Linking identities at redirect providers (OpenID Connect) to this account. */
async function linkSection() {
  let redirects = [];
  try {
    redirects = (await api('GET', '/auth/providers', undefined, { auth: false })).items
      .filter((p) => p.kind === 'redirect');
  } catch {
    redirects = [];
  }
  if (!redirects.length) return null;
  const linked = hashQuery().get('linked');
  const box = h('div', { hidden: true, id: 'link-error' });
  return h('section', { class: 'card', id: 'linked-identities' }, h('h2', null, 'Sign-in providers'),
    linked ? alertBox(`Linked: you can now sign in with ${(redirects.find((p) => p.id === linked) || { name: linked }).name}.`, 'success') : null,
    h('p', { class: 'muted' }, 'Link an identity at another provider to sign in with it too.'),
    h('div', { class: 'power' }, redirects.map((p) => h('button', {
      type: 'button',
      'data-provider': p.id,
      onclick: () => beginRedirect(`/account/identities/${seg(p.id)}/link`, true, box),
    }, `Link ${p.name}`))),
    box);
}

// ---------------------------------------------------------------- audit log

export async function auditPage(ctx) {
  const rows = h('tbody');
  // Usernames for actor ids, where the caller may list users.
  const names = new Map();
  if (ctx.has('admin.users')) {
    try {
      for (const u of (await get('/users?limit=200')).items) names.set(u.id, u.username);
    } catch {
      // Ids then.
    }
  }
  const actor = (id) => {
    if (!id) return 'system';
    return names.has(id) ? h('span', { title: id }, names.get(id)) : h('code', { class: 'id' }, id);
  };
  // The data as a one-line list of its keys, opening to the whole JSON.
  const data = (value) => {
    const keys = value && typeof value === 'object' ? Object.keys(value) : [];
    if (!keys.length) return value === null || value === undefined ? '—' : h('code', { class: 'id' }, JSON.stringify(value));
    return h('details', null, h('summary', null, keys.join(', ')), h('pre', { class: 'json' }, JSON.stringify(value, null, 2)));
  };
  const box = h('div', { hidden: true });
  const kind = field('Event kind', h('input', { name: 'kind', placeholder: 'e.g. server.created' }));
  const more = h('button', { type: 'button', hidden: true }, 'Load more');
  let cursor = null;
  async function load(reset) {
    if (reset) { rows.replaceChildren(); cursor = null; }
    const params = new URLSearchParams({ limit: '50' });
    if (cursor) params.set('cursor', cursor);
    if (kind.input.value.trim()) params.set('kind', kind.input.value.trim());
    try {
      const page = await get(`/audit-log?${params}`);
      for (const e of page.items) {
        rows.append(h('tr', null, h('td', { 'data-label': 'When' }, when(e.occurred_at)), h('td', { 'data-label': 'Event' }, h('code', null, e.kind)),
          h('td', { 'data-label': 'Actor' }, actor(e.actor.user_id)),
          h('td', { 'data-label': 'Subject' }, e.subject ? [`${e.subject.type} `, h('code', { class: 'id' }, e.subject.id)] : '—'),
          h('td', { 'data-label': 'Data' }, data(e.data))));
      }
      cursor = page.next_cursor;
      more.hidden = !cursor;
      box.hidden = true;
    } catch (error) {
      showError(box, error, { kind });
    }
  }
  more.addEventListener('click', () => load(false));
  await load(true);
  return h('section', null, h('h1', null, 'Audit log'),
    form({ class: 'inline' }, [kind.row, h('button', { type: 'submit' }, 'Filter')], () => load(true)),
    box,
    h('div', { class: 'table-wrap' }, h('table', { id: 'audit-table', class: 'stack' },
      h('thead', null, h('tr', null, ['When', 'Event', 'Actor', 'Subject', 'Data'].map((c) => h('th', { scope: 'col' }, c)))), rows)),
    more);
}

// ---------------------------------------------------------------- plugin pages

export async function pluginPage(ctx, plugin, contribution) {
  const c = ctx.contributions.find((x) => x.plugin === plugin && x.id === contribution && x.slot === 'nav-page');
  if (!c) return h('section', null, h('h1', null, 'Not found'), h('p', null, 'No active plugin contributes this page.'));
  return h('section', null, h('h1', null, c.title), pluginWidget(c, null, { bare: true }));
}
