/**
 * The stack's configuration, read once at program start and validated as a whole.
 * Every error names the full config key (`herald:database.backupRetentionDays`) so that
 * `pulumi config set` can fix it; all problems are reported together, not one per run.
 */
import * as pulumi from '@pulumi/pulumi';
import { z } from 'zod';
import { adminTokenProblem } from '../lib/config.js';

export const CONFIG_NAMESPACE = 'herald';

/** Secret config keys: set with `pulumi config set --secret herald:<key> <value>`. */
export const SECRET_KEYS = ['telnyxApiKey', 'telnyxPublicKey', 'fcmServiceAccount', 'adminToken'] as const;
export type SecretKey = (typeof SECRET_KEYS)[number];

const cidr16 = z
  .string()
  .regex(/^(\d{1,3})\.(\d{1,3})\.0\.0\/16$/, 'must be an IPv4 /16 such as 10.10.0.0/16');

const region = z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'must be an AWS region name such as us-east-1');

// a tag, or (as release.yml deploys) a digest: sha256:<64 hex>
const imageTag = z
  .string()
  .regex(/^([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|sha256:[0-9a-f]{64})$/, 'must be a container image tag or a digest (sha256:<64 hex>)');

const regionSchema = z.object({
  name: region,
  vpcCidr: cidr16,
  availabilityZones: z.array(z.string()).min(3, 'needs three availability zones'),
});

const nodeGroupSchema = z
  .object({
    name: z.string().regex(/^[a-z][a-z0-9-]{0,20}$/),
    instanceTypes: z.array(z.string()).min(1),
    minSize: z.number().int().min(1),
    desiredSize: z.number().int().min(1),
    maxSize: z.number().int().min(1),
  })
  .refine((g) => g.minSize <= g.desiredSize && g.desiredSize <= g.maxSize, {
    message: 'needs minSize <= desiredSize <= maxSize',
  });

const schema = z
  .object({
    primaryRegion: region,
    regions: z.array(regionSchema).min(2, 'needs a primary and at least one secondary region'),
    failover: z.object({ activeRegion: region.optional() }).default({}),
    network: z.object({ natGatewayPerAz: z.boolean() }),
    cluster: z.object({
      kubernetesVersion: z.string().regex(/^1\.\d+$/),
      // who may reach the EKS API endpoint from outside the VPC: your networks (and CI's egress), never the whole internet
      publicAccessCidrs: z
        .array(z.string().regex(/^(\d{1,3}\.){3}\d{1,3}\/(\d|[12]\d|3[0-2])$/, 'must be an IPv4 CIDR such as 198.51.100.0/24'))
        .min(1, 'needs the networks allowed to reach the Kubernetes API')
        .refine((cidrs) => !cidrs.some((c) => c.endsWith('/0')), { message: 'must not include a /0 (0.0.0.0/0 opens the Kubernetes API endpoint to the whole internet)' }),
      nodeGroups: z.array(nodeGroupSchema).min(1),
    }),
    database: z.object({
      engineVersion: z.string().regex(/^\d+(\.\d+)?$/),
      parameterGroupFamily: z.string().regex(/^postgres\d+$/),
      instanceClass: z.string().startsWith('db.'),
      allocatedStorageGb: z.number().int().min(20),
      maxAllocatedStorageGb: z.number().int().min(20),
      inRegionReplicas: z.number().int().min(0).max(5),
      crossRegionReplicaMultiAz: z.boolean(),
      backupRetentionDays: z.number().int().min(1).max(35),
      protectFromDeletion: z.boolean(),
      maxConnections: z.number().int().min(20),
      slowQueryMs: z.number().int().min(0),
      performanceInsightsRetentionDays: z.number().int().min(7),
      passwordRotationDays: z.number().int().min(1).max(365),
      proxyMaxConnectionsPercent: z.number().int().min(1).max(100),
    }),
    images: z.object({
      // where every image comes from (an ECR registry you push to and mirror k6 into), never Docker Hub by default
      registry: z.string().regex(/^[a-z0-9.-]+(:\d+)?(\/[a-z0-9._-]+)*$/, 'must be a registry host (and path) such as 123456789012.dkr.ecr.us-east-1.amazonaws.com'),
      apiTag: imageTag,
      operatorTag: imageTag,
      workerBlueTag: imageTag,
      workerGreenTag: imageTag,
      simulatorTag: imageTag,
      k6Tag: imageTag,
    }),
    api: z.object({ replicas: z.number().int().min(1) }),
    workers: z
      .object({
        minReplicas: z.number().int().min(0),
        maxReplicas: z.number().int().min(1),
        queueDepthPerReplica: z.number().int().min(1),
      })
      .refine((w) => w.minReplicas <= w.maxReplicas, { message: 'needs minReplicas <= maxReplicas' }),
    domain: z.object({
      hostedZoneId: z.string().min(1),
      zoneName: z.string().min(1),
      apiHostname: z.string().min(1),
    }),
    alerting: z.object({
      emails: z.array(z.string().email()).min(1),
      /** Where runbooks/ is browsed (the repository's main branch on its forge): the alerts' runbook_url. */
      runbookBaseUrl: z.string().url().optional(),
    }),
    loadTest: z.object({
      // off: no provider simulator, no k6 CronJob, and no tenant's sends are routed to a simulator
      enabled: z.boolean(),
      schedule: z.string().min(9),
      tenant: z.string().min(1),
      scriptPath: z.string().default('loadtests/capacity.js'),
    }),
  })
  .superRefine((c, ctx) => {
    const names = c.regions.map((r) => r.name);
    if (!names.includes(c.primaryRegion)) {
      ctx.addIssue({ code: 'custom', path: ['primaryRegion'], message: `'${c.primaryRegion}' is not one of regions [${names.join(', ')}]` });
    }
    if (new Set(names).size !== names.length) {
      ctx.addIssue({ code: 'custom', path: ['regions'], message: 'region names must be unique' });
    }
    const cidrs = c.regions.map((r) => r.vpcCidr);
    if (new Set(cidrs).size !== cidrs.length) {
      ctx.addIssue({ code: 'custom', path: ['regions'], message: 'vpcCidr must differ between regions (the VPCs are peered)' });
    }
    c.regions.forEach((r, i) => {
      if (!r.availabilityZones.every((az) => az.startsWith(r.name))) {
        ctx.addIssue({ code: 'custom', path: ['regions', i, 'availabilityZones'], message: `zones must be in ${r.name}` });
      }
    });
    const active = c.failover.activeRegion;
    if (active !== undefined && !names.includes(active)) {
      ctx.addIssue({ code: 'custom', path: ['failover', 'activeRegion'], message: `'${active}' is not one of regions [${names.join(', ')}]` });
    }
    if (c.database.maxAllocatedStorageGb < c.database.allocatedStorageGb) {
      ctx.addIssue({ code: 'custom', path: ['database', 'maxAllocatedStorageGb'], message: 'must be >= allocatedStorageGb' });
    }
    if (!c.domain.apiHostname.endsWith(`.${c.domain.zoneName}`)) {
      ctx.addIssue({ code: 'custom', path: ['domain', 'apiHostname'], message: `must be inside the zone ${c.domain.zoneName}` });
    }
  });

export type RawStackConfig = z.infer<typeof schema>;
export type RegionConfig = z.infer<typeof regionSchema>;

export interface StackConfig extends RawStackConfig {
  stack: string;
  /** Where workers consume and the database accepts writes: the primary unless failed over. */
  activeRegion: string;
  secondaryRegions: string[];
  secrets: Record<SecretKey, pulumi.Output<string>>;
}

export class StackConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid stack configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'StackConfigError';
  }
}

