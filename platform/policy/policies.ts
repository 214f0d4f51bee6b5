/**
 * Herald's guardrails, each a resource validation policy. Kept apart from the pack's
 * entry file (index.ts) so tests can call each policy's validateResource directly.
 */
import type { ReportViolation, ResourceValidationArgs, ResourceValidationPolicy } from '@pulumi/policy';

type Props = Record<string, any>;
type Validate = (args: ResourceValidationArgs, report: ReportViolation) => void;

const RDS_INSTANCE = 'aws:rds/instance:Instance';
const BACKUPS_REPLICATION = 'aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication';
const SECRET = 'aws:secretsmanager/secret:Secret';
const EKS_CLUSTER = 'aws:eks/cluster:Cluster';
const SECURITY_GROUP = 'aws:ec2/securityGroup:SecurityGroup';
const LAUNCH_TEMPLATE = 'aws:ec2/launchTemplate:LaunchTemplate';
const NODE_GROUP = 'aws:eks/nodeGroup:NodeGroup';
const IAM_POLICY_DOCUMENTS = ['aws:iam/rolePolicy:RolePolicy', 'aws:iam/policy:Policy'];
const POSTGRES_PORT = 5432;

export type HeraldPolicy = Omit<ResourceValidationPolicy, 'validateResource'> & { validateResource: Validate };

function policy(name: string, description: string, validate: Validate, extra: Pick<ResourceValidationPolicy, 'configSchema'> = {}): HeraldPolicy {
  return { ...extra, name, description, enforcementLevel: 'mandatory', validateResource: validate };
}

// --- no public databases ------------------------------------------------------------------
export const noPublicDatabases = policy(
  'no-public-databases',
  'Databases are never publicly accessible, and no security group opens PostgreSQL to the internet.',
  ({ type, props }, report) => {
    if (type === RDS_INSTANCE && props['publiclyAccessible'] === true) {
      report('RDS instance is publicly accessible (publiclyAccessible must be false).');
    }
    if (type === SECURITY_GROUP) {
      for (const rule of (props['ingress'] as Props[] | undefined) ?? []) {
        const coversPg = rule['protocol'] === '-1' || (rule['fromPort'] <= POSTGRES_PORT && rule['toPort'] >= POSTGRES_PORT);
        const open = [...(rule['cidrBlocks'] ?? []), ...(rule['ipv6CidrBlocks'] ?? [])].some((c: string) => c === '0.0.0.0/0' || c === '::/0');
        if (coversPg && open) report(`security group opens port ${POSTGRES_PORT} to the internet.`);
      }
    }
  },
);

// --- encryption required ------------------------------------------------------------------
export const encryptionRequired = policy(
  'encryption-required',
  'Database storage, replicated backups, Secrets Manager secrets (and their replicas) and Kubernetes secrets are encrypted with customer-managed KMS keys.',
  ({ type, props }, report) => {
    if (type === RDS_INSTANCE) {
      if (props['storageEncrypted'] !== true) report('RDS instance storage is not encrypted (storageEncrypted must be true).');
      if (!props['kmsKeyId']) report('RDS instance has no customer-managed KMS key (kmsKeyId).');
      if (props['performanceInsightsEnabled'] && !props['performanceInsightsKmsKeyId']) report('Performance Insights data has no KMS key.');
    }
    if (type === BACKUPS_REPLICATION && !props['kmsKeyId']) report('replicated automated backups have no KMS key of the destination region (kmsKeyId).');
    if (type === SECRET) {
      if (!props['kmsKeyId']) report('secret has no customer-managed KMS key (kmsKeyId).');
      for (const replica of (props['replicas'] as Props[] | undefined) ?? []) {
        if (!replica['kmsKeyId']) report(`secret replica in ${replica['region']} has no KMS key of its region.`);
      }
    }
    if (type === EKS_CLUSTER) {
      const configured = props['encryptionConfig'] as Props | undefined;
      if (!configured?.['provider']?.['keyArn'] || !(configured['resources'] ?? []).includes('secrets')) {
        report('EKS cluster does not envelope-encrypt Kubernetes secrets with a KMS key (encryptionConfig).');
      }
    }
  },
);

