import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broadcast } from './api/v1alpha1/broadcast.js';
import { BroadcastApi } from './broadcast-api.js';
import { KubeClient } from './kube-client.js';
import { writeStatus } from './status.js';
import { broadcast, startKube, testLog, type Kube } from './testing/harness.js';
import { Informer } from './watch.js';

let kube: Kube;
let api: BroadcastApi;
let informer: Informer<Broadcast>;
beforeAll(async () => {
  kube = await startKube();
  api = new BroadcastApi(KubeClient.fromFile(kube.operatorKubeconfig));
  informer = new Informer<Broadcast>({ client: api.client, path: api.collectionPath() });
  api.readFrom(informer);
  await informer.start();
}, 120_000);
afterAll(async () => {
  await informer?.stop();
  api?.client.close();
  await kube?.stop();
});

describe('writeStatus through the status subresource', { timeout: 180_000 }, () => {
  it('on a conflict (the object changed since it was read) takes the newer copy from the cache and re-applies the same status', async () => {
    const stale: Broadcast = await kube.create(broadcast('conflicted', { tenant: 'grace' }));
    await kube.patchSpec('conflicted', { message: { text: 'edited meanwhile' } });
    const stored = await writeStatus(api, stale, { phase: 'Pending', observedGeneration: 1 }, { stillLeading: () => true, log: testLog('status') });
    expect(stored?.status).toEqual({ phase: 'Pending', observedGeneration: 1 });
    expect(stored?.metadata.generation).toBe(2);
    // The spec edit survived: only status was written.
    expect((await kube.get('conflicted'))?.spec.message.text).toBe('edited meanwhile');
  });

  it('a conflict the cache cannot settle yet is thrown, so the reconcile runs again', async () => {
    const bc: Broadcast = await kube.create(broadcast('unseen-change', { tenant: 'grace' }));
    // A cache whose watch has stopped never sees the edit that makes our copy stale.
    const frozenApi = new BroadcastApi(api.client);
    const frozen = new Informer<Broadcast>({ client: api.client, path: frozenApi.collectionPath() });
    frozenApi.readFrom(frozen);
    await frozen.start();
    await frozen.stop();
    const cached = frozenApi.get(bc.metadata.namespace, 'unseen-change')!;
    await kube.patchSpec('unseen-change', { message: { text: 'edited meanwhile' } });
    await expect(writeStatus(frozenApi, cached, { phase: 'Pending' }, { stillLeading: () => true, log: testLog('status') })).rejects.toThrow(/409/);
    expect((await kube.get('unseen-change'))?.status).toBeUndefined();
  });

  it('a replica that no longer leads gives up instead of re-applying', async () => {
    const stale: Broadcast = await kube.create(broadcast('abandoned', { tenant: 'grace' }));
    await kube.patchSpec('abandoned', { message: { text: 'edited meanwhile' } });
    const stored = await writeStatus(api, stale, { phase: 'Sending' }, { stillLeading: () => false, log: testLog('status') });
    expect(stored).toBeUndefined();
    expect((await kube.get('abandoned'))?.status).toBeUndefined();
  });

  it('a spec change through the status subresource is ignored by the API server', async () => {
    const bc = await kube.create(broadcast('spec-safe', { tenant: 'grace' }));
    await writeStatus(api, { ...bc, spec: { ...bc.spec, tenant: 'someone-else' } }, { phase: 'Pending' }, { stillLeading: () => true, log: testLog('status') });
    expect((await kube.get('spec-safe'))?.spec.tenant).toBe('grace');
  });
});
