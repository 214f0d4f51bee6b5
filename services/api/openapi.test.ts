import { readFileSync } from 'node:fs';
import type { Middleware } from 'koa';
import type { Router } from '@koa/router';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ManualClock } from '../../lib/clock.js';
import { createTestDatabase, type TestDatabase } from '../../devenv/test-database.js';
import { OPENAPI_FILE, renderOpenApi } from '../../scripts/openapi.js';
import { openApiDocument } from './openapi/document.js';
import { startTestApi, type TestApi } from './test-support.js';

let db: TestDatabase;
let api: TestApi;

beforeAll(async () => {
  db = await createTestDatabase(inject('databaseUrl'));
  api = await startTestApi(db.pool, new ManualClock('2026-09-01T08:00:00Z'));
});
afterAll(async () => {
  await api?.stop();
  await db?.drop();
});

/** "METHOD /path/{param}" of every route the app mounts, read from the routers themselves. */
function mountedRoutes(middleware: Middleware[]): string[] {
  const out = new Set<string>();
  for (const mw of middleware) {
    const router = (mw as Middleware & { router?: Router }).router;
    if (!router) continue;
    for (const layer of router.stack) {
      if (typeof layer.path !== 'string' || layer.methods.length === 0) continue;
      const path = layer.path.replace(/:(\w+)/g, '{$1}');
      for (const m of layer.methods) if (m !== 'HEAD') out.add(`${m} ${path}`);
    }
  }
  return [...out].sort();
}

describe('OpenAPI document', () => {
  it('the committed services/api/openapi.json is the generated document (run npm run openapi)', () => {
    expect(readFileSync(OPENAPI_FILE, 'utf8')).toBe(renderOpenApi());
  });

  it('describes exactly the routes the api mounts', () => {
    const doc = openApiDocument();
    const documented = Object.entries(doc.paths ?? {})
      .flatMap(([path, item]) => Object.keys(item ?? {}).filter((k) => ['get', 'post', 'put', 'patch', 'delete'].includes(k)).map((m) => `${m.toUpperCase()} ${path}`))
      .sort();
    const mounted = mountedRoutes(api.app.middleware as Middleware[]);
    expect(mounted.length).toBeGreaterThan(20);
    // The page's own assets are files, not operations.
    expect(documented).toEqual(mounted.filter((r) => !r.startsWith('GET /docs/')));
  });

  it('every error response is the {error: {field, reason}} body', () => {
    const doc = openApiDocument();
    for (const [path, item] of Object.entries(doc.paths ?? {})) {
      for (const [method, op] of Object.entries(item ?? {})) {
        for (const [code, res] of Object.entries((op as { responses?: Record<string, unknown> }).responses ?? {})) {
          if (Number(code) < 400 || path === '/readyz') continue;
          expect(res, `${method} ${path} ${code}`).toMatchObject({ content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } });
        }
      }
    }
  });

  it('is served at /openapi.json, with the reference page and its assets from the api itself', async () => {
    const doc = await api.request('GET', '/openapi.json');
    expect(doc.status).toBe(200);
    expect(doc.body).toEqual(JSON.parse(renderOpenApi()));

    const page = await api.request('GET', '/docs');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    const scripts = [...String(page.body).matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(scripts).toContain('/docs/assets/swagger-ui-bundle.js');
    expect(scripts.every((u) => u.startsWith('/'))).toBe(true); // nothing from another host
    for (const url of scripts) {
      const res = await fetch(api.base + url);
      expect(res.status, url).toBe(200);
      expect((await res.arrayBuffer()).byteLength, url).toBeGreaterThan(50);
    }
    const bundle = await (await fetch(`${api.base}/docs/assets/swagger-ui-bundle.js`)).text();
    expect(bundle).toContain('SwaggerUIBundle');
    expect(await (await fetch(`${api.base}/docs/init.js`)).text()).toContain("url: '/openapi.json'");
    expect((await api.request('GET', '/docs/assets/..%2Fpackage.json')).status).toBe(404);
  });
});
