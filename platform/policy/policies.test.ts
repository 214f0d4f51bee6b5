import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { ResourceValidationArgs } from '@pulumi/policy';
import { beforeAll, describe, expect, it } from 'vitest';
import { runStack, type StackRun } from '../testing/mocked-run.js';
import { loadBalancerControllerPolicy } from '../ingress.js';
import {
  backupsMeetStackMinimum,
  eksEndpointRestricted,
  encryptionRequired,
  imagesFromRegistryByDigest,
  imdsV2HopLimitOne,
  noWildcardIamActions,
  heraldPolicies,
  noPlaintextSecretsInEnv,
  noPublicDatabases,
  resourceLimitsOnEveryContainer,
  type BackupPolicyConfig,
  type HeraldPolicy,
} from './policies.js';

const here = path.dirname(new URL(import.meta.url).pathname);
const packConfig = (stack: string): Record<string, object> =>
  JSON.parse(readFileSync(path.join(here, `config.${stack}.json`), 'utf8')) as Record<string, object>;

function violations(policy: HeraldPolicy, type: string, props: Record<string, unknown>, config: object = { minimumRetentionDays: 7 }): string[] {
  const found: string[] = [];
  const args = {
    type,
    props,
    urn: `urn:pulumi:test::herald::${type}::test`,
    name: 'test',
    opts: {},
    stackTags: new Map(),
    isType: () => false,
    asType: () => undefined,
    getConfig: () => config,
    notApplicable: () => {
      throw new Error('not applicable');
    },
  } as unknown as ResourceValidationArgs;
  policy.validateResource(args, (message) => found.push(message));
  return found;
}

const RDS = 'aws:rds/instance:Instance';
const goodDb = {
  publiclyAccessible: false,
  storageEncrypted: true,
  kmsKeyId: 'arn:aws:kms:us-east-1:1:key/k',
  backupRetentionPeriod: 30,
};
const deployment = (container: Record<string, unknown>) => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  spec: { template: { spec: { containers: [{ name: 'app', image: 'x', resources: { limits: { cpu: '1', memory: '1Gi' } }, ...container }] } } },
});

