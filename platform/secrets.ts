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
import { DATABASE_CA_FILE, DATABASE_CA_MOUNT, DATABASE_NAME, DATABASE_PORT, type DatabaseWriter } from './database.js';
import { inRegion, type RegionContext } from './region.js';

export const EXTERNAL_SECRETS_CHART_VERSION = '0.19.2';
const ESO_NAMESPACE = 'external-secrets';
const ESO_SERVICE_ACCOUNT = 'external-secrets';

/** The synthetic (load-test) tenant's api key, in the load-test namespace; key `api-key`. */
export const LOADTEST_API_KEY_SECRET = 'herald-loadtest-api-key';
export const LOADTEST_API_KEY_SECRET_KEY = 'api-key';

/** File names of the provider credentials inside a consumer's Secret (mounted as files). */
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

  /** IAM statement to read these credentials (their copy in any region). */
  readStatement(keys: readonly string[]): object {
    return {
      Effect: 'Allow',
      Action: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'],
      // Secrets Manager appends -XXXXXX to a secret's name in its ARN
      Resource: keys.map((name) => `arn:aws:secretsmanager:*:*:secret:${name}-*`),
    };
  }
}

export interface SecretDeliveryArgs {
  ctx: RegionContext;
  cluster: Cluster;
  secrets: Secrets;
  database: DatabaseWriter;
  /** KMS keys of the provider credentials (per region) and of the database's master secret. */
  secretsKeyArns: pulumi.Input<string>[];
  databaseKeyArns: pulumi.Input<string>[];
  /** Which namespaces may use which store: the api's and workers', the operator's, the load test's. */
  namespaces: { app: string; operator: string; loadTest?: string };
}

/** What each store may read, and for which namespaces (ClusterSecretStore conditions). */
export type StorePurpose = 'providers' | 'database' | 'loadtest';

/**
 * Cluster-wide delivery: the External Secrets Operator, and one ClusterSecretStore per
 * purpose, each usable only from the namespaces that need it and reading through its own
 * IAM role (IRSA of a ServiceAccount of its own) only its own secrets. The operator's own
 * identity can read nothing, so a namespaced SecretStore someone creates without auth gets
 * nothing, and one cannot name another namespace's ServiceAccount.
 */
export class SecretDelivery extends pulumi.ComponentResource {
  /** ClusterSecretStore names by purpose (providers and load test: this region; database: the writer's). */
  readonly stores: Record<StorePurpose, string>;
  /** Namespaces each store admits. */
  readonly storeNamespaces: Record<StorePurpose, string[]>;
  readonly database: DatabaseWriter;
  readonly names: Record<SecretKey, string>;
  readonly loadTestApiKeyName: string;
  /** Wait for these before creating ExternalSecrets. */
  readonly ready: pulumi.Resource[];

