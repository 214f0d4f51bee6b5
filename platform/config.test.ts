import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseStackConfig, StackConfigError } from './config.js';
import { readLoadTestScripts } from './loadtesting.js';
import { runStack, stackFileConfig } from './testing/mocked-run.js';

const stripped = (stack: string): Record<string, string> =>
  Object.fromEntries(
    Object.entries(stackFileConfig(stack))
      .filter(([k]) => k.startsWith('herald:'))
      .map(([k, v]) => [k.slice('herald:'.length), v]),
  );

function problems(raw: Record<string, string | undefined>): string[] {
  try {
    parseStackConfig(raw);
  } catch (e) {
    if (e instanceof StackConfigError) return e.problems;
    throw e;
  }
  return [];
}

describe('stack configuration', () => {
  it.each(['staging', 'production'])('Pulumi.%s.yaml is valid', (stack) => {
    expect(problems(stripped(stack))).toEqual([]);
  });

  it('staging and production differ only in values: the same keys', () => {
    const keys = (stack: string) => Object.keys(stripped(stack)).filter((k) => k !== 'failover').sort();
    expect(keys('staging')).toEqual(keys('production'));
  });

  it('names the key of every problem, all field problems at once', () => {
    const raw = stripped('staging');
    const database = JSON.parse(raw['database']!) as Record<string, unknown>;
    expect(problems({ ...raw, database: JSON.stringify({ ...database, backupRetentionDays: 0, instanceClass: 'm5.large' }), images: undefined })).toEqual([
      'herald:database.instanceClass: Invalid string: must start with "db."',
      'herald:database.backupRetentionDays: Too small: expected number to be >=1',
      'herald:images: is required',
    ]);
    // relations between keys are checked once every key is well-formed
    expect(problems({ ...raw, primaryRegion: 'eu-west-1' })).toEqual([
      "herald:primaryRegion: 'eu-west-1' is not one of regions [us-east-1, us-west-2]",
    ]);
  });

  it('takes an image by digest (as release.yml deploys) and refuses a malformed one, naming the key', async () => {
    const raw = stripped('staging');
    const images = JSON.parse(raw['images']!) as Record<string, unknown>;
    const digest = `sha256:${'ab'.repeat(32)}`;
    expect(problems({ ...raw, images: JSON.stringify({ ...images, apiTag: digest }) })).toEqual([]);
    expect(problems({ ...raw, images: JSON.stringify({ ...images, apiTag: 'sha256:abc' }) })).toEqual([
      'herald:images.apiTag: must be a container image tag or a digest (sha256:<64 hex>)',
    ]);
    const { image } = await import('./workloads.js');
    expect(image({ registry: 'r.example/', apiTag: digest } as never, 'herald/api', digest)).toBe(`r.example/herald/api@${digest}`);
    expect(image({ registry: '' } as never, 'herald/api', 'v1')).toBe('herald/api:v1');
  });

  it('requires a secondary region, three zones per region, and distinct VPC ranges', () => {
    const raw = stripped('staging');
    const regions = JSON.parse(raw['regions']!) as { name: string; vpcCidr: string; availabilityZones: string[] }[];
    expect(problems({ ...raw, regions: JSON.stringify(regions.slice(0, 1)) })).toEqual([
      'herald:regions: needs a primary and at least one secondary region',
    ]);
    const twoZones = [{ ...regions[0]!, availabilityZones: regions[0]!.availabilityZones.slice(0, 2) }, regions[1]!];
    expect(problems({ ...raw, regions: JSON.stringify(twoZones) })).toEqual(['herald:regions[0].availabilityZones: needs three availability zones']);
    const sameCidr = [regions[0]!, { ...regions[1]!, vpcCidr: regions[0]!.vpcCidr }];
    expect(problems({ ...raw, regions: JSON.stringify(sameCidr) })).toEqual([
      'herald:regions: vpcCidr must differ between regions (the VPCs are peered)',
    ]);
  });

  it('refuses an EKS endpoint open to the internet, and images without a registry, naming the keys', () => {
    const raw = stripped('production');
    const cluster = JSON.parse(raw['cluster']!) as Record<string, unknown>;
    const images = JSON.parse(raw['images']!) as Record<string, unknown>;
    expect(problems({ ...raw, cluster: JSON.stringify({ ...cluster, publicAccessCidrs: ['198.51.100.0/24', '0.0.0.0/0'] }) })).toEqual([
      'herald:cluster.publicAccessCidrs: must not include a /0 (0.0.0.0/0 opens the Kubernetes API endpoint to the whole internet)',
    ]);
    expect(problems({ ...raw, cluster: JSON.stringify({ ...cluster, publicAccessCidrs: [] }) })).toEqual([
      'herald:cluster.publicAccessCidrs: needs the networks allowed to reach the Kubernetes API',
    ]);
    const { registry: _registry, ...noRegistry } = images;
    expect(problems({ ...raw, images: JSON.stringify(noRegistry) })).toEqual(['herald:images.registry: is required']);
  });

  it('refuses to run without the secret provider credentials, naming each key', async () => {
    await expect(runStack('staging', { 'herald:telnyxApiKey': undefined, 'herald:fcmServiceAccount': undefined })).rejects.toThrow(
      /herald:telnyxApiKey: is required \(pulumi config set --secret herald:telnyxApiKey[\s\S]*herald:fcmServiceAccount: is required/,
    );
  });

  it('refuses an admin token shorter than 32 bytes, naming the key and not the value', async () => {
    const short = 'short-admin-token-31-bytes-xxxx';
    expect(Buffer.byteLength(short)).toBe(31);
    const err = await runStack('staging', { 'herald:adminToken': short }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StackConfigError);
    expect((err as StackConfigError).problems).toEqual([expect.stringMatching(/^herald:adminToken: must be at least 32 bytes \(it is 31\)/)]);
    expect((err as Error).message).not.toContain(short);
    await expect(runStack('staging', { 'herald:adminToken': `${short}y` })).resolves.toBeDefined();
  });

  it('fails clearly when the k6 script is missing, instead of deploying an empty ConfigMap', () => {
    expect(() => readLoadTestScripts('loadtests/does-not-exist.js')).toThrow(/herald:loadTest.scriptPath: k6 script loadtests\/does-not-exist.js not found/);
  });

  it('ships the k6 script with the module it imports from its folder, by file name', () => {
    const files = readLoadTestScripts('loadtests/capacity.js');
    expect(Object.keys(files).sort()).toEqual(['broadcast-load.js', 'capacity.js', 'herald-env.js']);
    expect(files['herald-env.js']).toContain('export const KUBE_TOKEN');
  });

  it('refuses a k6 script whose imports a ConfigMap cannot carry, naming the import', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'herald-k6-'));
    try {
      writeFileSync(path.join(dir, 'main.js'), `import http from 'k6/http';\nimport "./a.js";\n`);
      writeFileSync(path.join(dir, 'a.js'), `export { b } from "./lib/b.js";\n`);
      expect(() => readLoadTestScripts('main.js', dir)).toThrow(/a\.js imports \.\/lib\/b\.js; a k6 ConfigMap carries only modules next to the script/);
      writeFileSync(path.join(dir, 'a.js'), `import { c } from './c.js';\n`);
      expect(() => readLoadTestScripts('main.js', dir)).toThrow(/a\.js imports \.\/c\.js, which is not next to it/);
      writeFileSync(path.join(dir, 'c.js'), `import { a } from './a.js';\nexport const c = 1;\n`);
      expect(Object.keys(readLoadTestScripts('main.js', dir)).sort()).toEqual(['a.js', 'c.js', 'main.js']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