/** The top-level keys of the schema, each read from `herald:<key>`. */
const KEYS = Object.keys(schema.shape) as (keyof RawStackConfig)[];

function keyName(path: readonly PropertyKey[]): string {
  let out = CONFIG_NAMESPACE;
  path.forEach((p, i) => {
    out += typeof p === 'number' ? `[${p}]` : `${i === 0 ? ':' : '.'}${String(p)}`;
  });
  return out;
}

/**
 * Validates plain config values (as `pulumi config` stores them: structured values are
 * JSON) and returns them typed. Pure: used by the program and by the tests.
 */
export function parseStackConfig(raw: Record<string, string | undefined>): RawStackConfig {
  const problems: string[] = [];
  const input: Record<string, unknown> = {};
  for (const key of KEYS) {
    const value = raw[key];
    if (value === undefined) continue;
    try {
      input[key] = JSON.parse(value);
    } catch {
      input[key] = value; // plain strings are stored unquoted
    }
  }
  const result = schema.safeParse(input);
  if (!result.success) {
    for (const issue of result.error.issues) {
      const message = issue.code === 'invalid_type' && issue.input === undefined ? 'is required' : issue.message;
      problems.push(`${keyName(issue.path)}: ${message}`);
    }
    throw new StackConfigError(problems);
  }
  return result.data;
}

/** Reads and validates the running stack's configuration (call once, at program start). */
export function loadStackConfig(): StackConfig {
  const config = new pulumi.Config(CONFIG_NAMESPACE);
  const raw: Record<string, string | undefined> = {};
  for (const key of KEYS) raw[key] = config.get(key);
  const problems: string[] = [];
  let parsed: RawStackConfig | undefined;
  try {
    parsed = parseStackConfig(raw);
  } catch (e) {
    if (!(e instanceof StackConfigError)) throw e;
    problems.push(...e.problems);
  }
  const secrets: Partial<Record<SecretKey, pulumi.Output<string>>> = {};
  for (const key of SECRET_KEYS) {
    const value = config.getSecret(key);
    if (value === undefined) {
      problems.push(`${CONFIG_NAMESPACE}:${key}: is required (pulumi config set --secret ${CONFIG_NAMESPACE}:${key} ...)`);
    } else {
      secrets[key] = value;
    }
  }
  // read in clear only to measure it: the api refuses a short one at start, the stack refuses it before deploying
  const tokenProblem = adminTokenProblem(pulumi.runtime.getConfig(`${CONFIG_NAMESPACE}:adminToken`), `${CONFIG_NAMESPACE}:adminToken`);
  if (tokenProblem) problems.push(tokenProblem);
  if (problems.length > 0 || parsed === undefined) throw new StackConfigError(problems);
  return {
    ...parsed,
    stack: pulumi.getStack(),
    activeRegion: parsed.failover.activeRegion ?? parsed.primaryRegion,
    secondaryRegions: parsed.regions.map((r) => r.name).filter((r) => r !== parsed.primaryRegion),
    secrets: secrets as Record<SecretKey, pulumi.Output<string>>,
  };
}
