/**
 * Secrets: provider credentials (Telnyx API key and public key, FCM service account) live
 * in AWS Secrets Manager, created in the primary region and replicated to every secondary,
 * each copy encrypted with a customer-managed KMS key of its own region. The database
 * password is RDS-managed (see database.ts). Pods receive them through the External
 * Secrets Operator (installed per cluster with its own IAM role via IRSA); nothing secret
 * is ever a plain stack output or a plain value in a manifest.
 */
import * as aws from '@pulumi/aws';
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import type { SecretKey, StackConfig } from './config.js';
import { workloadIdentityRole, type Cluster } from './cluster.js';
import { DATABASE_NAME, DATABASE_PORT, type DatabaseWriter } from './database.js';
import { inRegion, type RegionContext } from './region.js';

export const EXTERNAL_SECRETS_CHART_VERSION = '0.19.2';
const ESO_NAMESPACE = 'external-secrets';
const ESO_SERVICE_ACCOUNT = 'external-secrets';

/** Kubernetes Secret names the workloads mount / reference. */
export const PROVIDER_CREDENTIALS_SECRET = 'herald-provider-credentials';
export const DATABASE_SECRET = 'herald-database';
/** The synthetic (load-test) tenant's api key, in the load-test namespace; key `api-key`. */
export const LOADTEST_API_KEY_SECRET = 'herald-loadtest-api-key';
export const LOADTEST_API_KEY_SECRET_KEY = 'api-key';

/** File names inside the provider credentials Secret (mounted as files). */
export const PROVIDER_CREDENTIAL_FILES: Record<SecretKey, string> = {
  telnyxApiKey: 'telnyx-api-key',
  telnyxPublicKey: 'telnyx-public-key',
  fcmServiceAccount: 'fcm-service-account.json',
  // The api's admin credential (tenants, numbers, API keys), e.g. to create the synthetic tenant.
  adminToken: 'herald-admin-token',
};

export interface SecretsArgs {
  primary: RegionContext;
  secondaries: RegionContext[];
  values: StackConfig['secrets'];
  recoveryWindowDays: number;
}

export class Secrets extends pulumi.ComponentResource {
  /** Secrets Manager secret name per credential (the same name in every region). */
  readonly names: Record<SecretKey, string>;
  /** KMS key ARN per region used for the secrets. */
  readonly keyArns: Record<string, pulumi.Output<string>> = {};
  /**
   * Secrets Manager name of the synthetic tenant's api key (k6). Created empty: the key is
   * minted through the api's admin routes and put here by hand (platform/README.md).
   */
  readonly loadTestApiKeyName: string;

  constructor(name: string, args: SecretsArgs, opts?: pulumi.ComponentResourceOptions) {
    super('herald:platform:Secrets', name, {}, opts);
    const { primary, secondaries } = args;
    for (const ctx of [primary, ...secondaries]) {
      const key = new aws.kms.Key(
        ctx.name('secrets-key'),
        { description: `${ctx.name('secrets')} Secrets Manager encryption`, enableKeyRotation: true, deletionWindowInDays: 30 },
        inRegion(ctx, this),
      );
      new aws.kms.Alias(ctx.name('secrets-key'), { name: `alias/${ctx.name('secrets')}`, targetKeyId: key.keyId }, inRegion(ctx, this));
      this.keyArns[ctx.region] = key.arn;
    }
    const names = {} as Record<SecretKey, string>;
    for (const [key, file] of Object.entries(PROVIDER_CREDENTIAL_FILES) as [SecretKey, string][]) {
      const thing = file.replace(/\.json$/, '');
      const secretName = `herald/${primary.stack}/${thing}`;
      const secret = new aws.secretsmanager.Secret(
        primary.name(thing),
        {
          name: secretName,
          description: `Herald ${primary.stack}: ${thing}`,
          kmsKeyId: this.keyArns[primary.region]!,
          recoveryWindowInDays: args.recoveryWindowDays,
          replicas: secondaries.map((ctx) => ({ region: ctx.region, kmsKeyId: this.keyArns[ctx.region]! })),
        },
        inRegion(primary, this),
      );
      new aws.secretsmanager.SecretVersion(
        primary.name(thing),
        { secretId: secret.id, secretString: args.values[key] },
        inRegion(primary, this),
      );
      names[key] = secretName;
    }
    this.names = names;
    this.loadTestApiKeyName = `herald/${primary.stack}/loadtest-api-key`;
    new aws.secretsmanager.Secret(
      primary.name('loadtest-api-key'),
      {
        name: this.loadTestApiKeyName,
        description: `Herald ${primary.stack}: api key of the synthetic load-test tenant (k6); value put by hand`,
        kmsKeyId: this.keyArns[primary.region]!,
        recoveryWindowInDays: args.recoveryWindowDays,
        replicas: secondaries.map((ctx) => ({ region: ctx.region, kmsKeyId: this.keyArns[ctx.region]! })),
      },
      inRegion(primary, this),
    );
    this.registerOutputs({});
  }

