// Plugin-contributed UI: draws the typed tree a plugin returned with the
// Panel's own components. Every string from the plugin becomes a text node
// or a property or attribute value (column labels of stacked tables); no
// plugin string is ever parsed as HTML, used as a URL, a class name or an
// attribute name.

import { api, seg } from './api.js';
import { h, replace, badge, toast } from './dom.js';

const TONES = new Set(['neutral', 'info', 'success', 'warning', 'danger']);
const tone = (t) => (TONES.has(t) ? t : 'neutral');

function renderNode(tree, index, act) {
  const node = tree.nodes[index];
  const el = node.element;
  const kids = () => node.children.map((c) => renderNode(tree, c, act));
  switch (el.type) {
    case 'section':
      return h('div', { class: 'pui-section' }, el.title ? h('h3', null, el.title) : null, kids());
    case 'row':
      return h('div', { class: 'pui-row' }, kids());
    case 'heading':
      return h('h3', { class: 'pui-heading' }, el.text);
    case 'text':
      return h('p', { class: 'pui-text' }, el.text);
    case 'badge':
      return badge(el.text, tone(el.tone));
    case 'stat':
      return h('div', { class: 'stat' }, h('span', { class: 'stat-label' }, el.label), h('span', { class: 'stat-value' }, el.value));
    case 'alert':
      return h('div', { class: `alert tone-${tone(el.tone)}`, role: 'status' }, el.text);
    case 'button':
      return button(el.button, () => act(el.button, {}));
    case 'form':
      return pluginForm(el, act);
    case 'table':
      return h('div', { class: 'table-wrap' }, h('table', { class: 'pui-table stack' },
        h('thead', null, h('tr', null, el.columns.map((c) => h('th', { scope: 'col' }, c)),
          el.rows.some((r) => r.actions.length) ? h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')) : null)),
        h('tbody', null, el.rows.map((row) => h('tr', null,
          row.cells.map((c, i) => h('td', { 'data-label': el.columns[i] || '' }, c)),
          row.actions.length ? h('td', { class: 'actions' }, row.actions.map((b) => {
            const values = {};
            row.cells.forEach((c, i) => { values[String(i)] = c; });
            return button(b, () => act(b, values), row.cells[0]);
          })) : null)))));
    case 'chart':
      return chart(el);
    case 'divider':
      return h('hr');
    default:
      return h('p', { class: 'muted' }, 'An element this Panel cannot show.');
  }
}

function button(b, onclick, context) {
  return h('button', {
    type: 'button',
    class: `tone-${tone(b.tone)}`,
    'aria-label': context ? `${b.label} ${context}` : null,
    onclick: () => {
      if (b.confirm && !window.confirm(b.confirm)) return;
      onclick();
    },
  }, b.label);
}

function pluginForm(el, act) {
  const inputs = el.fields.map((f) => {
    let input;
    if (f.kind === 'select') {
      input = h('select', { required: f.required }, f.options.map((o) => h('option', { value: o, selected: o === f.value }, o)));
    } else if (f.kind === 'toggle') {
      input = h('input', { type: 'checkbox', checked: f.value === 'true' });
    } else {
      input = h('input', { type: f.kind === 'number' ? 'number' : f.kind === 'secret' ? 'password' : 'text', value: f.value || '', required: f.required });
    }
    const id = `pui-${Math.random().toString(36).slice(2)}`;
    input.id = id;
    return { f, input, row: h('div', { class: 'field' }, h('label', { for: id }, f.label), input) };
  });
  const formEl = h('form', { class: 'pui-form' }, inputs.map((i) => i.row),
    h('button', { type: 'submit', class: `tone-${tone(el.submit.tone)}` }, el.submit.label));
  formEl.addEventListener('submit', (event) => {
    event.preventDefault();
    if (el.submit.confirm && !window.confirm(el.submit.confirm)) return;
    const values = {};
    for (const { f, input } of inputs) values[f.name] = input.type === 'checkbox' ? String(input.checked) : input.value;
    act(el.submit, values);
  });
  return formEl;
}

/** A chart as an inline SVG built with DOM calls (no markup strings). */
function chart(el) {
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', '0 0 300 120');
  svg.setAttribute('class', 'pui-chart');
  svg.setAttribute('role', 'img');
  const points = el.series.flatMap((s) => s.points);
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs, 0), Math.max(...xs, 1)];
  const [y0, y1] = [Math.min(...ys, 0), Math.max(...ys, 1)];
  const sx = (x) => 5 + ((x - x0) / (x1 - x0 || 1)) * 290;
  const sy = (y) => 115 - ((y - y0) / (y1 - y0 || 1)) * 110;
  const title = document.createElementNS(NS, 'title');
  title.textContent = el.series.map((s) => s.name).join(', ');
  svg.append(title);
  el.series.forEach((s, i) => {
    if (el.kind === 'bar') {
      for (const [x, y] of s.points) {
        const r = document.createElementNS(NS, 'rect');
        r.setAttribute('x', String(sx(x) - 3 + i * 2));
        r.setAttribute('y', String(sy(y)));
        r.setAttribute('width', '5');
        r.setAttribute('height', String(Math.max(0, 115 - sy(y))));
        r.setAttribute('class', `series-${i % 4}`);
        svg.append(r);
      }
    } else {
      const line = document.createElementNS(NS, 'polyline');
      line.setAttribute('points', s.points.map(([x, y]) => `${sx(x)},${sy(y)}`).join(' '));
      line.setAttribute('class', `series-${i % 4}`);
      svg.append(line);
    }
  });
  return h('figure', { class: 'pui-figure' }, svg,
    h('figcaption', null, el.series.map((s, i) => h('span', { class: `legend series-${i % 4}` }, s.name))));
}

