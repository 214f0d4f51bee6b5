/**
 * Runs the real program (platform/index.ts) for one stack under Pulumi's mocks, with that
 * stack's own Pulumi.<stack>.yaml, and records every resource it registers.
 * Secret config values cannot live in the stack files (each stack has its own encryption),
 * so fake ones are supplied here, marked secret, and remembered for leak checks.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as pulumi from '@pulumi/pulumi';
import { load } from 'js-yaml';
import { SECRET_KEYS, type SecretKey } from '../config.js';
import { REPO_ROOT, type Manifest } from '../operator-manifests.js';

export const ACCOUNT = '123456789012';

export interface RegisteredResource {
  type: string;
  name: string;
  inputs: Record<string, any>;
  /** Computed state the mock returned (inputs plus outputs). */
  state: Record<string, any>;
  custom: boolean;
  /** Logical names of the resources it depends on (explicit dependsOn and inputs). */
  dependsOn: string[];
  /** Region of the provider the resource was created through (undefined for components). */
  region?: string;
  providerName?: string;
  /** The resource's ignoreChanges option (fields `pulumi up` leaves to another writer). */
  ignoreChanges: string[];
}

export interface StackRun {
  stack: string;
  /** The stack file's config, as pulumi passes it to the program (structured values as JSON). */
  config: Record<string, string>;
  secretValues: Record<SecretKey, string>;
  resources: RegisteredResource[];
  /** Stack outputs, resolved. */
  outputs: Record<string, unknown>;
  /** Top-level output names whose value is marked secret. */
  secretOutputs: string[];
}

/** Reads Pulumi.<stack>.yaml the way the CLI hands it to a program. */
export function stackFileConfig(stack: string): Record<string, string> {
  const doc = load(readFileSync(path.join(REPO_ROOT, `Pulumi.${stack}.yaml`), 'utf8')) as { config?: Record<string, unknown> };
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(doc.config ?? {})) {
    out[key] = typeof value === 'string' ? value : JSON.stringify(value);
  }
  return out;
}

const regionOf = (arn: string): string | undefined => /^arn:aws:[^:]+:([^:]*):/.exec(arn)?.[1];

const urnName = (urn: string): string => urn.split('::').pop() ?? urn;

function mocksFor(stack: string, resources: RegisteredResource[], dependencies: Map<string, string[]>, ignored: Map<string, string[]>): pulumi.runtime.Mocks {
  const providerRegion = new Map<string, { region: string; name: string }>();
  return {
    call(args) {
      throw new Error(`the program called ${args.token}; the mocks implement no invokes`);
    },
    newResource(args) {
      const providerId = args.provider?.split('::').pop();
      const fromProvider = providerId ? providerRegion.get(providerId) : undefined;
      let region = fromProvider?.region;
      const id = `${args.name}-id`;
      const inputs = args.inputs as Record<string, any>;
      const state: Record<string, any> = { ...inputs };
      if (args.type === 'pulumi:providers:aws') {
        region = inputs['region'];
        providerRegion.set(id, { region: region!, name: args.name });
      } else if (args.type === 'pulumi:providers:kubernetes') {
        region = new RegExp(`^herald-${stack}-(.+)-k8s$`).exec(args.name)?.[1];
        providerRegion.set(id, { region: region!, name: args.name });
      }
      const [pkg, mod] = args.type.split(':');
      const service = (mod ?? '').split('/')[0];
      if (pkg === 'aws') {
        state['arn'] = `arn:aws:${service}:${region}:${ACCOUNT}:${args.name}`;
        state['name'] = inputs['name'] ?? args.name;
      }
      switch (args.type) {
        case 'aws:kms/key:Key':
          state['keyId'] = `key-${args.name}`;
          state['arn'] = `arn:aws:kms:${region}:${ACCOUNT}:key/${args.name}`;
          break;
        case 'aws:eks/cluster:Cluster':
          state['endpoint'] = `https://${args.name}.${region}.eks.amazonaws.com`;
          state['vpcConfig'] = { ...inputs['vpcConfig'], clusterSecurityGroupId: `sg-${args.name}` };
          state['certificateAuthority'] = { data: Buffer.from(`ca of ${args.name}`).toString('base64') };
          state['identities'] = [{ oidcs: [{ issuer: `https://oidc.eks.${region}.amazonaws.com/id/${args.name.toUpperCase()}` }] }];
          break;
        case 'aws:rds/instance:Instance': {
          const identifier = inputs['identifier'] ?? args.name;
          state['identifier'] = identifier;
          state['arn'] = `arn:aws:rds:${region}:${ACCOUNT}:db:${identifier}`;
          state['address'] = `${identifier}.abc123.${region}.rds.amazonaws.com`;
          state['endpoint'] = `${state['address']}:5432`;
          state['masterUserSecrets'] = inputs['manageMasterUserPassword']
            ? [{ secretArn: `arn:aws:secretsmanager:${region}:${ACCOUNT}:secret:rds!db-${identifier}`, kmsKeyId: inputs['masterUserSecretKmsKeyId'], secretStatus: 'active' }]
            : [];
          break;
        }
        case 'aws:rds/proxy:Proxy':
          state['endpoint'] = `${inputs['name']}.proxy-abc123.${region}.rds.amazonaws.com`;
          break;
        case 'aws:acm/certificate:Certificate':
          state['domainValidationOptions'] = [inputs['domainName'], ...(inputs['subjectAlternativeNames'] ?? [])].map((d: string) => ({
            domainName: d,
            resourceRecordName: `_acm.${d}.`,
            resourceRecordType: 'CNAME',
            resourceRecordValue: `_v.${d}.acm-validations.aws.`,
          }));
          break;
        case 'aws:ec2/launchTemplate:LaunchTemplate':
          state['latestVersion'] = 1;
          break;
        case 'aws:route53/record:Record':
          state['fqdn'] = inputs['name'];
          break;
        case 'kubernetes:networking.k8s.io/v1:Ingress':
          state['status'] = { loadBalancer: { ingress: [{ hostname: `k8s-herald-api-${region}.elb.amazonaws.com` }] } };
          break;
      }
      if (region === undefined && typeof state['arn'] === 'string') region = regionOf(state['arn']) || undefined;
      resources.push({
        type: args.type,
        name: args.name,
        inputs,
        state,
        custom: args.custom ?? false,
        dependsOn: dependencies.get(`${args.type}::${args.name}`) ?? [],
        ignoreChanges: ignored.get(`${args.type}::${args.name}`) ?? [],
        region: args.custom ? (fromProvider?.region ?? region) : undefined,
        providerName: fromProvider?.name,
      });
      return { id, state };
    },
  };
}

