import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broadcast } from './api/v1alpha1/broadcast.js';
import { BroadcastApi } from './broadcast-api.js';
import { KubeClient } from './kube-client.js';
import { broadcast, startKube, testLog, waitFor, type Kube } from './testing/harness.js';
import { Informer, InformerEvent } from './watch.js';

let kube: Kube;
let informer: Informer<Broadcast>;
const seen: string[] = [];
const expired: string[] = [];

beforeAll(async () => {
  kube = await startKube();
  // The informer runs with the operator's own token, as in production.
  const client = KubeClient.fromFile(kube.operatorKubeconfig);
  informer = new Informer<Broadcast>({ client, path: new BroadcastApi(client).collectionPath(), log: testLog('watch') });
  informer.on(InformerEvent.Added, (b) => seen.push(`added ${b.metadata.name}`));
  informer.on(InformerEvent.Updated, (b, old) => seen.push(`updated ${b.metadata.name} ${old.metadata.generation}->${b.metadata.generation}`));
  informer.on(InformerEvent.Deleted, (b) => seen.push(`deleted ${b.metadata.name}`));
  informer.on(InformerEvent.Expired, (rv) => expired.push(rv));
  await kube.create(broadcast('before-start', { tenant: 'grace' }));
  await informer.start();
}, 120_000);

afterAll(async () => {
  await informer?.stop();
  await kube?.stop();
});

describe('Informer (list-watch against a real kube-apiserver)', { timeout: 180_000 }, () => {
  it('lists what exists, then reports additions, spec changes and deletions in order', async () => {
    expect(informer.hasSynced).toBe(true);
    expect(informer.list().map((b) => b.metadata.name)).toEqual(['before-start']);
    await kube.create(broadcast('a', { tenant: 'grace' }));
    await kube.patchSpec('a', { message: { text: 'edited' } });
    await kube.remove('a');
    await kube.remove('before-start');
    await waitFor('deletions', async () => seen.includes('deleted before-start'));
    expect(seen).toEqual(['added before-start', 'added a', 'updated a 1->2', 'deleted a', 'deleted before-start']);
    expect(informer.get('grace/a')).toBeUndefined();
  });

  it('re-lists on a real 410 Gone (expired resourceVersion) and reports what changed meanwhile', async () => {
    seen.length = 0;
    await kube.create(broadcast('kept', { tenant: 'grace' }));
    await kube.create(broadcast('dropped', { tenant: 'grace' }));
    await waitFor('both cached', async () => informer.list().length === 2);
    // Resume from a version the server no longer has: the API server answers 410.
    informer.rewatchFrom('1');
    await waitFor('410 handled', async () => expired.length > 0);
    expect(expired[0]).toBe('1');
    await kube.remove('dropped');
    await kube.create(broadcast('late', { tenant: 'grace' }));
    await waitFor('cache converged', async () => informer.list().map((b) => b.metadata.name).sort().join() === 'kept,late');
    expect(seen).toEqual(expect.arrayContaining(['added kept', 'added dropped', 'deleted dropped', 'added late']));
  });

  it('watches one namespace when scoped (HERALD_NAMESPACE)', async () => {
    const client = KubeClient.fromFile(kube.operatorKubeconfig);
    const scoped = new Informer<Broadcast>({ client, path: new BroadcastApi(client, 'campus').collectionPath() });
    await kube.create(broadcast('elsewhere', { tenant: 'campus' }));
    await scoped.start();
    await waitFor('the campus broadcast', async () => scoped.list().length === 1);
    expect(scoped.list().map((b) => `${b.metadata.namespace}/${b.metadata.name}`)).toEqual(['campus/elsewhere']);
    await waitFor('the cluster-wide informer to see it too', async () => informer.get('campus/elsewhere'));
    await kube.remove('elsewhere', 'campus');
    await scoped.stop();
    client.close();
  });

  it('resyncs: every cached object is reported again on the resync interval', async () => {
    const client = KubeClient.fromFile(kube.operatorKubeconfig);
    const resyncing = new Informer<Broadcast>({ client, path: new BroadcastApi(client).collectionPath(), resyncMs: 200 });
    const resynced = new Set<string>();
    resyncing.on(InformerEvent.Resync, (b) => resynced.add(b.metadata.name));
    await resyncing.start();
    await waitFor('resync', async () => resynced.size === resyncing.list().length && resynced.size > 0);
    await resyncing.stop();
    client.close();
  });
});
