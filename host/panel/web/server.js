// The server page: state, power buttons per permission, the live console
// over the WebSocket (with input, history and reconnects), stats, the
// variables form, recent commands and plugin widgets; tabs lead to its
// files (files.js), its backups (backups.js), its databases
// (databases.js) and its network (allocations.js). A suspended server
// shows a banner with the reason, and its start, restart, console input
// and reinstall are disabled; administrators suspend and lift
// suspensions here, and move the server to another node (a banner shows a
// running transfer's stage and progress to everyone who sees the server).

import { api, del, get, post, patch, seg } from './api.js';
import { h, replace, field, badge, table, alertBox, when, bytes, duration, toast, confirmModal } from './dom.js';
import { showError, stateTone, form, gameLabel } from './pages.js';
import { pluginWidget } from './plugin-ui.js';
import { serverTabs } from './files.js';

const MAX_LINES = 1000;
const POWER = [
  ['start', 'Start', 'control.start', 'success'],
  ['restart', 'Restart', 'control.restart', 'warning'],
  ['stop', 'Stop', 'control.stop', 'neutral'],
  ['kill', 'Kill', 'control.stop', 'danger'],
];
/** The transfer stages as the banner names them. */
const TRANSFER_STAGES = {
  stopping: 'stopping it on its node',
  sending: 'sending its files to the new node',
  committing: 'recording the move',
  starting: 'starting it on the new node',
  done: 'done',
};
/** The power actions a suspension refuses. */
const REFUSED_WHILE_SUSPENDED = ['start', 'restart'];
/** The states in which each power action makes sense. */
const POWER_STATES = {
  start: ['offline', 'crashed'],
  restart: ['running', 'starting', 'crashed'],
  stop: ['running', 'starting'],
  kill: ['running', 'starting', 'stopping', 'installing'],
};

/** The live console connection: reconnects until closed. */
function connectConsole(serverId, handlers) {
  let socket = null;
  let closed = false;
  let retry = 1000;
  let timer = null;

  async function fetchToken() {
    return get(`/servers/${seg(serverId)}/websocket`);
  }

  async function open() {
    if (closed) return;
    let grant;
    try {
      grant = await fetchToken();
    } catch (error) {
      handlers.unavailable(error);
      if (error.status !== 403 && error.status !== 404) schedule();
      return;
    }
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    socket = new WebSocket(`${scheme}//${location.host}${grant.socket}`);
    socket.addEventListener('open', () => {
      socket.send(JSON.stringify({ event: 'auth', args: [grant.token] }));
    });
    socket.addEventListener('message', async (message) => {
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      const args = Array.isArray(frame.args) ? frame.args : [];
      switch (frame.event) {
        case 'auth success':
          retry = 1000;
          // The Panel sends the history after the first auth by itself;
          // a re-auth must not repeat it.
          handlers.connected(true);
          break;
        case 'token expiring':
          try {
            grant = await fetchToken();
            socket.send(JSON.stringify({ event: 'auth', args: [grant.token] }));
          } catch {
            // The server closes the socket at expiry; we reconnect then.
          }
          break;
        case 'token expired':
        case 'jwt error':
          socket.close();
          break;
        default:
          handlers.event(frame.event, args);
      }
    });
    socket.addEventListener('close', () => {
      handlers.connected(false);
      schedule();
    });
  }

  function schedule() {
    if (closed) return;
    clearTimeout(timer);
    timer = setTimeout(open, retry);
    retry = Math.min(retry * 2, 30000);
  }

  open();
  return {
    send(event, args) {
      if (socket && socket.readyState === WebSocket.OPEN) {
        socket.send(JSON.stringify({ event, args }));
        return true;
      }
      return false;
    },
    close() {
      closed = true;
      clearTimeout(timer);
      if (socket) socket.close();
    },
  };
}