  constructor(name: string, args: SecretDeliveryArgs, opts?: pulumi.ComponentResourceOptions) {
    super('herald:platform:SecretDelivery', name, {}, opts);
    const { ctx, cluster, secrets, database } = args;
    const k = { parent: this, provider: cluster.k8s };
    // created here, not by Helm, so the stores' ServiceAccounts can live in it
    const namespace = new k8s.core.v1.Namespace(ctx.name('external-secrets-ns'), { metadata: { name: ESO_NAMESPACE } }, k);
    const release = new k8s.helm.v3.Release(
      ctx.name('external-secrets'),
      {
        name: 'external-secrets',
        chart: 'external-secrets',
        version: EXTERNAL_SECRETS_CHART_VERSION,
        repositoryOpts: { repo: 'https://charts.external-secrets.io' },
        namespace: ESO_NAMESPACE,
        atomic: true,
        values: {
          installCRDs: true,
          replicaCount: 2,
          // no IAM role of its own: every store reads through its own ServiceAccount's role
          serviceAccount: { name: ESO_SERVICE_ACCOUNT },
          resources: { requests: { cpu: '50m', memory: '128Mi' }, limits: { cpu: '500m', memory: '256Mi' } },
          webhook: { resources: { requests: { cpu: '20m', memory: '64Mi' }, limits: { cpu: '200m', memory: '128Mi' } } },
          certController: { resources: { requests: { cpu: '20m', memory: '64Mi' }, limits: { cpu: '200m', memory: '128Mi' } } },
        },
      },
      { ...k, dependsOn: [namespace] },
    );
    const providerKeys = (Object.keys(PROVIDER_CREDENTIAL_FILES) as SecretKey[]).map((key) => secrets.names[key]);
    const plan: Record<StorePurpose, { region: string; namespaces: string[]; statements: object[] }> = {
      providers: {
        region: ctx.region,
        namespaces: [args.namespaces.app],
        statements: [secrets.readStatement(providerKeys), { Effect: 'Allow', Action: ['kms:Decrypt'], Resource: args.secretsKeyArns }],
      },
      database: {
        region: database.region,
        namespaces: [...new Set([args.namespaces.app, args.namespaces.operator])],
        statements: [
          { Effect: 'Allow', Action: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'], Resource: database.secretArn },
          { Effect: 'Allow', Action: ['kms:Decrypt'], Resource: args.databaseKeyArns },
        ],
      },
      loadtest: {
        region: ctx.region,
        namespaces: args.namespaces.loadTest ? [args.namespaces.loadTest] : [],
        statements: [secrets.readStatement([secrets.loadTestApiKeyName]), { Effect: 'Allow', Action: ['kms:Decrypt'], Resource: args.secretsKeyArns }],
      },
    };
    const stores: pulumi.Resource[] = [];
    const storeNames = {} as Record<StorePurpose, string>;
    const storeNamespaces = {} as Record<StorePurpose, string[]>;
    for (const [purpose, p] of Object.entries(plan) as [StorePurpose, (typeof plan)[StorePurpose]][]) {
      if (p.namespaces.length === 0) continue;
      const accountName = `herald-store-${purpose}`;
      const role = workloadIdentityRole(
        `secret-store-${purpose}`,
        { ctx, cluster, namespace: ESO_NAMESPACE, serviceAccount: accountName, policy: pulumi.jsonStringify({ Version: '2012-10-17', Statement: p.statements }) },
        this,
      );
      const account = new k8s.core.v1.ServiceAccount(
        ctx.name(`secret-store-${purpose}`),
        { metadata: { name: accountName, namespace: ESO_NAMESPACE, annotations: { 'eks.amazonaws.com/role-arn': role.arn } } },
        { ...k, dependsOn: [release] },
      );
      storeNames[purpose] = `herald-${purpose}-${p.region}`;
      storeNamespaces[purpose] = p.namespaces;
      stores.push(
        new k8s.apiextensions.CustomResource(
          ctx.name(`secret-store-${purpose}`),
          {
            apiVersion: 'external-secrets.io/v1',
            kind: 'ClusterSecretStore',
            metadata: { name: storeNames[purpose] },
            spec: {
              // an ExternalSecret in any other namespace is refused this store
              conditions: [{ namespaces: p.namespaces }],
              provider: {
                aws: { service: 'SecretsManager', region: p.region, auth: { jwt: { serviceAccountRef: { name: accountName, namespace: ESO_NAMESPACE } } } },
              },
            },
          },
          { ...k, dependsOn: [release, account] },
        ),
      );
    }
    this.stores = storeNames;
    this.storeNamespaces = storeNamespaces;
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
    data: { secretKey: string; remoteRef: Record<string, pulumi.Input<string>>; sourceRef?: { storeRef: { kind: string; name: string } } }[];
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

/** Herald's processes that hold credentials; each gets a Secret of its own (`herald-<consumer>`). */
export type Consumer = 'api' | 'worker' | 'operator' | 'migrate' | 'keda';
/** The provider credentials each consumer reads (as files); every one also gets its DATABASE_URL. */
export const CONSUMER_CREDENTIALS: Record<Consumer, readonly SecretKey[]> = {
  // HELP/STOP replies through Telnyx, webhook signatures, the admin routes
  api: ['telnyxApiKey', 'telnyxPublicKey', 'adminToken'],
  worker: ['telnyxApiKey', 'fcmServiceAccount'],
  operator: [],
  migrate: [],
  keda: [],
};
export const consumerSecret = (consumer: Consumer): string => `herald-${consumer}`;

/**
 * TLS for a consumer's DATABASE_URL: the certificate must chain to the database's CA and
 * name the host. Herald's pods pin the CA bundle mounted from a ConfigMap; KEDA's own pod
 * has no such file and verifies against its image's system roots (which include them).
 */
export function databaseTls(consumer: Consumer): string {
  return consumer === 'keda' ? 'sslmode=verify-full' : `sslmode=verify-full&sslrootcert=${DATABASE_CA_MOUNT}/${DATABASE_CA_FILE}`;
}

/**
 * The ExternalSecret of one consumer: a Secret `herald-<consumer>` with DATABASE_URL,
 * templated from the RDS-managed (rotated) master secret and the proxy endpoint, and only
 * the credential files that consumer reads (CONSUMER_CREDENTIALS).
 */
export function externalSecretFor(
  ctx: RegionContext,
  delivery: SecretDelivery,
  consumer: Consumer,
  namespace: string,
  opts: pulumi.CustomResourceOptions,
): k8s.apiextensions.CustomResource {
  const files = CONSUMER_CREDENTIALS[consumer].map((key) => ({ key, file: PROVIDER_CREDENTIAL_FILES[key] }));
  return externalSecret(ctx, delivery, `${consumer}-secret`, {
    name: consumerSecret(consumer),
    namespace,
    store: delivery.stores.database,
    // RDS rotates the password; a short refresh picks the new one up
    refreshInterval: '15m',
    template: {
      engineVersion: 'v2',
      data: {
        DATABASE_URL: pulumi.interpolate`postgresql://{{ .username | urlquery }}:{{ .password | urlquery }}@${delivery.database.proxyEndpoint}:${DATABASE_PORT}/${DATABASE_NAME}?${databaseTls(consumer)}`,
        ...Object.fromEntries(files.map(({ file }) => [file, `{{ index . "${file}" }}`])),
      },
    },
    data: [
      ...['username', 'password'].map((property) => ({ secretKey: property, remoteRef: { key: delivery.database.secretArn, property } })),
      ...files.map(({ key, file }) => ({
        secretKey: file,
        remoteRef: { key: delivery.names[key] },
        sourceRef: { storeRef: { kind: 'ClusterSecretStore', name: delivery.stores.providers } },
      })),
    ],
  }, opts);
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
    store: delivery.stores.loadtest,
    refreshInterval: '1h',
    data: [{ secretKey: LOADTEST_API_KEY_SECRET_KEY, remoteRef: { key: delivery.loadTestApiKeyName } }],
  }, opts);
}
