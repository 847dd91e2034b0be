// The admin page: polls GET /api/peers every POLL_MS and updates the table in place
// (rows keyed by peer name, so focus and open dialogs survive a refresh); every action
// is one call of the API with the session's CSRF token.
'use strict';

const POLL_MS = 2000;
let csrfToken = '';

const $ = (id) => document.getElementById(id);
const say = (text) => {
  $('status').textContent = text;
};

function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

function ago(seconds) {
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} days ago`;
}

async function api(method, path, body) {
  const headers = { 'x-csrf-token': csrfToken };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (r.status === 401) {
    location.assign('/login');
    throw new Error('logged out');
  }
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.message || `${method} ${path}: ${r.status}`);
  return data;
}

const SVG = 'http://www.w3.org/2000/svg';

/** A small line graph of the 24 h buckets (bytes per 15 min). */
function graph(history, name) {
  const w = 96;
  const h = 24;
  const max = Math.max(1, ...history);
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  svg.setAttribute('class', 'graph');
  svg.setAttribute('role', 'img');
  const total = history.reduce((a, b) => a + b, 0);
  svg.setAttribute('aria-label', `${name}: ${bytes(total)} in the last 24 hours`);
  const line = document.createElementNS(SVG, 'polyline');
  line.setAttribute('points', history.map((v, i) => `${(i * w) / (history.length - 1)},${(h - 1 - (v / max) * (h - 2)).toFixed(1)}`).join(' '));
  svg.append(line);
  return svg;
}

function button(label, title, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  b.setAttribute('aria-label', title);
  b.addEventListener('click', onClick);
  return b;
}

async function act(what, f) {
  try {
    const r = await f();
    say(r && r.message ? r.message : `${what}: done`);
  } catch (e) {
    say(`${what}: ${e.message}`);
  }
  await refresh();
}

function actions(p) {
  const cell = document.createElement('div');
  cell.className = 'actions';
  const path = `/api/peers/${encodeURIComponent(p.name)}`;
  const config = document.createElement('a');
  config.href = `${path}/config`;
  config.textContent = 'Config';
  config.setAttribute('download', `${p.name}.conf`);
  config.setAttribute('aria-label', `download ${p.name}'s configuration`);
  cell.append(
    config,
    button('QR', `show ${p.name}'s QR code`, () => {
      $('qr-title').textContent = `QR code for ${p.name}`;
      $('qr-img').alt = `QR code of ${p.name}'s configuration`;
      $('qr-img').src = `${path}/qr.svg?t=${Date.now()}`;
      $('qr-dialog').showModal();
    }),
    button('Link', `make a one-time link for ${p.name}`, () =>
      act('one-time link', async () => {
        const r = await api('POST', `${path}/link`);
        $('link-url').value = `${location.origin}${r.path}`;
        $('link-expires').textContent = new Date(r.expires).toLocaleTimeString();
        $('link-dialog').showModal();
        $('link-url').select();
        return { message: `one-time link for '${p.name}' made` };
      }),
    ),
    p.enabled
      ? button('Disable', `disable ${p.name}`, () => act('disable', () => api('POST', `${path}/disable`)))
      : button('Enable', `enable ${p.name}`, () => act('enable', () => api('POST', `${path}/enable`, {}))),
    button('Quota', `set ${p.name}'s monthly quota`, () => {
      const dialog = $('quota-dialog');
      $('quota-title').textContent = `Quota for ${p.name}`;
      $('quota-mib').value = p.quota === null ? '' : String(p.quota / 1048576);
      dialog.onclose = () => {
        if (dialog.returnValue !== 'save') return;
        const mib = $('quota-mib').value;
        const quota = mib === '' || Number(mib) === 0 ? null : Math.max(1, Math.round(Number(mib) * 1048576));
        act('quota', () => api('PUT', `${path}/quota`, { quota }));
      };
      dialog.returnValue = '';
      dialog.showModal();
    }),
    button('Remove', `remove ${p.name}`, () => {
      if (confirm(`Remove ${p.name}? Its keys and addresses are forgotten.`)) act('remove', () => api('DELETE', path));
    }),
  );
  return cell;
}