export async function serverPage(ctx, id) {
  let server = await get(`/servers/${seg(id)}`);
  const perms = new Set(server.permissions);
  // The server's answer already holds what the caller may do here (all of
  // it for admins; role permissions narrowed by a subuser grant).
  const can = (p) => perms.has(p);

  const stateBadge = h('span', { id: 'server-state', role: 'status', 'aria-label': 'Server state' }, badge(server.state, stateTone(server.state)));
  const readyBadge = h('span', { id: 'server-ready', hidden: true }, badge('ready', 'success'));
  const alert = h('div', { id: 'server-alert', 'aria-live': 'assertive' });
  const link = h('span', { class: 'muted small', id: 'console-link' }, 'connecting…');
  let buttons = null;

  function setState(state) {
    if (state !== server.state && state !== 'running') readyBadge.hidden = true;
    server.state = state;
    replace(stateBadge, badge(state, stateTone(state)));
    if (buttons) {
      for (const b of buttons.querySelectorAll('button[data-action]')) {
        const suspended = server.suspension && REFUSED_WHILE_SUSPENDED.includes(b.dataset.action);
        const moving = server.transfer_id && REFUSED_WHILE_SUSPENDED.includes(b.dataset.action);
        const fits = POWER_STATES[b.dataset.action].includes(state);
        b.disabled = !fits || Boolean(suspended) || Boolean(moving);
        b.title = suspended ? `Suspended: ${server.suspension.reason}`
          : moving ? 'Being moved to another node' : fits ? '' : `Not while the server is ${state}`;
      }
    }
  }

  // The suspension: a banner with its reason for everyone who sees the
  // server; what it refuses is disabled (setSuspension keeps all of it in
  // step when a poll or an administrator changes it).
  const suspendedBanner = h('div', { id: 'server-suspension' });
  const suspensionHooks = [];
  function setSuspension(suspension) {
    server.suspension = suspension || null;
    replace(suspendedBanner, server.suspension ? alertBox([
      h('strong', null, 'This server is suspended'), ': ',
      h('span', { id: 'suspension-reason' }, server.suspension.reason),
      h('span', { class: 'muted small' }, ` (since ${when(server.suspension.since)})`),
      h('br'),
      'It cannot be started, restarted, reinstalled or sent console commands, and its files are read-only.',
    ], 'danger', { id: 'server-suspended' }) : null);
    setState(server.state);
    suspensionHooks.forEach((f) => f());
  }

  // A transfer to another node: a banner for everyone who sees the
  // server while it runs; administrators also see how the latest one went
  // (its stage and bytes and, when it failed, why).
  const transferBanner = h('div', { id: 'server-transfer', 'aria-live': 'polite' });
  const transferHooks = [];
  const recent = (t) => t && t.ended_at && Date.now() - Date.parse(t.ended_at) < 3600e3;
  // Node names by id, for administrators (who may list nodes).
  const nodeNames = new Map();
  const nodeName = (nodeId) => nodeNames.get(nodeId) || nodeId;
  async function setTransfer(transferId) {
    server.transfer_id = transferId || null;
    let latest = null;
    if (ctx.has('admin.servers')) {
      try {
        latest = (await get(`/servers/${seg(id)}/transfers`)).items[0] || null;
        if (latest && !nodeNames.has(latest.to_node)) {
          for (const n of (await get('/nodes')).items) nodeNames.set(n.id, n.name);
        }
      } catch {
        latest = null;
      }
    }
    const current = latest && latest.id === server.transfer_id ? latest : null;
    if (server.transfer_id) {
      const progress = current && current.total_bytes
        ? ` (${Math.min(100, Math.floor((current.sent_bytes * 100) / current.total_bytes))}% sent)` : '';
      replace(transferBanner, alertBox([
        h('strong', null, 'This server is being moved to another node'), ': ',
        h('span', { id: 'transfer-stage' }, current ? TRANSFER_STAGES[current.stage] || current.stage : 'in progress'),
        progress, h('br'),
        'Until the move ends it cannot be started, restarted, reinstalled, sent console commands or deleted.',
      ], 'info', { id: 'server-transferring' }));
    } else if (latest && latest.state === 'failed' && recent(latest)) {
      replace(transferBanner, alertBox([
        h('strong', null, 'The last transfer failed'), ': ',
        h('span', { id: 'transfer-failure' }, latest.failure || 'no reason given'),
        ` The server stayed on node ${nodeName(latest.from_node)}.`,
      ], 'danger', { id: 'server-transfer-failed' }));
    } else if (latest && latest.state === 'done' && recent(latest)) {
      replace(transferBanner, alertBox([
        h('strong', null, 'Moved'), `: the server is on node ${nodeName(latest.to_node)} now.`,
      ], 'success', { id: 'server-transfer-done' }));
    } else {
      replace(transferBanner, null);
    }
    setState(server.state);
    transferHooks.forEach((f) => f());
  }

  async function power(action) {
    replace(alert);
    if (server.suspension && REFUSED_WHILE_SUSPENDED.includes(action)) return;
    if (live && live.send('set state', [action])) return;
    try {
      await post(`/servers/${seg(id)}/power`, { action });
      toast(`${action} requested`, 'info');
      loadCommands();
    } catch (error) {
      showError(alert, error);
    }
  }
  buttons = h('div', { class: 'power', role: 'group', 'aria-label': 'Power' },
    POWER.filter(([, , p]) => can(p)).map(([action, label, , t]) =>
      h('button', { type: 'button', class: `tone-${t}`, 'data-action': action, onclick: () => power(action) }, label)));
  setState(server.state);

  // Console.
  const output = h('div', { id: 'console-output', class: 'console', role: 'log', 'aria-live': 'polite', tabindex: '0' });
  function line(text, kind = 'line') {
    const atBottom = output.scrollTop + output.clientHeight >= output.scrollHeight - 8;
    output.append(h('div', { class: `console-${kind}` }, text));
    while (output.childElementCount > MAX_LINES) output.firstElementChild.remove();
    if (atBottom) output.scrollTop = output.scrollHeight;
  }
  const history = [];
  let cursor = 0;
  const input = h('input', { id: 'console-input', autocomplete: 'off', 'aria-label': 'Console command', placeholder: 'Type a command' });
  input.addEventListener('keydown', (event) => {
    if (event.key === 'ArrowUp' && cursor > 0) {
      cursor -= 1;
      input.value = history[cursor];
      event.preventDefault();
    } else if (event.key === 'ArrowDown') {
      cursor = Math.min(history.length, cursor + 1);
      input.value = history[cursor] || '';
      event.preventDefault();
    }
  });
  const sendButton = h('button', { type: 'submit' }, 'Send');
  suspensionHooks.push(() => {
    input.disabled = Boolean(server.suspension);
    sendButton.disabled = Boolean(server.suspension);
    input.placeholder = server.suspension ? 'Suspended: no console commands' : 'Type a command';
  });
  const consoleForm = can('control.console') ? form({ id: 'console-form', class: 'console-input' },
    [input, sendButton], async () => {
      const command = input.value;
      if (!command.trim() || server.suspension) return;
      history.push(command);
      if (history.length > 100) history.shift();
      cursor = history.length;
      input.value = '';
      if (live && live.send('send command', [command])) {
        line(`> ${command}`, 'echo');
        return;
      }
      try {
        await post(`/servers/${seg(id)}/command`, { command });
        line(`> ${command}`, 'echo');
      } catch (error) {
        showError(alert, error);
      }
    }) : null;

  // Stats.
  const stats = {
    cpu: h('span', { class: 'stat-value', id: 'stat-cpu' }, '—'),
    memory: h('span', { class: 'stat-value', id: 'stat-memory' }, '—'),
    uptime: h('span', { class: 'stat-value', id: 'stat-uptime' }, '—'),
    players: h('span', { class: 'stat-value', id: 'stat-players' }, '—'),
  };
  const statBox = h('div', { class: 'stats' },
    [['CPU', stats.cpu], ['Memory', stats.memory], ['Uptime', stats.uptime], ['Players', stats.players]]
      .map(([label, value]) => h('div', { class: 'stat' }, h('span', { class: 'stat-label' }, label), value)));

  const widgets = ctx.contributions.filter((c) => c.slot === 'server-widget').map((c) => pluginWidget(c, id));
  // Plugins hear of console events at the same time as this page does, so
  // a widget asked at once may not know yet: ask again a moment later.
  let widgetTimer = null;
  function reloadWidgets() {
    widgets.forEach((w) => w.reload());
    clearTimeout(widgetTimer);
    widgetTimer = setTimeout(() => widgets.forEach((w) => w.reload()), 1000);
  }
  ctx.onLeave(() => clearTimeout(widgetTimer));

  const live = can('control.console') ? connectConsole(id, {
    connected(on) {
      replace(link, on ? 'live' : 'reconnecting…');
    },
    unavailable(error) {
      replace(link, `live console unavailable (${error.message})`);
    },
    event(name, args) {
      switch (name) {
        case 'status': setState(String(args[0])); break;
        case 'console output': line(String(args[0])); break;
        case 'console event': {
          const e = args[0] || {};
          const text = e.kind === 'ready' ? 'Server is ready'
            : e.kind === 'player-joined' ? `${e.name} joined`
              : e.kind === 'player-left' ? `${e.name} left`
                : e.kind === 'crash' ? `Crashed: ${e.cause || ''}` : (e.text || e.kind);
          line(text, `event event-${String(e.kind).replace(/[^a-z-]/g, '')}`);
          if (e.kind === 'ready') {
            setState('running');
            readyBadge.hidden = false;
          }
          if (e.kind === 'player-joined' || e.kind === 'player-left') reloadWidgets();
          break;
        }
        case 'stats': {
          const s = args[0] || {};
          stats.cpu.textContent = typeof s.cpuPercent === 'number' ? `${s.cpuPercent.toFixed(1)} %` : '—';
          stats.memory.textContent = bytes(s.memoryBytes);
          stats.uptime.textContent = duration(s.uptimeSecs);
          stats.players.textContent = s.players === undefined || s.players === null ? '—' : String(s.players);
          break;
        }
        case 'dropped': line(`(${args[0]} lines dropped)`, 'note'); break;
        case 'command accepted': break;
        case 'error': {
          const e = args[0] || {};
          replace(alert, alertBox([h('strong', null, e.code === 'hook-denied' ? 'Denied by a plugin' : 'Error'), ': ', e.message || e.code], 'danger', { 'data-code': e.code || '' }));
          break;
        }
        default: break;
      }
    },
  }) : null;
  if (!live) replace(link, '');
  ctx.onLeave(() => live && live.close());

  // State polling (state changes show without a reload even without the socket).
  const poll = setInterval(async () => {
    try {
      const fresh = await get(`/servers/${seg(id)}`);
      if (fresh.state !== server.state) setState(fresh.state);
      if (JSON.stringify(fresh.suspension || null) !== JSON.stringify(server.suspension || null)) {
        setSuspension(fresh.suspension);
      }
      if ((fresh.transfer_id || null) !== (server.transfer_id || null) || fresh.transfer_id) {
        server.node_id = fresh.node_id;
        setTransfer(fresh.transfer_id || null);
      }
    } catch {
      // Transient; the next poll retries.
    }
  }, 5000);
  ctx.onLeave(() => clearInterval(poll));

  // Variables, labelled and described by the game-type plugin (which also
  // validates them: its per-field errors show under each field).
  let varsSection = null;
  let gameType = null;
  if (server.variables) {
    try {
      // A plugin may offer several game types (one per imported egg).
      gameType = (await get('/game-types')).items
        .find((g) => g.plugin === server.game.plugin && (!server.game.type || g.type === server.game.type)) || null;
    } catch {
      gameType = null;
    }
  }
  // Named startup commands (Pelican's), when the game type offers a choice.
  const commandNames = gameType ? gameType.startup_commands : [];
  if (server.variables && (Object.keys(server.variables).length || commandNames.length)) {
    const described = gameType ? gameType.variables : [];
    const box = h('div', { hidden: true, id: 'variables-result' });
    const fields = {};
    const running = server.startup_command || commandNames[0];
    const startup = commandNames.length
      ? field('Startup command', h('select', { name: 'startup_command', id: 'startup-command', disabled: !can('startup.update') },
        commandNames.map((c) => h('option', { value: c, selected: c === running }, c))), 'The command the server starts with.')
      : null;
    for (const [key, value] of Object.entries(server.variables)) {
      const v = described.find((d) => d.key === key);
      const editable = can('startup.update') && (!v || v.user_editable);
      const input = v && v.choices.length
        ? h('select', { name: key, disabled: !editable }, v.choices.map((c) => h('option', { value: c, selected: c === value }, c)))
        : h('input', { name: key, value, disabled: !editable, type: v && v.kind === 'integer' ? 'number' : 'text' });
      fields[`variables.${key}`] = field(v ? v.name : key, input, v ? [v.description, h('code', { class: 'muted' }, ` ${key}`)] : null);
    }
    varsSection = h('section', { class: 'card' }, h('h2', null, 'Variables'),
      form({ id: 'variables-form' }, [startup ? startup.row : null, Object.values(fields).map((f) => f.row), box,
        can('startup.update') ? h('button', { type: 'submit', class: 'primary' }, 'Save variables') : null], async () => {
        const variables = {};
        for (const [key, f] of Object.entries(fields)) {
          if (!f.input.disabled) variables[key.slice('variables.'.length)] = f.input.value;
        }
        const changes = { variables };
        if (startup && startup.input.value !== running) changes.startup_command = startup.input.value;
        const shown = startup ? { ...fields, startup_command: startup } : fields;
        try {
          server = await patch(`/servers/${seg(id)}`, changes);
          showError(box, null, shown);
          replace(box, alertBox('Saved. The new values apply at the next start.', 'success'));
          box.hidden = false;
        } catch (error) {
          showError(box, error, shown);
        }
      }));
  }

  // Recent commands.
  const commands = h('div', { id: 'server-commands' });
  async function loadCommands() {
    if (!can('activity.read')) return;
    try {
      const page = await get(`/servers/${seg(id)}/commands?limit=10`);
      replace(commands, page.items.length ? table(['When', 'Action', 'State', 'Detail'], page.items.map((c) =>
        [when(c.created_at), c.action, badge(c.state, stateTone(c.state)), c.detail || ''])) : h('p', { class: 'muted' }, 'No commands yet.'));
    } catch (error) {
      showError(commands, error);
    }
  }
  loadCommands();
  const commandPoll = setInterval(loadCommands, 5000);
  ctx.onLeave(() => clearInterval(commandPoll));

  // Reinstall (keeping or wiping the files) and delete, each behind a
  // confirmation; suspending and lifting a suspension, for administrators.
  const manageBox = h('div', { hidden: true });
  const mayDelete = can('server.delete') || ctx.has('server.delete');
  const mayAdminister = ctx.has('admin.servers');
  const reinstallButton = can('settings.reinstall') ? h('button', { type: 'button', class: 'tone-warning', id: 'server-reinstall', onclick: async () => {
    const wipe = h('input', { type: 'checkbox', id: 'reinstall-wipe' });
    const body = [
      h('p', null, `Reinstall ${server.name}? The game-type plugin's install steps run again; stop the server first.`),
      h('label', { for: 'reinstall-wipe', class: 'check' }, wipe, ' Delete all of its files first (its backups are kept)'),
    ];
    if (!await confirmModal('Reinstall', body, 'Reinstall', 'tone-warning')) return;
    try {
      await post(`/servers/${seg(id)}/install`, { wipe: wipe.checked });
      toast(wipe.checked ? 'Reinstall with wiped files requested' : 'Reinstall requested', 'info');
      showError(manageBox, null);
      loadCommands();
    } catch (error) {
      showError(manageBox, error);
    }
  } }, 'Reinstall') : null;
  suspensionHooks.push(() => {
    if (!reinstallButton) return;
    reinstallButton.disabled = Boolean(server.suspension);
    reinstallButton.title = server.suspension ? `Suspended: ${server.suspension.reason}` : '';
  });
  const suspensionBox = h('div', { id: 'suspension-admin' });
  function showSuspensionAdmin() {
    if (!mayAdminister) return;
    if (server.suspension) {
      replace(suspensionBox, h('button', { type: 'button', class: 'tone-success', id: 'server-unsuspend', onclick: async () => {
        try {
          const lifted = await del(`/servers/${seg(id)}/suspension`);
          toast('Suspension lifted', 'info');
          showError(manageBox, null);
          setSuspension(lifted.suspension);
        } catch (error) {
          showError(manageBox, error);
        }
      } }, 'Lift suspension'));
      return;
    }
    const reason = field('Reason', h('input', { name: 'reason', id: 'suspension-reason-input', maxlength: '512', required: true }),
      'Shown to the server\'s owner and subusers. The server is stopped, and cannot be started until the suspension is lifted.');
    replace(suspensionBox, form({ id: 'suspend-form', class: 'inline-form' }, [reason.row,
      h('button', { type: 'submit', class: 'danger', id: 'server-suspend' }, 'Suspend')], async () => {
      try {
        const suspended = await post(`/servers/${seg(id)}/suspension`, { reason: reason.input.value });
        toast('Server suspended', 'info');
        showError(manageBox, null, { reason });
        setSuspension(suspended.suspension);
        loadCommands();
      } catch (error) {
        showError(manageBox, error, { reason });
      }
    }));
  }
  suspensionHooks.push(showSuspensionAdmin);
  // Moving the server: a picker of the other nodes, for administrators.
  const transferBox = h('div', { id: 'transfer-admin' });
  async function showTransferAdmin() {
    if (!mayAdminister) return;
    if (server.transfer_id) {
      replace(transferBox, h('p', { class: 'muted' }, 'A transfer is running; its progress shows above and on the console.'));
      return;
    }
    let nodes = [];
    try {
      const all = (await get('/nodes')).items;
      for (const n of all) nodeNames.set(n.id, n.name);
      nodes = all.filter((n) => n.id !== server.node_id);
    } catch (error) {
      showError(transferBox, error);
      return;
    }
    if (!nodes.length) {
      replace(transferBox, h('p', { class: 'muted' }, 'There is no other node to move the server to.'));
      return;
    }
    const select = h('select', { name: 'node_id', id: 'transfer-node', required: true },
      nodes.map((n) => h('option', { value: n.id }, `${n.name}${n.online ? '' : ' (offline)'}`)));
    const node = field('Target node', select,
      'The server is stopped, its files go straight from its node to the target, and it starts there if it was running. It keeps its id, users, databases and schedules, and takes allocations on the target.');
    replace(transferBox, form({ id: 'transfer-form', class: 'inline-form' }, [node.row,
      h('button', { type: 'submit', class: 'tone-warning', id: 'server-transfer-start' }, 'Move server')], async () => {
      try {
        const begun = await post(`/servers/${seg(id)}/transfer`, { node_id: select.value });
        toast('Transfer started', 'info');
        showError(manageBox, null, { node_id: node });
        await setTransfer(begun.id);
        loadCommands();
      } catch (error) {
        showError(manageBox, error, { node_id: node });
      }
    }));
  }
  transferHooks.push(showTransferAdmin);
  const manage = can('settings.reinstall') || mayDelete || mayAdminister ? h('section', { class: 'card', id: 'server-manage' }, h('h2', null, 'Manage'),
    h('div', { class: 'power' },
      reinstallButton,
      mayDelete ? h('button', { type: 'button', class: 'danger', id: 'server-delete', onclick: async () => {
        if (!window.confirm(`Delete ${server.name}? The server and its files on the node are removed for good.`)) return;
        try {
          await api('DELETE', `/servers/${seg(id)}`);
          toast(`Deleting ${server.name}`, 'info');
          location.hash = '#/servers';
        } catch (error) {
          showError(manageBox, error);
        }
      } }, 'Delete server') : null),
    mayAdminister ? h('h3', null, 'Suspension') : null,
    suspensionBox,
    mayAdminister ? h('h3', null, 'Move to another node') : null,
    transferBox,
    manageBox) : null;
  setSuspension(server.suspension);
  setTransfer(server.transfer_id);

  return h('section', null,
    h('div', { class: 'page-head' },
      h('h1', null, server.name),
      stateBadge, readyBadge),
    serverTabs(id, can, 'overview'),
    h('p', { class: 'muted' }, `${gameLabel(server.game)} ${server.game.version || ''}`,
      server.allocation ? ` · ${server.allocation.ip}:${server.allocation.port}` : ''),
    suspendedBanner,
    transferBanner,
    buttons,
    alert,
    h('div', { class: 'server-grid' },
      h('section', { class: 'card console-card' }, h('h2', null, 'Console ', link), output, consoleForm),
      h('div', { class: 'side' },
        h('section', { class: 'card' }, h('h2', null, 'Stats'), statBox),
        widgets)),
    varsSection,
    can('activity.read') ? h('section', { class: 'card' }, h('h2', null, 'Recent commands'), commands) : null,
    manage);
}