/**
 * A widget showing contribution `c` (from /ui/contributions), for server
 * `serverId` when it is a server widget. Renders, sends actions, and
 * re-renders on `refresh` or after a notification.
 */
export function pluginWidget(c, serverId, options = {}) {
  const body = h('div', { class: 'pui-body', 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Loading…'));
  const message = h('div', { class: 'pui-message' });
  const base = `/ui/contributions/${seg(c.plugin)}/${seg(c.id)}`;
  // What is shown, so that an unchanged tree leaves the DOM (and the
  // keyboard focus in it) alone.
  let shown = null;
  async function load() {
    try {
      const tree = await api('GET', serverId ? `${base}?server_id=${seg(serverId)}` : base);
      const key = JSON.stringify(tree);
      if (key === shown) return;
      shown = key;
      replace(body, renderNode(tree, tree.root, act));
    } catch (error) {
      shown = null;
      replace(body, h('div', { class: 'alert tone-danger', role: 'alert', 'data-code': error.code || '' },
        `This widget could not be shown: ${error.message}`));
    }
  }
  async function act(b, values) {
    try {
      const result = await api('POST', `${base}/actions`, { server_id: serverId || undefined, name: b.action, values });
      if (result.result === 'notify') {
        replace(message, h('div', { class: `alert tone-${tone(result.tone)}`, role: 'status' }, result.message));
        toast(result.message, tone(result.tone));
      }
      await load();
    } catch (error) {
      replace(message, h('div', { class: 'alert tone-danger', role: 'alert', 'data-code': error.code || '' }, error.message));
    }
  }
  load();
  const widget = h(options.bare ? 'div' : 'section', {
    class: options.bare ? 'plugin-widget bare' : 'card plugin-widget',
    'data-plugin': c.plugin,
    'data-contribution': c.id,
  }, options.bare ? null : h('h2', null, c.title, h('span', { class: 'muted small' }, ` · ${c.plugin_name}`)), message, body);
  widget.reload = load;
  return widget;
}
