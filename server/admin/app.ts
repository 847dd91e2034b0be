// The admin page's HTTP server (fastify): pages and assets, login and sessions, CSRF,
// the API (api.ts), one-time links, the OpenAPI document and /metrics.
//
// Access:
//   public      GET /login, GET /assets/*, POST /api/login (rate-limited per address),
//               GET /link/TOKEN (the token is the credential: once, 15 min)
//   /metrics    a session, or `Authorization: Bearer TOKEN` with the token in the
//               metrics-token file beside the registry (read at each request)
//   the rest    a session (cookie `burrow_session`: HttpOnly, SameSite=Strict, Secure
//               over TLS); without one: 401 (API) or a redirect to /login (pages). A
//               change (any method but GET/HEAD) also needs the session's CSRF token in
//               X-CSRF-Token, else 403.
// Every reply: a Content-Security-Policy that allows only this origin (the page loads
// nothing from elsewhere), no framing, no referrer, no caching but for the assets.

import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fastifyCookie from '@fastify/cookie';
import fastifySwagger from '@fastify/swagger';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { clientConfig } from '../peers.js';
import { findPeer, RegistryError } from '../registry.js';
import { linkPage, registerApi } from './api.js';
import { OneTimeLinks } from './links.js';
import { renderMetrics } from './metrics.js';
import { readPasswordFile, verifyPassword } from './password.js';
import { LoginLimiter, sameSecret, SESSION_MS, Sessions } from './sessions.js';
import type { Logger } from '../../src/runtime/log.js';
import type { UsageTracker } from './tracker.js';
import type { ServerView } from './view.js';

export const COOKIE = 'burrow_session';
const CSRF_HEADER = 'x-csrf-token';

/** The page's files: beside this module in the source tree; from dist/, in the source tree. */
function staticDir(): string {
  for (const rel of ['./static/', '../../../server/admin/static/']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(`${dir}index.html`)) return dir;
  }
  throw new Error('the admin page files (server/admin/static/) are missing');
}

const ASSETS: Record<string, string> = {
  'admin.css': 'text/css; charset=utf-8',
  'admin.js': 'text/javascript; charset=utf-8',
  'login.js': 'text/javascript; charset=utf-8',
};

export interface AdminOptions {
  readonly view: ServerView;
  readonly tracker: UsageTracker;
  /** The admin password's hash file (password.ts). */
  readonly passwordFile: string;
  /** The bearer token for /metrics, one line; absent file: /metrics needs a session. */
  readonly metricsTokenFile: string;
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer };
  readonly now?: () => number;
  /** Where internal errors go (the daemon's log). */
  readonly log?: Logger;
}