  /** IAM statements to read every credential in any region. */
  readStatements(stack: string): object[] {
    return [
      {
        Effect: 'Allow',
        Action: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'],
        Resource: `arn:aws:secretsmanager:*:*:secret:herald/${stack}/*`,
      },
    ];
  }
}

export interface SecretDeliveryArgs {
  ctx: RegionContext;
  cluster: Cluster;
  secrets: Secrets;
  database: DatabaseWriter;
  /** KMS keys whose ciphertext the operator must decrypt (secrets + database keys). */
  kmsKeyArns: pulumi.Input<string>[];
}

/** Cluster-wide delivery mechanism: ESO with IRSA, and a ClusterSecretStore per region it reads. */
export class SecretDelivery extends pulumi.ComponentResource {
  /** ClusterSecretStore of this cluster's own region (provider credentials). */
  readonly localStore: string;
  /** ClusterSecretStore of the database writer's region (database credentials). */
  readonly writerStore: string;
  readonly database: DatabaseWriter;
  readonly names: Record<SecretKey, string>;
  readonly loadTestApiKeyName: string;
  /** Wait for these before creating ExternalSecrets. */
  readonly ready: pulumi.Resource[];

  constructor(name: string, args: SecretDeliveryArgs, opts?: pulumi.ComponentResourceOptions) {
    super('herald:platform:SecretDelivery', name, {}, opts);
    const { ctx, cluster, secrets, database } = args;
    const k = { parent: this, provider: cluster.k8s };
    const role = workloadIdentityRole(
      'external-secrets',
      {
        ctx,
        cluster,
        namespace: ESO_NAMESPACE,
        serviceAccount: ESO_SERVICE_ACCOUNT,
        policy: pulumi.jsonStringify({
          Version: '2012-10-17',
          Statement: [
            ...secrets.readStatements(ctx.stack),
            { Effect: 'Allow', Action: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'], Resource: database.secretArn },
            { Effect: 'Allow', Action: ['kms:Decrypt'], Resource: args.kmsKeyArns },
          ],
        }),
      },
      this,
    );
    const release = new k8s.helm.v3.Release(
      ctx.name('external-secrets'),
      {
        name: 'external-secrets',
        chart: 'external-secrets',
        version: EXTERNAL_SECRETS_CHART_VERSION,
        repositoryOpts: { repo: 'https://charts.external-secrets.io' },
        namespace: ESO_NAMESPACE,
        createNamespace: true,
        atomic: true,
        values: {
          installCRDs: true,
          replicaCount: 2,
          serviceAccount: { name: ESO_SERVICE_ACCOUNT, annotations: { 'eks.amazonaws.com/role-arn': role.arn } },
          resources: { requests: { cpu: '50m', memory: '128Mi' }, limits: { cpu: '500m', memory: '256Mi' } },
          webhook: { resources: { requests: { cpu: '20m', memory: '64Mi' }, limits: { cpu: '200m', memory: '128Mi' } } },
          certController: { resources: { requests: { cpu: '20m', memory: '64Mi' }, limits: { cpu: '200m', memory: '128Mi' } } },
        },
      },
      k,
    );
    const store = (region: string): k8s.apiextensions.CustomResource =>
      new k8s.apiextensions.CustomResource(
        ctx.name(`secret-store-${region}`),
        {
          apiVersion: 'external-secrets.io/v1',
          kind: 'ClusterSecretStore',
          metadata: { name: `aws-secrets-manager-${region}` },
          // no auth block: the controller's own IRSA credentials are used
          spec: { provider: { aws: { service: 'SecretsManager', region } } },
        },
        { ...k, dependsOn: [release] },
      );
    const stores = [store(ctx.region)];
    if (database.region !== ctx.region) stores.push(store(database.region));
    this.localStore = `aws-secrets-manager-${ctx.region}`;
    this.writerStore = `aws-secrets-manager-${database.region}`;
    this.database = database;
    this.names = secrets.names;
    this.loadTestApiKeyName = secrets.loadTestApiKeyName;
    this.ready = [release, ...stores];
    this.registerOutputs({});
  }
}

/** One ExternalSecret: `data` read from `store` into the Secret `name`, once the operator and its stores are ready. */
function externalSecret(
  ctx: RegionContext,
  delivery: SecretDelivery,
  resourceName: string,
  s: {
    name: string;
    namespace: string;
    store: pulumi.Input<string>;
    refreshInterval: string;
    data: { secretKey: string; remoteRef: Record<string, pulumi.Input<string>> }[];
    template?: Record<string, unknown>;
  },
  opts: pulumi.CustomResourceOptions,
): k8s.apiextensions.CustomResource {
  return new k8s.apiextensions.CustomResource(
    ctx.name(resourceName),
    {
      apiVersion: 'external-secrets.io/v1',
      kind: 'ExternalSecret',
      metadata: { name: s.name, namespace: s.namespace },
      spec: {
        refreshInterval: s.refreshInterval,
        secretStoreRef: { kind: 'ClusterSecretStore', name: s.store },
        target: { name: s.name, creationPolicy: 'Owner', ...(s.template ? { template: s.template } : {}) },
        data: s.data,
      },
    },
    { ...opts, dependsOn: [...((opts.dependsOn as pulumi.Resource[] | undefined) ?? []), ...delivery.ready] },
  );
}

/**
 * The ExternalSecrets one application namespace needs: provider credentials as files, and
 * DATABASE_URL templated from the RDS-managed (rotated) master secret and the proxy endpoint.
 */
export function externalSecretsFor(
  ctx: RegionContext,
  delivery: SecretDelivery,
  namespace: string,
  opts: pulumi.CustomResourceOptions,
): k8s.apiextensions.CustomResource[] {
  const credentials = externalSecret(ctx, delivery, `${namespace}-provider-credentials`, {
    name: PROVIDER_CREDENTIALS_SECRET,
    namespace,
    store: delivery.localStore,
    refreshInterval: '1h',
    data: (Object.entries(PROVIDER_CREDENTIAL_FILES) as [SecretKey, string][]).map(([key, file]) => ({
      secretKey: file,
      remoteRef: { key: delivery.names[key] },
    })),
  }, opts);
  const database = externalSecret(ctx, delivery, `${namespace}-database`, {
    name: DATABASE_SECRET,
    namespace,
    store: delivery.writerStore,
    // RDS rotates the password; a short refresh picks the new one up
    refreshInterval: '15m',
    template: {
      engineVersion: 'v2',
      data: {
        DATABASE_URL: pulumi.interpolate`postgresql://{{ .username | urlquery }}:{{ .password | urlquery }}@${delivery.database.proxyEndpoint}:${DATABASE_PORT}/${DATABASE_NAME}?sslmode=require`,
      },
    },
    data: ['username', 'password'].map((property) => ({
      secretKey: property,
      remoteRef: { key: delivery.database.secretArn, property },
    })),
  }, opts);
  return [credentials, database];
}

/** The synthetic tenant's api key (Secrets Manager, this region's replica) as a Secret in the load-test namespace. */
export function loadTestApiKeySecret(
  ctx: RegionContext,
  delivery: SecretDelivery,
  namespace: string,
  opts: pulumi.CustomResourceOptions,
): k8s.apiextensions.CustomResource {
  return externalSecret(ctx, delivery, 'loadtest-api-key', {
    name: LOADTEST_API_KEY_SECRET,
    namespace,
    store: delivery.localStore,
    refreshInterval: '1h',
    data: [{ secretKey: LOADTEST_API_KEY_SECRET_KEY, remoteRef: { key: delivery.loadTestApiKeyName } }],
  }, opts);
}