describe('each policy rejects a bad resource', () => {
  it('no-public-databases: a publicly accessible instance, and PostgreSQL open to the internet', () => {
    expect(violations(noPublicDatabases, RDS, { ...goodDb, publiclyAccessible: true })).toHaveLength(1);
    expect(
      violations(noPublicDatabases, 'aws:ec2/securityGroup:SecurityGroup', {
        ingress: [{ protocol: 'tcp', fromPort: 5432, toPort: 5432, cidrBlocks: ['0.0.0.0/0'] }],
      }),
    ).toHaveLength(1);
    expect(violations(noPublicDatabases, RDS, goodDb)).toEqual([]);
  });

  it('encryption-required: unencrypted storage, a secret or secret replica without a KMS key, an EKS cluster without secrets encryption', () => {
    expect(violations(encryptionRequired, RDS, { ...goodDb, storageEncrypted: false, kmsKeyId: undefined })).toHaveLength(2);
    expect(violations(encryptionRequired, 'aws:secretsmanager/secret:Secret', { name: 's' })).toHaveLength(1);
    expect(
      violations(encryptionRequired, 'aws:secretsmanager/secret:Secret', { kmsKeyId: 'k', replicas: [{ region: 'us-west-2' }] }),
    ).toHaveLength(1);
    expect(violations(encryptionRequired, 'aws:eks/cluster:Cluster', { vpcConfig: {} })).toHaveLength(1);
    expect(violations(encryptionRequired, RDS, goodDb)).toEqual([]);
  });

  it("backups-meet-stack-minimum: retention below the stack's minimum (from the pack config of that stack)", () => {
    const production = packConfig('production')['backups-meet-stack-minimum'] as BackupPolicyConfig;
    const staging = packConfig('staging')['backups-meet-stack-minimum'] as BackupPolicyConfig;
    const weekly = { ...goodDb, backupRetentionPeriod: 7 };
    expect(violations(backupsMeetStackMinimum, RDS, weekly, production)).toHaveLength(1);
    expect(violations(backupsMeetStackMinimum, RDS, weekly, staging)).toEqual([]);
    expect(violations(backupsMeetStackMinimum, RDS, { ...goodDb, backupRetentionPeriod: 0 }, staging)).toHaveLength(1);
    // read replicas follow their source's backups
    expect(violations(backupsMeetStackMinimum, RDS, { ...weekly, backupRetentionPeriod: 0, replicateSourceDb: 'db' }, production)).toEqual([]);
    expect(
      violations(
        backupsMeetStackMinimum,
        'aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication',
        { sourceDbInstanceArn: 'a', retentionPeriod: 7 },
        production,
      ),
    ).toHaveLength(1);
  });

  it('no-plaintext-secrets-in-env: a literal API key, a literal DATABASE_URL, a URL with a password', () => {
    const k = 'kubernetes:apps/v1:Deployment';
    expect(violations(noPlaintextSecretsInEnv, k, deployment({ env: [{ name: 'TELNYX_API_KEY', value: 'KEY123' }] }))).toHaveLength(1);
    expect(violations(noPlaintextSecretsInEnv, k, deployment({ env: [{ name: 'DATABASE_URL', value: 'postgres://db/herald' }] }))).toHaveLength(1);
    expect(violations(noPlaintextSecretsInEnv, k, deployment({ env: [{ name: 'UPSTREAM', value: 'https://u:p4ss@host/' }] }))).toHaveLength(1);
    expect(
      violations(
        noPlaintextSecretsInEnv,
        'kubernetes:batch/v1:CronJob',
        { spec: { jobTemplate: { spec: { template: { spec: { containers: [{ name: 'c', env: [{ name: 'API_TOKEN', value: 't' }] }] } } } } } },
      ),
    ).toHaveLength(1);
    expect(
      violations(
        noPlaintextSecretsInEnv,
        k,
        deployment({
          env: [
            { name: 'DATABASE_URL', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } },
            { name: 'TELNYX_API_KEY_FILE', value: '/var/run/secrets/herald/telnyx-api-key' },
          ],
        }),
      ),
    ).toEqual([]);
  });

  it('resource-limits-on-every-container: a container (or init container) without CPU or memory limits', () => {
    const k = 'kubernetes:apps/v1:Deployment';
    expect(violations(resourceLimitsOnEveryContainer, k, deployment({ resources: { requests: { cpu: '1' } } }))).toHaveLength(2);
    expect(violations(resourceLimitsOnEveryContainer, k, deployment({ resources: { limits: { cpu: '1' } } }))).toHaveLength(1);
    const withInit = deployment({});
    (withInit.spec.template.spec as Record<string, unknown>)['initContainers'] = [{ name: 'init' }];
    expect(violations(resourceLimitsOnEveryContainer, k, withInit)).toHaveLength(2);
    expect(violations(resourceLimitsOnEveryContainer, k, deployment({}))).toEqual([]);
  });

  it('eks-endpoint-restricted: a public endpoint open to 0.0.0.0/0, or with no CIDRs (AWS then opens it to all)', () => {
    const eks = 'aws:eks/cluster:Cluster';
    expect(violations(eksEndpointRestricted, eks, { vpcConfig: { endpointPublicAccess: true, publicAccessCidrs: ['0.0.0.0/0'] } })).toHaveLength(1);
    expect(violations(eksEndpointRestricted, eks, { vpcConfig: { endpointPublicAccess: true } })).toHaveLength(1);
    expect(violations(eksEndpointRestricted, eks, { vpcConfig: {} })).toHaveLength(1);
    expect(violations(eksEndpointRestricted, eks, { vpcConfig: { endpointPublicAccess: true, publicAccessCidrs: ['198.51.100.0/24'] } })).toEqual([]);
    expect(violations(eksEndpointRestricted, eks, { vpcConfig: { endpointPublicAccess: false } })).toEqual([]);
  });

  it('imdsv2-hop-limit-1: a node group without a launch template, a template allowing IMDSv1 or two hops', () => {
    expect(violations(imdsV2HopLimitOne, 'aws:eks/nodeGroup:NodeGroup', { clusterName: 'c' })).toHaveLength(1);
    const lt = 'aws:ec2/launchTemplate:LaunchTemplate';
    expect(violations(imdsV2HopLimitOne, lt, { metadataOptions: { httpTokens: 'optional', httpPutResponseHopLimit: 1 } })).toHaveLength(1);
    expect(violations(imdsV2HopLimitOne, lt, { metadataOptions: { httpTokens: 'required', httpPutResponseHopLimit: 2 } })).toHaveLength(1);
    expect(violations(imdsV2HopLimitOne, lt, {})).toHaveLength(2);
    expect(violations(imdsV2HopLimitOne, lt, { metadataOptions: { httpTokens: 'required', httpPutResponseHopLimit: 1 } })).toEqual([]);
    expect(violations(imdsV2HopLimitOne, 'aws:eks/nodeGroup:NodeGroup', { launchTemplate: { id: 'lt', version: '1' } })).toEqual([]);
  });

  it("images-from-registry-by-digest: an image from Docker Hub, or by tag where the stack requires digests (the stack's pack config)", () => {
    const k = 'kubernetes:apps/v1:Deployment';
    const production = packConfig('production')['images-from-registry-by-digest'] as { registry: string; requireDigest: boolean };
    const staging = packConfig('staging')['images-from-registry-by-digest'] as { registry: string; requireDigest: boolean };
    const digest = `sha256:${'a'.repeat(64)}`;
    expect(production.requireDigest).toBe(true);
    expect(violations(imagesFromRegistryByDigest, k, deployment({ image: `herald/api@${digest}` }), production)).toHaveLength(1);
    expect(violations(imagesFromRegistryByDigest, k, deployment({ image: `docker.io/grafana/k6:1.1.0` }), production)).toHaveLength(2);
    expect(violations(imagesFromRegistryByDigest, k, deployment({ image: `${production.registry}/herald/api:1.0.0` }), production)).toHaveLength(1);
    expect(violations(imagesFromRegistryByDigest, k, deployment({ image: `${production.registry}/herald/api@${digest}` }), production)).toEqual([]);
    expect(violations(imagesFromRegistryByDigest, k, deployment({ image: `${staging.registry}/herald/api:staging` }), staging)).toEqual([]);
    expect(violations(imagesFromRegistryByDigest, k, deployment({ image: 'herald/api:staging' }), staging)).toHaveLength(1);
  });

  it("no-wildcard-iam-actions: '*' or 'service:*' (the load balancer controller's former policy had elasticloadbalancing:*)", () => {
    const rp = 'aws:iam/rolePolicy:RolePolicy';
    const doc = (actions: string[]) => ({ policy: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: actions, Resource: '*' }] }) });
    expect(violations(noWildcardIamActions, rp, doc(['ec2:DescribeVpcs', 'elasticloadbalancing:*']))).toHaveLength(1);
    expect(violations(noWildcardIamActions, rp, doc(['*']))).toHaveLength(1);
    expect(violations(noWildcardIamActions, rp, { policy: JSON.stringify(loadBalancerControllerPolicy) })).toEqual([]);
  });
});

describe.each(['staging', 'production'])('the %s program passes every policy', (stack) => {
  let run: StackRun;
  beforeAll(async () => {
    run = await runStack(stack);
  });

  it.each(heraldPolicies.map((p) => [p.name, p] as const))('%s', (_name, policy) => {
    const defaults = Object.fromEntries(
      Object.entries(policy.configSchema?.properties ?? {}).map(([k, v]) => [k, (v as { default?: unknown }).default]),
    );
    const config = { ...defaults, ...(packConfig(stack)[policy.name] ?? {}) };
    const checked = run.resources.filter((r) => r.custom);
    expect(checked.length).toBeGreaterThan(100);
    const found = checked.flatMap((r) => violations(policy, r.type, r.inputs, config).map((v) => `${r.name}: ${v}`));
    expect(found).toEqual([]);
  });
});