// --- backups of at least the stack's minimum -----------------------------------------------
export interface BackupPolicyConfig {
  minimumRetentionDays: number;
}
export const backupsMeetStackMinimum = policy(
  'backups-meet-stack-minimum',
  "Every writable database keeps automated backups (point-in-time recovery) for at least the stack's minimum number of days, and so do their replicated copies.",
  (args, report) => {
    const { minimumRetentionDays } = args.getConfig<BackupPolicyConfig>();
    const { type, props } = args;
    if (type === RDS_INSTANCE && !props['replicateSourceDb']) {
      const days = props['backupRetentionPeriod'] ?? 0;
      if (days < minimumRetentionDays) report(`backup retention is ${days} days; this stack requires at least ${minimumRetentionDays}.`);
    }
    if (type === BACKUPS_REPLICATION) {
      const days = props['retentionPeriod'] ?? 7;
      if (days < minimumRetentionDays) report(`replicated backup retention is ${days} days; this stack requires at least ${minimumRetentionDays}.`);
    }
  },
  {
    configSchema: {
      properties: { minimumRetentionDays: { type: 'integer', minimum: 1, maximum: 35, default: 7 } },
    },
  },
);

// --- Kubernetes pod templates ---------------------------------------------------------------
export interface Container {
  name?: string;
  image?: string;
  command?: string[];
  env?: { name: string; value?: string; valueFrom?: unknown }[];
  resources?: { limits?: Record<string, unknown> };
}

/** Containers of any pod-bearing Kubernetes object (Pod, Deployment, Job, CronJob, ...). */
export function podContainers(type: string, props: Props): Container[] | undefined {
  if (!type.startsWith('kubernetes:')) return undefined;
  const kind = type.split(':')[2];
  const podSpec: Props | undefined =
    kind === 'Pod'
      ? props['spec']
      : kind === 'CronJob'
        ? props['spec']?.['jobTemplate']?.['spec']?.['template']?.['spec']
        : ['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job'].includes(kind ?? '')
          ? props['spec']?.['template']?.['spec']
          : undefined;
  if (!podSpec) return undefined;
  return [...(podSpec['initContainers'] ?? []), ...(podSpec['containers'] ?? [])];
}

const SECRET_NAME = /(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL|DATABASE_URL|DSN|CONNECTION_STRING)/i;
const URL_WITH_PASSWORD = /:\/\/[^\s:@/]+:[^\s@/]+@/;

export const noPlaintextSecretsInEnv = policy(
  'no-plaintext-secrets-in-env',
  'Container environment never holds a secret as a literal value: secrets come from Secret references or mounted files (*_FILE variables name the file).',
  ({ type, props }, report) => {
    for (const c of podContainers(type, props) ?? []) {
      for (const e of c.env ?? []) {
        if (e.value === undefined || e.valueFrom !== undefined) continue;
        if (SECRET_NAME.test(e.name) && !/_FILE$/.test(e.name)) {
          report(`container '${c.name}' sets ${e.name} as a literal value; use valueFrom.secretKeyRef or a mounted file.`);
        } else if (URL_WITH_PASSWORD.test(e.value)) {
          report(`container '${c.name}' has a URL with an embedded password in ${e.name}.`);
        }
      }
    }
  },
);

export const resourceLimitsOnEveryContainer = policy(
  'resource-limits-on-every-container',
  'Every container (init containers included) has CPU and memory limits.',
  ({ type, props }, report) => {
    for (const c of podContainers(type, props) ?? []) {
      const limits = c.resources?.limits ?? {};
      for (const resource of ['cpu', 'memory']) {
        if (limits[resource] === undefined) report(`container '${c.name}' has no ${resource} limit.`);
      }
    }
  },
);