function render(list, now) {
  const tbody = document.querySelector('#peers tbody');
  const seen = new Set();
  for (const p of list) {
    seen.add(p.name);
    let row = tbody.querySelector(`tr[data-peer="${CSS.escape(p.name)}"]`);
    if (row === null) {
      row = document.createElement('tr');
      row.dataset.peer = p.name;
      for (const cls of ['peer', 'connection', 'transfer', 'state', 'actions-cell']) {
        const td = document.createElement('td');
        td.className = cls;
        row.append(td);
      }
      tbody.append(row);
    }
    const [peer, connection, transfer, state, actionsCell] = row.children;
    peer.replaceChildren(Object.assign(document.createElement('strong'), { textContent: p.name }), document.createElement('br'), Object.assign(document.createElement('small'), { textContent: p.addresses.join(', ') }));
    connection.textContent = `${p.online ? 'online' : 'offline'}, handshake ${p.lastHandshake === null ? 'never' : ago(Math.max(0, now - p.lastHandshake))}`;
    connection.dataset.online = String(p.online);
    transfer.replaceChildren(Object.assign(document.createElement('span'), { className: 'bytes', textContent: `↓ ${bytes(p.rxBytes)} ↑ ${bytes(p.txBytes)}` }), graph(p.history, p.name));
    transfer.dataset.total = String(p.rxBytes + p.txBytes);
    const quota = p.quota === null ? '' : `; quota ${bytes(p.usedThisMonth)} of ${bytes(p.quota)} this month`;
    state.textContent = `${p.enabled ? 'enabled' : `disabled: ${p.disabledReason}`}${p.expires === null ? '' : `; expires ${p.expires.slice(0, 10)}`}${quota}`;
    state.dataset.enabled = String(p.enabled);
    const key = `${p.enabled}`;
    if (actionsCell.dataset.key !== key) {
      const focused = actionsCell.contains(document.activeElement) ? document.activeElement.textContent : undefined;
      actionsCell.replaceChildren(actions(p));
      actionsCell.dataset.key = key;
      if (focused !== undefined) [...actionsCell.querySelectorAll('button, a')].find((b) => b.textContent === focused || (focused === 'Disable' && b.textContent === 'Enable') || (focused === 'Enable' && b.textContent === 'Disable'))?.focus();
    }
  }
  for (const row of [...tbody.children]) if (!seen.has(row.dataset.peer)) row.remove();
  $('empty').hidden = list.length > 0;
}

async function refresh() {
  try {
    const r = await api('GET', '/api/peers');
    render(r.peers, r.now);
    const g = r.registry;
    $('registry').hidden = g === undefined || g.reachable;
    if (g !== undefined && !g.reachable) $('registry').textContent = `The registry ${g.location} is unreachable since ${g.since}${g.error ? ` (${g.error})` : ''}: this server serves the peers it knows, and changes cannot be made until it is back.`;
  } catch (e) {
    say(`could not refresh: ${e.message}`);
  }
}

async function main() {
  const r = await fetch('/api/session');
  if (!r.ok) {
    location.assign('/login');
    return;
  }
  csrfToken = (await r.json()).csrfToken;
  for (const d of document.querySelectorAll('dialog')) d.querySelector('button.close')?.addEventListener('click', () => d.close());
  $('logout').addEventListener('click', async () => {
    await api('POST', '/api/logout').catch(() => undefined);
    location.assign('/login');
  });
  $('add').addEventListener('submit', (event) => {
    event.preventDefault();
    const f = new FormData(event.target);
    const body = { name: f.get('name') };
    if (f.get('publicKey')) body.publicKey = f.get('publicKey').trim();
    if (f.get('expires')) body.expires = f.get('expires');
    if (f.get('quota')) body.quota = Math.max(1, Math.round(Number(f.get('quota')) * 1048576));
    act('add', async () => {
      const out = await api('POST', '/api/peers', body);
      event.target.reset();
      return out;
    });
  });
  await refresh();
  setInterval(refresh, POLL_MS);
}

main();
