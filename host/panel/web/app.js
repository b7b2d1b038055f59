// The Web UI's entry point: session, navigation and the hash router.
//
// Routes are URL fragments (`#/servers/<id>`), so the Panel serves one
// page and nothing shadows its API. Each page is a function
// `(ctx, ...params) => Node`; `ctx.onLeave(fn)` registers clean-up (timers,
// WebSockets) run when the user navigates away.

import { get, session, clearSession, onSignedOut, post } from './api.js';
import { h, replace, toast } from './dom.js';
import { signInPage, linkPage, forcedChangePage, serversPage, createServerPage, accountPage, auditPage, pluginPage } from './pages.js';
import { serverPage } from './server.js';
import { filesPage } from './files.js';
import { editorPage } from './editor.js';
import { backupsPage } from './backups.js';
import { databasesPage, databaseHostsPage } from './databases.js';
import { allocationsPage } from './allocations.js';
import { usersPage, rolesPage, nodesPage, pluginsPage, pluginDetailPage } from './admin.js';
import { eggsPage } from './eggs.js';

const routes = [
  // `?ticket=…`: the return of a redirect sign-in (see signInPage).
  [/^\/login(?:\?[^/]*)?$/, signInPage, { public: true }],
  [/^\/link\/([^/]+)$/, linkPage, { public: true }],
  [/^\/servers$/, serversPage],
  [/^\/servers\/new$/, createServerPage],
  [/^\/servers\/([^/]+)$/, serverPage],
  // `?path=…`: read by the page (a path may hold what a capture would split).
  [/^\/servers\/([^/]+)\/files(?:\?.*)?$/, filesPage],
  [/^\/servers\/([^/]+)\/files\/edit(?:\?.*)?$/, editorPage],
  [/^\/servers\/([^/]+)\/backups$/, backupsPage],
  [/^\/servers\/([^/]+)\/databases$/, databasesPage],
  [/^\/servers\/([^/]+)\/network$/, allocationsPage],
  [/^\/account(?:\?[^/]*)?$/, accountPage],
  [/^\/audit$/, auditPage],
  [/^\/admin\/users$/, usersPage],
  [/^\/admin\/roles$/, rolesPage],
  [/^\/admin\/nodes$/, nodesPage],
  [/^\/admin\/database-hosts$/, databaseHostsPage],
  [/^\/admin\/plugins$/, pluginsPage],
  [/^\/admin\/plugins\/([^/]+)$/, pluginDetailPage],
  [/^\/admin\/eggs$/, eggsPage],
  [/^\/plugin\/([^/]+)\/([^/]+)$/, pluginPage],
];

/** What the signed-in user is: {user, permissions: Set}, or null. */
const state = { me: null, contributions: [] };
let leaving = [];

function has(permission) {
  return Boolean(state.me && state.me.permissions.has(permission));
}

function navLink(href, label) {
  const current = location.hash === href || location.hash.startsWith(`${href}/`);
  return h('a', { href, 'aria-current': current ? 'page' : null }, label);
}

function renderNav() {
  const nav = document.getElementById('nav');
  if (!state.me) {
    replace(nav);
    return;
  }
  if (state.me.user.password_change_required) {
    replace(nav, h('ul', null, h('li', null, h('button', { type: 'button', class: 'link', id: 'sign-out', onclick: signOut }, 'Sign out'))));
    return;
  }
  const links = [navLink('#/servers', 'Servers')];
  for (const c of state.contributions.filter((c) => c.slot === 'nav-page')) {
    links.push(navLink(`#/plugin/${encodeURIComponent(c.plugin)}/${encodeURIComponent(c.id)}`, c.title));
  }
  if (has('audit.read')) links.push(navLink('#/audit', 'Audit log'));
  if (has('admin.users')) links.push(navLink('#/admin/users', 'Users'));
  if (has('admin.users')) links.push(navLink('#/admin/roles', 'Roles'));
  if (has('admin.nodes')) links.push(navLink('#/admin/nodes', 'Nodes'));
  if (has('admin.nodes')) links.push(navLink('#/admin/database-hosts', 'Database hosts'));
  if (has('admin.plugins')) links.push(navLink('#/admin/plugins', 'Plugins'));
  if (has('admin.plugins')) links.push(navLink('#/admin/eggs', 'Game types'));
  links.push(navLink('#/account', 'Account'));
  links.push(h('button', { type: 'button', class: 'link', id: 'sign-out', onclick: signOut }, 'Sign out'));
  replace(nav, h('ul', null, links.map((l) => h('li', null, l))));
}