// --- AWS hardening ------------------------------------------------------------------------
export const eksEndpointRestricted = policy(
  'eks-endpoint-restricted',
  "The EKS API endpoint is not open to the internet: a public endpoint lists the networks allowed (publicAccessCidrs), none of them a /0 (without a list, AWS allows 0.0.0.0/0).",
  ({ type, props }, report) => {
    if (type !== EKS_CLUSTER) return;
    const vpc = (props['vpcConfig'] as Props | undefined) ?? {};
    if (vpc['endpointPublicAccess'] === false) return;
    const cidrs = (vpc['publicAccessCidrs'] as string[] | undefined) ?? [];
    if (cidrs.length === 0) report('EKS cluster has a public endpoint without publicAccessCidrs (AWS then allows 0.0.0.0/0).');
    for (const c of cidrs) if (c.endsWith('/0')) report(`EKS cluster's public endpoint is open to ${c}; list your networks in herald:cluster.publicAccessCidrs.`);
  },
);

export const imdsV2HopLimitOne = policy(
  'imdsv2-hop-limit-1',
  'Nodes require IMDSv2 with a response hop limit of 1 (through a launch template), so a pod cannot reach the metadata service and take the node role.',
  ({ type, props }, report) => {
    if (type === NODE_GROUP && !props['launchTemplate']) {
      report("node group has no launch template (EKS's default allows a hop limit of 2: pods reach the metadata service).");
    }
    if (type === LAUNCH_TEMPLATE) {
      const m = (props['metadataOptions'] as Props | undefined) ?? {};
      if (m['httpTokens'] !== 'required') report('launch template does not require IMDSv2 tokens (metadataOptions.httpTokens must be "required").');
      if (m['httpEndpoint'] !== 'disabled' && m['httpPutResponseHopLimit'] !== 1) {
        report(`launch template's metadata hop limit is ${String(m['httpPutResponseHopLimit'] ?? 'unset')}; it must be 1.`);
      }
    }
  },
);

export interface ImagePolicyConfig {
  registry: string;
  requireDigest: boolean;
}
const DIGEST = /@sha256:[0-9a-f]{64}$/;
export const imagesFromRegistryByDigest = policy(
  'images-from-registry-by-digest',
  "Every container image comes from the stack's registry, and (where the stack requires it) by digest, never by a mutable tag.",
  (args, report) => {
    const { registry, requireDigest } = args.getConfig<ImagePolicyConfig>();
    for (const c of podContainers(args.type, args.props) ?? []) {
      const ref = c.image ?? '';
      if (!registry || !ref.startsWith(`${registry.replace(/\/$/, '')}/`)) report(`container '${c.name}' image ${ref} is not from the registry ${registry || '(none configured)'}.`);
      if (requireDigest && !DIGEST.test(ref)) report(`container '${c.name}' image ${ref} is not pinned by digest (@sha256:...).`);
    }
  },
  {
    configSchema: {
      properties: { registry: { type: 'string', default: '' }, requireDigest: { type: 'boolean', default: true } },
    },
  },
);

export const noWildcardIamActions = policy(
  'no-wildcard-iam-actions',
  'IAM policies Herald writes name their actions: no "*" and no "<service>:*".',
  ({ type, props }, report) => {
    if (!IAM_POLICY_DOCUMENTS.includes(type) || typeof props['policy'] !== 'string') return;
    const doc = JSON.parse(props['policy']) as { Statement?: Props[] | Props };
    for (const st of [doc.Statement ?? []].flat()) {
      if (st['Effect'] !== 'Allow') continue;
      for (const action of [st['Action'] ?? []].flat() as string[]) {
        if (action === '*' || action.endsWith(':*')) report(`IAM policy allows ${action}; name the actions.`);
      }
    }
  },
);

export const heraldPolicies: HeraldPolicy[] = [
  noPublicDatabases,
  encryptionRequired,
  backupsMeetStackMinimum,
  noPlaintextSecretsInEnv,
  resourceLimitsOnEveryContainer,
  eksEndpointRestricted,
  imdsV2HopLimitOne,
  imagesFromRegistryByDigest,
  noWildcardIamActions,
];
