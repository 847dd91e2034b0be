// The admin HTTP API under /api/: the page uses only these routes. Each route's JSON
// schema is what fastify validates input against (a 400 names the field) and what
// /api/openapi.json publishes (@fastify/swagger), so the two cannot disagree.
//
//   GET    /api/peers                     every peer: addresses, online, handshake,
//                                         transfer, 24 h history, enabled, expiry, quota
//   POST   /api/peers                     add {name, publicKey?, expires?, quota?}
//   DELETE /api/peers/:name               remove
//   POST   /api/peers/:name/enable        enable {expires?}
//   POST   /api/peers/:name/disable       disable
//   PUT    /api/peers/:name/quota         {quota: bytes a month | null}
//   GET    /api/peers/:name/config        the client's wg-quick file
//   GET    /api/peers/:name/qr.svg        the same as a QR code
//   POST   /api/peers/:name/link          a one-time link to the configuration

import type { FastifyInstance } from 'fastify';
import QRCode from 'qrcode';
import { REJECT_AFTER_TIME } from '../../tunnel/constants.js';
import { addPeer, applyIfRunning, changePeer, clientConfig } from '../peers.js';
import { findPeer, PEER_NAME } from '../registry.js';
import type { OneTimeLinks } from './links.js';
import type { UsageTracker } from './tracker.js';
import { BUCKET_MS } from './usage.js';
import type { ServerView } from './view.js';

/**
 * A peer is online while its latest handshake is younger than REJECT_AFTER_TIME (180 s):
 * a peer that sends anything handshakes again every REKEY_AFTER_TIME (120 s).
 */
export const ONLINE_SECONDS = REJECT_AFTER_TIME / 1000;

const nameSchema = { type: 'string', pattern: PEER_NAME.source, description: '1 to 63 of A-Z a-z 0-9 _ . @ -, starting with a letter or digit' } as const;
const nameParams = { type: 'object', required: ['name'], properties: { name: nameSchema }, additionalProperties: false } as const;
const dateSchema = { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}([T ][\\d:.]+(Z|[+-]\\d{2}:?\\d{2})?)?$', description: 'ISO 8601 date or time, such as 2027-01-31' } as const;
const quotaSchema = { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: 'bytes (received + sent) per calendar month, UTC' } as const;
const message = { type: 'object', properties: { message: { type: 'string' } }, required: ['message'] } as const;

const peerSchema = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    publicKey: { type: 'string' },
    addresses: { type: 'array', items: { type: 'string' } },
    enabled: { type: 'boolean' },
    disabledReason: { type: ['string', 'null'], description: 'why the peer is disabled: quota, expiry or an admin' },
    created: { type: 'string' },
    expires: { type: ['string', 'null'] },
    endpoint: { type: ['string', 'null'] },
    lastHandshake: { type: ['integer', 'null'], description: 'UNIX seconds; null before any handshake since the server started' },
    online: { type: 'boolean' },
    rxBytes: { type: 'integer' },
    txBytes: { type: 'integer' },
    quota: { type: ['integer', 'null'] },
    usedThisMonth: { type: 'integer' },
    overQuota: { type: ['string', 'null'] },
    history: { type: 'array', items: { type: 'integer' }, description: 'bytes per bucket over the last 24 h, oldest first' },
    hasPrivateKey: { type: 'boolean', description: 'the server holds the client private key (else the configuration has a placeholder)' },
  },
} as const;

export interface ApiDeps {
  readonly view: ServerView;
  readonly tracker: UsageTracker;
  readonly links: OneTimeLinks;
  readonly now: () => number;
}