async function signOut() {
  const current = session();
  if (current && current.refresh) {
    try {
      await post('/auth/logout', { refresh_token: current.refresh });
    } catch {
      // The session ends locally either way.
    }
  }
  clearSession();
  state.me = null;
  location.hash = '#/login';
}

/** Loads who is signed in; false when nobody is. */
async function loadMe() {
  if (!session()) return false;
  try {
    const me = await get('/auth/me');
    state.me = { user: me.user, permissions: new Set(me.permissions) };
    try {
      state.contributions = (await get('/ui/contributions')).items;
    } catch {
      state.contributions = [];
    }
    return true;
  } catch {
    state.me = null;
    return false;
  }
}

async function route() {
  for (const fn of leaving) {
    try { fn(); } catch { /* clean-up must not stop navigation */ }
  }
  leaving = [];
  const path = (location.hash || '#/servers').replace(/^#/, '') || '/servers';
  const main = document.getElementById('main');
  const match = routes.map(([re, page, opts]) => [path.match(re), page, opts || {}]).find(([m]) => m);
  if (!state.me && !(match && match[2].public)) {
    if (!(await loadMe())) {
      location.hash = '#/login';
      return;
    }
  }
  renderNav();
  document.getElementById('nav-toggle').setAttribute('aria-expanded', 'false');
  document.getElementById('nav').classList.remove('open');
  if (!match) {
    replace(main, h('h1', null, 'Not found'), h('p', null, 'There is no such page. ', h('a', { href: '#/servers' }, 'Back to the servers')));
    return;
  }
  let [m, page] = match;
  // Until the required new password is chosen, that is the only page.
  if (state.me && state.me.user.password_change_required && !match[2].public) {
    [m, page] = [[path], forcedChangePage];
  }
  const ctx = {
    me: state.me,
    has,
    contributions: state.contributions,
    onLeave: (fn) => leaving.push(fn),
    signedIn: async () => {
      await loadMe();
      location.hash = '#/servers';
    },
    refreshMe: loadMe,
    /** Draws the current route again (after what it shows changed). */
    reroute: route,
  };
  try {
    const params = m.slice(1).map(decodeURIComponent);
    const content = await page(ctx, ...params);
    replace(main, content);
    const heading = main.querySelector('h1');
    document.title = heading ? `${heading.textContent} · Ctrl-Alt-Play` : 'Ctrl-Alt-Play';
    main.focus({ preventScroll: true });
  } catch (error) {
    replace(main, h('h1', null, 'Something went wrong'), h('p', { role: 'alert' }, error.message || String(error)));
  }
}

onSignedOut(() => {
  state.me = null;
  if (location.hash !== '#/login') {
    toast('Your session ended; please sign in again.', 'warning');
    location.hash = '#/login';
  }
});

document.getElementById('nav-toggle').addEventListener('click', (event) => {
  const nav = document.getElementById('nav');
  const open = !nav.classList.contains('open');
  nav.classList.toggle('open', open);
  event.currentTarget.setAttribute('aria-expanded', String(open));
});

// A failure nobody caught still reaches the user, not only the console.
window.addEventListener('unhandledrejection', (event) => {
  const reason = event.reason;
  toast(`Something went wrong: ${(reason && reason.message) || String(reason)}`, 'danger');
});

window.addEventListener('hashchange', route);
route();