async function resolveDeep(value: unknown): Promise<unknown> {
  if (pulumi.Output.isInstance(value)) {
    const inner = await new Promise<unknown>((resolve) => value.apply((v) => resolve(v)));
    return resolveDeep(inner);
  }
  if (Array.isArray(value)) return Promise.all(value.map(resolveDeep));
  if (value !== null && typeof value === 'object') {
    const entries = await Promise.all(Object.entries(value).map(async ([k, v]) => [k, await resolveDeep(v)] as const));
    return Object.fromEntries(entries);
  }
  return value;
}

interface RegisterRequest {
  getType(): string;
  getName(): string;
  getDependenciesList(): string[];
  getIgnorechangesList(): string[];
}

/** The k6 script the CronJob runs: the real capacity test. */
export const LOAD_TEST_SCRIPT = 'loadtests/capacity.js';
export const loadTestScriptUsed = (): string => LOAD_TEST_SCRIPT;

/** Runs the program for `stack`; `overrides` replace config values (`herald:<key>` -> value). */
export async function runStack(stack: string, overrides: Record<string, unknown> = {}): Promise<StackRun> {
  const config = stackFileConfig(stack);
  const secretValues = {} as Record<SecretKey, string>;
  for (const key of SECRET_KEYS) {
    secretValues[key] = `fake-${key}-${stack}-do-not-leak`;
    config[`herald:${key}`] = secretValues[key];
  }
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) delete config[key];
    else config[key] = typeof value === 'string' ? value : JSON.stringify(value);
  }
  const resources: RegisteredResource[] = [];
  const dependencies = new Map<string, string[]>();
  const ignored = new Map<string, string[]>();
  pulumi.runtime.setAllConfig(config, SECRET_KEYS.map((k) => `herald:${k}`));
  await pulumi.runtime.setMocks(mocksFor(stack, resources, dependencies, ignored), 'herald', stack, false);
  // The mocks do not see a registration's dependencies or options; read them off the request.
  const monitor = pulumi.runtime.getMonitor() as unknown as { registerResource(req: RegisterRequest, cb: unknown): unknown };
  const register = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req, cb) => {
    dependencies.set(`${req.getType()}::${req.getName()}`, req.getDependenciesList().map(urnName));
    ignored.set(`${req.getType()}::${req.getName()}`, req.getIgnorechangesList());
    return register(req, cb);
  };
  const { default: program } = await import('../index.js');
  const raw = await program();
  const outputs: Record<string, unknown> = {};
  const secretOutputs: string[] = [];
  for (const [k, v] of Object.entries(raw)) {
    if (pulumi.Output.isInstance(v) && (await pulumi.isSecret(v))) secretOutputs.push(k);
    outputs[k] = await resolveDeep(v);
  }
  // every registration (including ones waiting on other resources' outputs) has finished
  await (pulumi.runtime as unknown as { waitForRPCs(): Promise<void> }).waitForRPCs();
  return { stack, config, secretValues, resources, outputs, secretOutputs };
}

const NOT_MANIFESTS = new Set(['kubernetes:helm.sh/v3:Release']);

/**
 * The Kubernetes objects the mocked run registers, as plain manifests, per region
 * (one cluster each). Helm releases are not objects (their charts are not rendered here).
 */
export async function renderKubernetesManifests(stack: string, run?: StackRun): Promise<Map<string, Manifest[]>> {
  const r = run ?? (await runStack(stack));
  const byRegion = new Map<string, Manifest[]>();
  for (const res of r.resources) {
    if (!res.custom || !res.type.startsWith('kubernetes:') || NOT_MANIFESTS.has(res.type)) continue;
    const list = byRegion.get(res.region!) ?? [];
    list.push(res.inputs as Manifest);
    byRegion.set(res.region!, list);
  }
  return byRegion;
}