export function registerApi(app: FastifyInstance, d: ApiDeps): void {
  const { view, tracker } = d;

  app.get('/api/peers', {
    schema: {
      summary: 'every peer, with its live state and 24 h history',
      response: {
        200: {
          type: 'object',
          properties: {
            now: { type: 'integer' },
            bucketSeconds: { type: 'integer' },
            historyEnd: { type: 'integer' },
            peers: { type: 'array', items: peerSchema },
            registry: {
              type: 'object',
              description: 'where the registry is, and whether it can be reached (while not, the server serves the peers it knows)',
              properties: { location: { type: 'string' }, reachable: { type: 'boolean' }, since: { type: 'string' }, error: { type: 'string' } },
            },
          },
        },
      },
    },
  }, async () => {
    const now = d.now();
    const { data, list } = view.status();
    tracker.observe(list);
    const clientKeys = new Set(data.peers.filter((r) => r.clientKey !== undefined).map((r) => r.name));
    let historyEnd = 0;
    const peers = list.map((p) => {
      const h = tracker.book.history(p.publicKey);
      historyEnd = h.newest + BUCKET_MS;
      return {
        ...p,
        disabledReason: tracker.reason(p, now),
        online: p.lastHandshake !== null && now / 1000 - p.lastHandshake < ONLINE_SECONDS,
        usedThisMonth: tracker.book.usedThisMonth(p.publicKey, p.rxBytes + p.txBytes),
        history: h.buckets,
        hasPrivateKey: clientKeys.has(p.name),
      };
    });
    return { now: Math.floor(now / 1000), bucketSeconds: BUCKET_MS / 1000, historyEnd: Math.floor(historyEnd / 1000), peers, registry: { location: view.registry.location, ...view.registryStatus() } };
  });

  app.post<{ Body: { name: string; publicKey?: string; expires?: string; quota?: number } }>('/api/peers', {
    schema: {
      summary: 'add a peer with the next free addresses (fresh keys unless publicKey is given)',
      body: {
        type: 'object',
        required: ['name'],
        additionalProperties: false,
        properties: {
          name: nameSchema,
          publicKey: { type: 'string', pattern: '^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$', description: "the client's public key (base64): its private key stays on the client" },
          expires: dateSchema,
          quota: quotaSchema,
        },
      },
      response: { 201: message },
    },
  }, async (req, reply) => {
    const b = req.body;
    const { record } = await addPeer(view.registry, { now: new Date(d.now()), name: b.name, ...(b.publicKey === undefined ? {} : { publicKey: b.publicKey }), ...(b.expires === undefined ? {} : { expires: b.expires }) });
    if (b.quota !== undefined) await tracker.setQuota(b.name, b.quota);
    const expired = record.expires !== undefined && Date.parse(record.expires) <= d.now();
    if (!expired) await applyIfRunning(view.ifname, record.peer);
    return reply.code(201).send({ message: `added '${b.name}': ${record.peer.allowedIPs.map((a) => a.text).join(', ')}` });
  });

  app.delete<{ Params: { name: string } }>('/api/peers/:name', { schema: { summary: 'remove a peer; it is cut off at once', params: nameParams, response: { 200: message } } }, async (req) => {
    const text = await changePeer(view.registry, view.ifname, req.params.name, 'remove');
    d.links.forget(req.params.name);
    return { message: text };
  });

  app.post<{ Params: { name: string } }>('/api/peers/:name/disable', { schema: { summary: 'cut a peer off at once and keep it', params: nameParams, response: { 200: message } } }, async (req) => ({
    message: await changePeer(view.registry, view.ifname, req.params.name, 'disable'),
  }));

  app.post<{ Params: { name: string }; Body: { expires?: string } | undefined }>('/api/peers/:name/enable', {
    schema: { summary: 'let a disabled peer connect again', params: nameParams, body: { type: ['object', 'null'], additionalProperties: false, properties: { expires: dateSchema } }, response: { 200: message, 409: message } },
  }, async (req, reply) => {
    const { list } = view.status();
    tracker.observe(list);
    const p = list.find((s) => s.name === req.params.name);
    if (p !== undefined && !p.enabled && tracker.overQuotaNow(p)) {
      return reply.code(409).send({ message: `'${p.name}' is over its quota for this month (${tracker.book.usedThisMonth(p.publicKey, p.rxBytes + p.txBytes)} of ${p.quota} bytes): raise the quota to enable it` });
    }
    const expires = req.body?.expires;
    return { message: await changePeer(view.registry, view.ifname, req.params.name, 'enable', expires === undefined ? {} : { expires }) };
  });

  app.put<{ Params: { name: string }; Body: { quota: number | null } }>('/api/peers/:name/quota', {
    schema: {
      summary: "set or remove a peer's monthly quota; a peer cut off by its quota and now under it is enabled again",
      params: nameParams,
      body: { type: 'object', required: ['quota'], additionalProperties: false, properties: { quota: { anyOf: [quotaSchema, { type: 'null' }] } } },
      response: { 200: message },
    },
  }, async (req) => ({ message: await tracker.setQuota(req.params.name, req.body.quota) }));

  const config = (name: string): string => {
    const data = view.data();
    return clientConfig(data, findPeer(data, name));
  };

  app.get<{ Params: { name: string } }>('/api/peers/:name/config', { schema: { summary: "the peer's client configuration (wg-quick format)", params: nameParams, produces: ['text/plain'] } }, async (req, reply) => {
    const text = config(req.params.name);
    return reply.type('text/plain; charset=utf-8').header('content-disposition', `attachment; filename="${view.ifname}-${req.params.name}.conf"`).send(text);
  });

  app.get<{ Params: { name: string } }>('/api/peers/:name/qr.svg', { schema: { summary: "the peer's client configuration as a QR code (for the WireGuard apps)", params: nameParams, produces: ['image/svg+xml'] } }, async (req, reply) => {
    return reply.type('image/svg+xml').send(await qrSvg(config(req.params.name)));
  });

  app.post<{ Params: { name: string } }>('/api/peers/:name/link', {
    schema: {
      summary: 'a one-time link to the configuration: 128-bit random token, valid 15 minutes, works once',
      params: nameParams,
      response: { 200: { type: 'object', properties: { path: { type: 'string' }, expires: { type: 'string' } } } },
    },
  }, async (req) => {
    findPeer(view.data(), req.params.name);
    const { token, expires } = d.links.create(req.params.name);
    return { path: `/link/${token}`, expires: new Date(expires).toISOString() };
  });
}

export function qrSvg(text: string): Promise<string> {
  return QRCode.toString(text, { type: 'svg', errorCorrectionLevel: 'M', margin: 4 });
}

/** The configuration behind a one-time link, in a page a phone can use. */
export async function linkPage(peer: string, configText: string): Promise<string> {
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Burrow: ${esc(peer)}</title><link rel="stylesheet" href="/assets/admin.css"></head>
<body><main class="link">
<h1>Configuration for ${esc(peer)}</h1>
<p>Scan the code with the WireGuard app, or copy the text into a file. This link worked once and is now used up.</p>
<div class="qr" role="img" aria-label="QR code of the configuration">${await qrSvg(configText)}</div>
<pre id="config">${esc(configText)}</pre>
</main></body></html>
`;
}