export async function buildAdminApp(o: AdminOptions): Promise<FastifyInstance> {
  const now = o.now ?? Date.now;
  const secure = o.tls !== undefined;
  const app = Fastify({
    logger: false,
    bodyLimit: 16 * 1024,
    ...(o.tls === undefined ? {} : { https: { cert: o.tls.cert, key: o.tls.key } }),
    // Unknown fields are refused (400 naming them), never silently dropped.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  }) as unknown as FastifyInstance;
  const sessions = new Sessions(now);
  const limiter = new LoginLimiter(now);
  const links = new OneTimeLinks(now);
  const dir = staticDir();
  const page = (file: string) => readFileSync(`${dir}${file}`, 'utf8');
  const files = { index: page('index.html'), login: page('login.html'), ...Object.fromEntries(Object.keys(ASSETS).map((f) => [f, page(f)])) } as Record<string, string>;

  await app.register(fastifyCookie);
  await app.register(fastifySwagger, {
    openapi: {
      info: { title: 'Burrow server admin API', version: '1', description: 'Every change needs a session cookie (POST /api/login) and its CSRF token in X-CSRF-Token.' },
    },
  });

  const sessionOf = (req: FastifyRequest) => sessions.get(req.cookies[COOKIE]);
  const isPublic = (req: FastifyRequest): boolean => {
    const url = req.routeOptions.url ?? '';
    return url === '/login' || url === '/assets/:file' || url === '/api/login' || url === '/link/:token' || url === '/metrics';
  };

  app.addHook('onRequest', async (req, reply) => {
    if (isPublic(req)) return;
    const session = sessionOf(req);
    if (session === undefined) {
      if (req.method === 'GET' && !req.url.startsWith('/api/')) return reply.redirect('/login', 303);
      return reply.code(401).send({ message: 'not logged in: POST /api/login first' });
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      const sent = req.headers[CSRF_HEADER];
      if (typeof sent !== 'string' || !sameSecret(sent, session.csrfToken)) return reply.code(403).send({ message: `missing or wrong CSRF token (send the session's token in ${CSRF_HEADER})` });
    }
  });

  app.addHook('onSend', async (req, reply, payload) => {
    reply.header('content-security-policy', "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'no-referrer');
    reply.header('x-frame-options', 'DENY');
    if (req.routeOptions.url !== '/assets/:file') reply.header('cache-control', 'no-store');
    return payload;
  });

  app.setErrorHandler((e: FastifyError, req, reply) => {
    if (e.validation !== undefined) {
      // fastify names the field ("body/name must match …"), except for an unknown one.
      const first = e.validation[0];
      const unknown = first?.keyword === 'additionalProperties' ? String((first.params as { additionalProperty?: unknown }).additionalProperty) : undefined;
      return reply.code(400).send({ message: unknown === undefined ? e.message : `${e.validationContext ?? 'input'}${first?.instancePath ?? ''}: unknown field '${unknown}'` });
    }
    if (e instanceof RegistryError) {
      const status = { ERR_REGISTRY_NO_PEER: 404, ERR_REGISTRY_DUPLICATE: 409, ERR_REGISTRY_FULL: 409, ERR_REGISTRY_INPUT: 400, ERR_REGISTRY_BUSY: 503, ERR_REGISTRY_UNREACHABLE: 503, ERR_REGISTRY_DAMAGED: 500 }[e.code];
      return reply.code(status).send({ message: e.message });
    }
    if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) return reply.code(e.statusCode).send({ message: e.message });
    o.log?.error(`admin: ${req.method} ${req.routeOptions.url ?? '?'}: ${e.message}`);
    return reply.code(500).send({ message: `internal error: ${e.message}` });
  });

  const html = (reply: FastifyReply, text: string) => reply.type('text/html; charset=utf-8').send(text);
  app.get('/', { schema: { hide: true } }, async (_req, reply) => html(reply, files.index!));
  app.get('/login', { schema: { hide: true } }, async (_req, reply) => html(reply, files.login!));
  app.get<{ Params: { file: string } }>('/assets/:file', { schema: { hide: true } }, async (req, reply) => {
    const type = ASSETS[req.params.file];
    if (type === undefined) return reply.code(404).send({ message: 'no such file' });
    return reply.type(type).header('cache-control', 'no-cache').send(files[req.params.file]);
  });

  app.post<{ Body: { password: string } }>('/api/login', {
    schema: {
      summary: 'log in: sets the session cookie and returns the CSRF token for changes',
      body: { type: 'object', required: ['password'], additionalProperties: false, properties: { password: { type: 'string', minLength: 1, maxLength: 1024 } } },
      response: { 200: { type: 'object', properties: { csrfToken: { type: 'string' } } } },
    },
  }, async (req, reply) => {
    const wait = limiter.retryAfter(req.ip);
    if (wait > 0) return reply.code(429).header('retry-after', String(wait)).send({ message: `too many wrong passwords from ${req.ip}: try again in ${wait} s` });
    const hash = readPasswordFile(o.passwordFile);
    if (hash === undefined) return reply.code(503).send({ message: `no admin password is set: run burrow server admin-password (it writes ${o.passwordFile})` });
    if (!(await verifyPassword(req.body.password, hash))) {
      limiter.fail(req.ip);
      return reply.code(401).send({ message: 'wrong password' });
    }
    limiter.succeed(req.ip);
    sessions.end(req.cookies[COOKIE]);
    const { id, session } = sessions.create();
    reply.setCookie(COOKIE, id, { httpOnly: true, sameSite: 'strict', secure, path: '/', maxAge: SESSION_MS / 1000 });
    return { csrfToken: session.csrfToken };
  });

  app.get('/api/session', { schema: { summary: "the session's CSRF token (401 without a session)", response: { 200: { type: 'object', properties: { csrfToken: { type: 'string' } } } } } }, async (req) => ({
    csrfToken: sessionOf(req)!.csrfToken,
  }));

  app.post('/api/logout', { schema: { summary: 'end the session' } }, async (req, reply) => {
    sessions.end(req.cookies[COOKIE]);
    reply.clearCookie(COOKIE, { path: '/' });
    return { message: 'logged out' };
  });

  app.get('/api/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  app.get<{ Params: { token: string } }>('/link/:token', { schema: { hide: true } }, async (req, reply) => {
    const peer = links.take(req.params.token);
    if (peer === undefined) return reply.code(404).type('text/plain; charset=utf-8').send('no such link (a one-time link works once, for 15 minutes)\n');
    const data = o.view.data();
    return html(reply, await linkPage(peer, clientConfig(data, findPeer(data, peer))));
  });

  app.get('/metrics', { schema: { hide: true } }, async (req, reply) => {
    const auth = req.headers.authorization;
    const bearer = typeof auth === 'string' && /^Bearer [!-~]{1,200}$/.test(auth) ? auth.slice(7) : undefined;
    let token: string | undefined;
    try {
      token = readFileSync(o.metricsTokenFile, 'utf8').trim();
    } catch {
      token = undefined;
    }
    const allowed = bearer !== undefined ? token !== undefined && token !== '' && sameSecret(bearer, token) : sessionOf(req) !== undefined;
    if (!allowed) return reply.code(401).header('www-authenticate', 'Bearer realm="burrow metrics"').send({ message: 'a session or the metrics bearer token is needed' });
    const names = new Map(o.view.data().peers.map((r) => [Buffer.from(r.peer.publicKey).toString('base64'), r.name]));
    return reply
      .type('text/plain; version=0.0.4; charset=utf-8')
      .send(renderMetrics({ ifname: o.view.ifname, device: o.view.device(), names, drops: o.view.drops(), registryUp: o.view.registryStatus().reachable, now: Math.floor(now() / 1000) }));
  });

  registerApi(app, { view: o.view, tracker: o.tracker, links, now });
  await app.ready();
  return app;
}
