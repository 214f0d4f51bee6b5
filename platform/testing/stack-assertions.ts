/**
 * What every stack must satisfy, asserted against a mocked run of the real program with
 * that stack's own Pulumi.<stack>.yaml. staging.test.ts and production.test.ts call this.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseStackConfig, type RawStackConfig } from '../config.js';
import { LOADTEST_RBAC_FILE, loadLoadTestRbac } from '../loadtesting.js';
import { BACKUP_FINISHED_EVENT } from '../alerting.js';
import { readFinalStage } from '../image-layout.js';
import { loadManifestFiles, loadOperatorManifests, REPO_ROOT } from '../operator-manifests.js';
import { podContainers } from '../policy/policies.js';
import { subnetCidrs } from '../network.js';
import { MONITORING_NAMESPACE } from '../network-policies.js';
import { ALERTS, HERALD_JOBS } from '../monitoring/alerts.js';
import { dashboards } from '../monitoring/dashboards.js';
import { ALERTMANAGER_SERVICE_ACCOUNT, GRAFANA_DASHBOARD_LABEL, KUBE_PROMETHEUS_STACK_CHART_VERSION } from '../monitoring/prometheus-stack.js';
import { image, PORTS, QUEUE_DEPTH_QUERY, WORKER_COLORS } from '../workloads.js';
import { renderKubernetesManifests, runStack, type RegisteredResource, type StackRun } from './mocked-run.js';
import { allowed, parsePolicies, type Endpoint } from './network-policy-eval.js';

export const T = {
  awsProvider: 'pulumi:providers:aws',
  k8sProvider: 'pulumi:providers:kubernetes',
  vpc: 'aws:ec2/vpc:Vpc',
  subnet: 'aws:ec2/subnet:Subnet',
  nat: 'aws:ec2/natGateway:NatGateway',
  eks: 'aws:eks/cluster:Cluster',
  nodeGroup: 'aws:eks/nodeGroup:NodeGroup',
  oidc: 'aws:iam/openIdConnectProvider:OpenIdConnectProvider',
  kmsKey: 'aws:kms/key:Key',
  rds: 'aws:rds/instance:Instance',
  paramGroup: 'aws:rds/parameterGroup:ParameterGroup',
  backupsReplication: 'aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication',
  proxy: 'aws:rds/proxy:Proxy',
  proxyTarget: 'aws:rds/proxyTarget:ProxyTarget',
  rotation: 'aws:secretsmanager/secretRotation:SecretRotation',
  secret: 'aws:secretsmanager/secret:Secret',
  record: 'aws:route53/record:Record',
  healthCheck: 'aws:route53/healthCheck:HealthCheck',
  cert: 'aws:acm/certificate:Certificate',
  helm: 'kubernetes:helm.sh/v3:Release',
  deployment: 'kubernetes:apps/v1:Deployment',
  job: 'kubernetes:batch/v1:Job',
  cronJob: 'kubernetes:batch/v1:CronJob',
  configMap: 'kubernetes:core/v1:ConfigMap',
  namespace: 'kubernetes:core/v1:Namespace',
  serviceAccount: 'kubernetes:core/v1:ServiceAccount',
  role: 'kubernetes:rbac.authorization.k8s.io/v1:Role',
  roleBinding: 'kubernetes:rbac.authorization.k8s.io/v1:RoleBinding',
  clusterRoleBinding: 'kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding',
  service: 'kubernetes:core/v1:Service',
  ingress: 'kubernetes:networking.k8s.io/v1:Ingress',
  pdb: 'kubernetes:policy/v1:PodDisruptionBudget',
  crd: 'kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition',
  scaledObject: 'kubernetes:keda.sh/v1alpha1:ScaledObject',
  externalSecret: 'kubernetes:external-secrets.io/v1:ExternalSecret',
  secretStore: 'kubernetes:external-secrets.io/v1:ClusterSecretStore',
  networkPolicy: 'kubernetes:networking.k8s.io/v1:NetworkPolicy',
  eksAddon: 'aws:eks/addon:Addon',
} as const;

/** The backend a request path reaches through an Ingress's rules (Kubernetes' Exact / Prefix matching, by path element), or undefined. */
export function ingressBackend(spec: { rules: { http: { paths: { path: string; pathType: string; backend: { service: { name: string } } }[] } }[] }, requestPath: string): string | undefined {
  const matches = spec.rules
    .flatMap((r) => r.http.paths)
    .filter((p) => {
      if (p.pathType === 'Exact') return requestPath === p.path;
      if (p.pathType !== 'Prefix') throw new Error(`pathType ${p.pathType} is not evaluated here`);
      const prefix = p.path.replace(/\/$/, '');
      return prefix === '' || requestPath === prefix || requestPath.startsWith(`${prefix}/`);
    })
    .sort((a, b) => b.path.length - a.path.length);
  return matches[0]?.backend.service.name;
}

export const ofType = (run: StackRun, type: string): RegisteredResource[] => run.resources.filter((r) => r.type === type);
export const one = (run: StackRun, type: string, pred: (r: RegisteredResource) => boolean = () => true): RegisteredResource => {
  const found = ofType(run, type).filter(pred);
  if (found.length !== 1) throw new Error(`expected exactly one ${type} matching, found ${found.length}: ${found.map((f) => f.name).join(', ')}`);
  return found[0]!;
};
const arnRegion = (arn: string): string | undefined => /^arn:aws:[^:]+:([^:]*):/.exec(arn)?.[1];

export function typedConfig(run: StackRun): RawStackConfig {
  const raw: Record<string, string> = {};
  for (const [k, v] of Object.entries(run.config)) if (k.startsWith('herald:')) raw[k.slice('herald:'.length)] = v;
  return parseStackConfig(raw);
}

export function describeStack(stack: string): { run: () => StackRun; cfg: () => RawStackConfig } {
  let run: StackRun;
  let cfg: RawStackConfig;
  let primary: string;
  let active: string;
  let secondaries: string[];

  describe(`stack ${stack} (mocked run with Pulumi.${stack}.yaml)`, () => {
    const inRegion = (type: string, region: string) => ofType(run, type).filter((r) => r.region === region);
    const deployment = (region: string, name: string) => one(run, T.deployment, (d) => d.region === region && d.inputs['metadata'].name === name);
    const container = (r: RegisteredResource) => podContainers(r.type, r.inputs)![0]!;
    const env = (r: RegisteredResource) => Object.fromEntries((container(r).env ?? []).map((e) => [e.name, e.value ?? e.valueFrom]));
    beforeAll(async () => {
      run = await runStack(stack);
      cfg = typedConfig(run);
      primary = cfg.primaryRegion;
      active = cfg.failover.activeRegion ?? primary;
      secondaries = cfg.regions.map((r) => r.name).filter((r) => r !== primary);
    });

    describe('regions and clusters', () => {
      it('has one AWS provider per configured region, tagged consistently', () => {
        const providers = ofType(run, T.awsProvider);
        expect(providers.map((p) => p.inputs['region']).sort()).toEqual(cfg.regions.map((r) => r.name).sort());
        for (const p of providers) {
          expect(JSON.parse(p.inputs['defaultTags'])).toEqual({
            tags: { project: 'herald', stack, region: p.inputs['region'], 'managed-by': 'pulumi' },
          });
        }
        expect(secondaries.length).toBeGreaterThanOrEqual(1);
      });

      it('has per region a VPC with private subnets in three zones, and NAT as configured', () => {
        for (const r of cfg.regions) {
          const vpc = one(run, T.vpc, (v) => v.region === r.name);
          expect(vpc.inputs['cidrBlock']).toBe(r.vpcCidr);
          const privateSubnets = ofType(run, T.subnet).filter((s) => s.region === r.name && s.inputs['tags']?.tier === 'private');
          expect(new Set(privateSubnets.map((s) => s.inputs['availabilityZone']))).toEqual(new Set(r.availabilityZones));
          for (const s of privateSubnets) expect(s.inputs['mapPublicIpOnLaunch']).not.toBe(true);
          const nats = ofType(run, T.nat).filter((n) => n.region === r.name);
          expect(nats).toHaveLength(cfg.network.natGatewayPerAz ? 3 : 1);
        }
      });

      it('peers every secondary VPC with the primary (routes both ways, DNS across) so standby workers reach the primary database', () => {
        const peerings = ofType(run, 'aws:ec2/vpcPeeringConnection:VpcPeeringConnection');
        expect(peerings.map((p) => p.inputs['peerRegion']).sort()).toEqual([...secondaries].sort());
        for (const p of peerings) expect(p.region).toBe(primary);
        const routes = ofType(run, 'aws:ec2/route:Route');
        for (const region of secondaries) {
          const cidr = cfg.regions.find((r) => r.name === region)!.vpcCidr;
          expect(routes.filter((r) => r.region === primary && r.inputs['destinationCidrBlock'] === cidr)).toHaveLength(3);
          expect(routes.filter((r) => r.region === region && r.inputs['destinationCidrBlock'] === cfg.regions.find((x) => x.name === primary)!.vpcCidr)).toHaveLength(3);
        }
        // the primary's database takes the peered cluster's nodes and pods
        const dbSg = one(run, 'aws:ec2/securityGroup:SecurityGroup', (g) => g.region === primary && g.name.endsWith('-db-sg'));
        for (const region of secondaries) {
          const cidrs = subnetCidrs(cfg.regions.find((r) => r.name === region)!.vpcCidr, 3).privateCidrs;
          expect(dbSg.inputs['ingress']).toContainEqual(expect.objectContaining({ fromPort: 5432, cidrBlocks: cidrs }));
        }
      });

      it('has per region an EKS cluster on private subnets, managed node groups, an OIDC provider and a Kubernetes provider', () => {
        for (const r of cfg.regions) {
          const eks = one(run, T.eks, (c) => c.region === r.name);
          expect(eks.inputs['version']).toBe(cfg.cluster.kubernetesVersion);
          expect(eks.inputs['vpcConfig'].subnetIds).toHaveLength(3);
          const groups = ofType(run, T.nodeGroup).filter((g) => g.region === r.name);
          expect(groups.map((g) => g.inputs['scalingConfig'])).toEqual(
            cfg.cluster.nodeGroups.map((g) => ({ minSize: g.minSize, desiredSize: g.desiredSize, maxSize: g.maxSize })),
          );
          for (const g of groups) expect(g.inputs['clusterName']).toBe(eks.inputs['name']);
          const oidc = one(run, T.oidc, (o) => o.region === r.name);
          expect(oidc.inputs['url']).toContain(`oidc.eks.${r.name}.amazonaws.com`);
          expect(oidc.inputs['clientIdLists']).toEqual(['sts.amazonaws.com']);
          const k8s = one(run, T.k8sProvider, (p) => p.region === r.name);
          const kubeconfig = JSON.parse(k8s.inputs['kubeconfig']);
          expect(kubeconfig.clusters[0].cluster.server).toBe(`https://${eks.inputs['name']}.${r.name}.eks.amazonaws.com`);
          expect(kubeconfig.users[0].user.exec.args).toEqual(expect.arrayContaining(['--cluster-name', eks.inputs['name'], '--region', r.name]));
          // workloads only start once nodes exist
          expect(k8s.dependsOn).toEqual(expect.arrayContaining(groups.map((g) => g.name)));
        }
      });
    });

    describe('database', () => {
      const instances = () => ofType(run, T.rds);
      const primaryDb = () => one(run, T.rds, (i) => !i.inputs['replicateSourceDb'] && i.region === primary);

      it('has a Multi-AZ primary in the primary region with an RDS-managed master password', () => {
        const db = primaryDb();
        expect(db.inputs['multiAz']).toBe(true);
        expect(db.inputs['engine']).toBe('postgres');
        expect(db.inputs['publiclyAccessible']).toBe(false);
        expect(db.inputs['manageMasterUserPassword']).toBe(true);
        expect(db.inputs['password']).toBeUndefined();
        expect(arnRegion(db.inputs['masterUserSecretKmsKeyId'])).toBe(primary);
      });

      it('places the configured in-region replicas in distinct zones of the primary region', () => {
        const replicas = instances().filter((i) => i.region === primary && i.inputs['replicateSourceDb']);
        expect(replicas).toHaveLength(cfg.database.inRegionReplicas);
        for (const r of replicas) expect(r.inputs['replicateSourceDb']).toBe(primaryDb().state['identifier']);
        const zones = replicas.map((r) => r.inputs['availabilityZone']);
        expect(new Set(zones).size).toBe(zones.length);
        const primaryZones = cfg.regions.find((r) => r.name === primary)!.availabilityZones;
        for (const z of zones) expect(primaryZones).toContain(z);
      });

      it('has a cross-region replica in each secondary region, by ARN, with a KMS key of its own region', () => {
        for (const region of secondaries) {
          const replica = one(run, T.rds, (i) => i.region === region);
          expect(replica.inputs['replicateSourceDb']).toBe(primaryDb().state['arn']);
          expect(arnRegion(replica.inputs['replicateSourceDb'])).toBe(primary);
          expect(arnRegion(replica.inputs['kmsKeyId'])).toBe(region);
          expect(replica.inputs['multiAz']).toBe(cfg.database.crossRegionReplicaMultiAz);
        }
      });

      it('encrypts every instance with a customer-managed key of its own region, Performance Insights included', () => {
        for (const i of instances()) {
          expect(i.inputs['storageEncrypted']).toBe(true);
          expect(arnRegion(i.inputs['kmsKeyId'])).toBe(i.region);
          expect(i.inputs['performanceInsightsEnabled']).toBe(true);
          expect(arnRegion(i.inputs['performanceInsightsKmsKeyId'])).toBe(i.region);
        }
        for (const key of ofType(run, T.kmsKey)) expect(key.inputs['enableKeyRotation']).toBe(true);
      });

      it("keeps automated backups (PITR) for the stack's retention and replicates them into a secondary region", () => {
        expect(primaryDb().inputs['backupRetentionPeriod']).toBe(cfg.database.backupRetentionDays);
        const replication = one(run, T.backupsReplication);
        expect(secondaries).toContain(replication.region);
        expect(replication.inputs['sourceDbInstanceArn']).toBe(primaryDb().state['arn']);
        expect(replication.inputs['retentionPeriod']).toBe(cfg.database.backupRetentionDays);
        expect(arnRegion(replication.inputs['kmsKeyId'])).toBe(replication.region);
      });

      it('uses a parameter group with connection limits and slow-query logging', () => {
        for (const i of instances()) {
          const group = one(run, T.paramGroup, (g) => g.state['name'] === i.inputs['parameterGroupName']);
          expect(group.region).toBe(i.region);
          const params = Object.fromEntries((group.inputs['parameters'] as { name: string; value: string }[]).map((p) => [p.name, p.value]));
          expect(params['max_connections']).toBe(String(cfg.database.maxConnections));
          expect(params['log_min_duration_statement']).toBe(String(cfg.database.slowQueryMs));
        }
      });

      it("admits PostgreSQL only from the clusters' nodes and pods: the same region's EKS security group, a peered region's private subnets", () => {
        for (const r of cfg.regions) {
          const sg = one(run, 'aws:ec2/securityGroup:SecurityGroup', (g) => g.region === r.name && g.name.endsWith('-db-sg'));
          const eks = one(run, T.eks, (c) => c.region === r.name);
          const rules = sg.inputs['ingress'] as { securityGroups?: string[]; cidrBlocks?: string[]; self?: boolean; fromPort: number; toPort: number }[];
          expect(rules.filter((x) => x.securityGroups)).toEqual([expect.objectContaining({ fromPort: 5432, toPort: 5432, securityGroups: [eks.state['vpcConfig'].clusterSecurityGroupId] })]);
          expect(rules.filter((x) => x.self)).toEqual([expect.objectContaining({ fromPort: 5432, toPort: 5432 })]);
          const peeredCidrs = cfg.regions.filter((x) => x.name !== r.name).flatMap((x) => subnetCidrs(x.vpcCidr, 3).privateCidrs);
          expect(rules.flatMap((x) => x.cidrBlocks ?? []).sort()).toEqual(peeredCidrs.sort());
          for (const c of rules.flatMap((x) => x.cidrBlocks ?? [])) for (const v of cfg.regions) expect(c, 'not a whole VPC').not.toBe(v.vpcCidr);
          // nodes carry the cluster security group: their launch templates name no other
          for (const t of ofType(run, 'aws:ec2/launchTemplate:LaunchTemplate').filter((x) => x.region === r.name)) {
            expect(t.inputs['vpcSecurityGroupIds']).toBeUndefined();
            expect(t.inputs['networkInterfaces']).toBeUndefined();
          }
        }
      });

      it('connects with sslmode=verify-full, pinned to the Amazon Root CAs the proxy certificate chains to', async () => {
        const byRegion = await renderKubernetesManifests(stack, run);
        const dir = mkdtempSync(path.join(os.tmpdir(), 'herald-db-ca-'));
        try {
          for (const r of cfg.regions) {
            const manifests = byRegion.get(r.name)!;
            for (const e of ofType(run, T.externalSecret).filter((x) => x.region === r.name && x.inputs['spec'].target.template?.data?.DATABASE_URL)) {
              const name = e.inputs['metadata'].name as string;
              const url = new URL((e.inputs['spec'].target.template.data.DATABASE_URL as string).replace('{{ .username | urlquery }}', 'u').replace('{{ .password | urlquery }}', 'p'));
              expect(url.searchParams.get('sslmode'), name).toBe('verify-full');
              if (name === 'herald-keda') continue; // KEDA's own pod: its image's system roots
              const caPath = url.searchParams.get('sslrootcert')!;
              expect(caPath, name).toBe('/var/run/herald/database-ca/ca.pem');
              const ca = manifests.find((m) => m.kind === 'ConfigMap' && m.metadata.name === 'herald-database-ca' && m.metadata.namespace === e.inputs['metadata'].namespace);
              const bundle = (ca?.['data'] as Record<string, string> | undefined)?.['ca.pem'];
              expect(bundle, `${name}: CA bundle in its namespace`).toBeDefined();
              const certs = bundle!.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)!.map((pem) => new X509Certificate(pem));
              expect(certs.map((c) => c.subject.split('\n').find((l) => l.startsWith('CN=')))).toEqual([1, 2, 3, 4].map((n) => `CN=Amazon Root CA ${n}`));
              for (const c of certs) expect(c.ca && c.checkIssued(c)).toBe(true);
              // what node-postgres makes of the URL: the pinned bundle, certificate and host name checked
              const local = path.join(dir, `${name}.pem`);
              writeFileSync(local, bundle!);
              url.searchParams.set('sslrootcert', local);
              const client = new pg.Client({ connectionString: url.toString() });
              const ssl = (client as unknown as { connectionParameters: { ssl: { ca?: string; rejectUnauthorized?: boolean } } }).connectionParameters.ssl;
              expect(ssl.ca, name).toBe(bundle);
              expect(ssl.rejectUnauthorized, name).not.toBe(false);
            }
            // every pod that reads a DATABASE_URL mounts the bundle where it points
            for (const d of run.resources.filter((x) => x.region === r.name && podContainers(x.type, x.inputs))) {
              const spec = d.type === T.cronJob ? d.inputs['spec'].jobTemplate.spec.template.spec : d.inputs['spec'].template.spec;
              const c = spec.containers[0];
              if (!(c.env ?? []).some((x: { name: string }) => x.name === 'DATABASE_URL')) continue;
              const mount = c.volumeMounts.find((m: { mountPath: string }) => m.mountPath === '/var/run/herald/database-ca');
              expect(mount, d.name).toBeDefined();
              expect(spec.volumes.find((v: { name: string }) => v.name === mount.name).configMap, d.name).toEqual({ name: 'herald-database-ca' });
            }
          }
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      });

      it('fronts the writer with a TLS-only RDS Proxy using the rotated RDS-managed secret', () => {
        const proxy = one(run, T.proxy);
        expect(proxy.region).toBe(active);
        expect(proxy.inputs['requireTls']).toBe(true);
        const secretArn = primaryDb().state['masterUserSecrets'][0].secretArn;
        expect(proxy.inputs['auths']).toEqual([expect.objectContaining({ authScheme: 'SECRETS', secretArn })]);
        expect(one(run, T.proxyTarget).inputs['dbInstanceIdentifier']).toBe(primaryDb().state['identifier']);
        const rotation = one(run, T.rotation);
        expect(rotation.inputs['secretId']).toBe(secretArn);
        expect(rotation.inputs['rotationRules'].automaticallyAfterDays).toBe(cfg.database.passwordRotationDays);
      });
    });

    describe('secrets', () => {
      it('gives the api its admin token as a mounted file, never as a plain value', () => {
        const api = ofType(run, 'kubernetes:apps/v1:Deployment').find((d) => d.inputs['metadata']['name'] === 'herald-api');
        const env = api!.inputs['spec']['template']['spec']['containers'][0]['env'] as { name: string; value?: string }[];
        expect(env.find((e) => e.name === 'HERALD_ADMIN_TOKEN_FILE')?.value).toMatch(/herald-admin-token$/);
        expect(env.find((e) => e.name === 'HERALD_ADMIN_TOKEN')).toBeUndefined();
      });

      it('keeps provider credentials in Secrets Manager, KMS-encrypted, replicated to every secondary with its own key', () => {
        const secrets = ofType(run, T.secret);
        expect(secrets.map((s) => s.inputs['name']).sort()).toEqual(
          ['fcm-service-account', 'herald-admin-token', 'loadtest-api-key', 'telnyx-api-key', 'telnyx-public-key'].map((n) => `herald/${stack}/${n}`),
        );
        for (const s of secrets) {
          expect(s.region).toBe(primary);
          expect(arnRegion(s.inputs['kmsKeyId'])).toBe(primary);
          expect(s.inputs['replicas'].map((r: { region: string }) => r.region)).toEqual(secondaries);
          for (const r of s.inputs['replicas']) expect(arnRegion(r.kmsKeyId)).toBe(r.region);
        }
      });

      it('gives each consumer a Secret of its own holding only its DATABASE_URL and the credential files it reads', () => {
        const operatorNs = loadOperatorManifests().namespace;
        const expected: Record<string, { ns: string; keys: string[] }> = {
          'herald-api': { ns: 'herald', keys: ['DATABASE_URL', 'herald-admin-token', 'telnyx-api-key', 'telnyx-public-key'] },
          'herald-worker': { ns: 'herald', keys: ['DATABASE_URL', 'fcm-service-account.json', 'telnyx-api-key'] },
          'herald-migrate': { ns: 'herald', keys: ['DATABASE_URL'] },
          'herald-keda': { ns: 'herald', keys: ['DATABASE_URL'] },
          'herald-operator': { ns: operatorNs, keys: ['DATABASE_URL'] },
        };
        for (const r of cfg.regions) {
          const external = ofType(run, T.externalSecret).filter((e) => e.region === r.name && e.inputs['metadata'].name !== 'herald-loadtest-api-key');
          expect(external.map((e) => e.inputs['metadata'].name).sort()).toEqual(Object.keys(expected).sort());
          for (const e of external) {
            const want = expected[e.inputs['metadata'].name]!;
            expect(e.inputs['metadata'].namespace).toBe(want.ns);
            expect(e.inputs['spec'].target.name).toBe(e.inputs['metadata'].name);
            expect(Object.keys(e.inputs['spec'].target.template.data).sort(), e.inputs['metadata'].name).toEqual(want.keys);
          }
          // each workload references its own Secret and nothing else
          const refsOf = (res: RegisteredResource) => {
            const spec = res.type === T.job ? res.inputs['spec'].template.spec : res.type === T.deployment ? res.inputs['spec'].template.spec : res.inputs['spec'];
            const names = new Set<string>();
            for (const v of spec.volumes ?? []) if (v.secret) names.add(v.secret.secretName);
            for (const c of spec.containers ?? []) for (const e of c.env ?? []) if (e.valueFrom?.secretKeyRef) names.add(e.valueFrom.secretKeyRef.name);
            for (const t of spec.secretTargetRef ?? []) names.add(t.name);
            return [...names].sort();
          };
          expect(refsOf(deployment(r.name, 'herald-api'))).toEqual(['herald-api']);
          for (const color of WORKER_COLORS) expect(refsOf(deployment(r.name, `herald-worker-${color}`))).toEqual(['herald-worker']);
          expect(refsOf(deployment(r.name, 'herald-operator'))).toEqual(['herald-operator']);
          for (const job of inRegion(T.job, r.name)) expect(refsOf(job)).toEqual(['herald-migrate']);
          expect(refsOf(one(run, 'kubernetes:keda.sh/v1alpha1:TriggerAuthentication', (t) => t.region === r.name))).toEqual(['herald-keda']);
          // the files a pod mounts are the ones its Secret has for it, no more
          const mounted = (d: RegisteredResource) => (d.inputs['spec'].template.spec.volumes as { secret?: { items: { key: string }[] } }[]).flatMap((v) => v.secret?.items.map((i) => i.key) ?? []).sort();
          expect(mounted(deployment(r.name, 'herald-api'))).toEqual(['herald-admin-token', 'telnyx-api-key', 'telnyx-public-key']);
          expect(mounted(deployment(r.name, 'herald-worker-blue'))).toEqual(['fcm-service-account.json', 'telnyx-api-key']);
          expect(env(deployment(r.name, 'herald-worker-blue'))['HERALD_ADMIN_TOKEN_FILE']).toBeUndefined();
        }
      });

      it('scopes each ClusterSecretStore to the namespaces that need it, reading through its own IAM role only its own secrets', () => {
        const policyOfServiceAccount = (region: string, account: string): { Resource: string | string[]; Action: string[] }[] => {
          const role = one(run, 'aws:iam/role:Role', (x) => x.region === region && String(x.inputs['assumeRolePolicy']).includes(`system:serviceaccount:external-secrets:${account}`));
          const policy = one(run, 'aws:iam/rolePolicy:RolePolicy', (x) => x.inputs['role'] === `${role.name}-id`);
          return JSON.parse(policy.inputs['policy']).Statement;
        };
        const secretReads = (statements: { Resource: string | string[]; Action: string[] }[]) =>
          statements.filter((st) => st.Action.includes('secretsmanager:GetSecretValue')).flatMap((st) => [st.Resource].flat()).sort();
        const dbSecretArn = one(run, T.rds, (i) => !i.inputs['replicateSourceDb'] && i.region === active).state['masterUserSecrets'][0].secretArn;
        const operatorNs = loadOperatorManifests().namespace;
        for (const r of cfg.regions) {
          const eso = one(run, T.helm, (h) => h.region === r.name && h.inputs['chart'] === 'external-secrets');
          // the controller itself reads nothing: a namespaced SecretStore without auth gets nothing
          expect(eso.inputs['values'].serviceAccount.annotations).toBeUndefined();
          for (const role of ofType(run, 'aws:iam/role:Role')) {
            expect(String(role.inputs['assumeRolePolicy']), role.name).not.toContain('system:serviceaccount:external-secrets:external-secrets');
          }
          const stores = Object.fromEntries(ofType(run, T.secretStore).filter((x) => x.region === r.name).map((x) => [x.inputs['metadata'].name, x.inputs['spec']]));
          expect(Object.keys(stores).sort()).toEqual([`herald-database-${active}`, `herald-loadtest-${r.name}`, `herald-providers-${r.name}`].sort());
          const expectations: [string, string, string[], string[]][] = [
            [`herald-providers-${r.name}`, 'herald-store-providers', ['herald'], ['fcm-service-account', 'herald-admin-token', 'telnyx-api-key', 'telnyx-public-key'].map((n) => `arn:aws:secretsmanager:*:*:secret:herald/${stack}/${n}-*`)],
            [`herald-database-${active}`, 'herald-store-database', ['herald', operatorNs], [dbSecretArn]],
            [`herald-loadtest-${r.name}`, 'herald-store-loadtest', ['herald-loadtest'], [`arn:aws:secretsmanager:*:*:secret:herald/${stack}/loadtest-api-key-*`]],
          ];
          for (const [store, account, namespaces, reads] of expectations) {
            expect(stores[store].conditions, store).toEqual([{ namespaces }]);
            expect(stores[store].provider.aws.auth, store).toEqual({ jwt: { serviceAccountRef: { name: account, namespace: 'external-secrets' } } });
            expect(secretReads(policyOfServiceAccount(r.name, account)), store).toEqual(reads.sort());
          }
          // every ExternalSecret only uses stores that admit its namespace; a tenant namespace is admitted by none
          const admits = (store: string, ns: string) => (stores[store].conditions as { namespaces: string[] }[]).some((c) => c.namespaces.includes(ns));
          for (const e of ofType(run, T.externalSecret).filter((x) => x.region === r.name)) {
            const used = [e.inputs['spec'].secretStoreRef.name, ...e.inputs['spec'].data.flatMap((d: { sourceRef?: { storeRef: { name: string } } }) => (d.sourceRef ? [d.sourceRef.storeRef.name] : []))];
            for (const store of used) expect(admits(store, e.inputs['metadata'].namespace), `${e.inputs['metadata'].name} via ${store}`).toBe(true);
          }
          for (const store of Object.keys(stores)) expect(admits(store, 'grace-church'), store).toBe(false);
          expect(admits(`herald-providers-${r.name}`, 'herald-loadtest')).toBe(false);
          expect(admits(`herald-database-${active}`, 'herald-loadtest')).toBe(false);
          expect(admits(`herald-providers-${r.name}`, operatorNs)).toBe(false);
        }
      });

      it('never exposes a secret value in plain stack outputs or in a Kubernetes object', async () => {
        const plainOutputs = Object.fromEntries(Object.entries(run.outputs).filter(([k]) => !run.secretOutputs.includes(k)));
        const manifests = JSON.stringify([...(await renderKubernetesManifests(stack, run)).values()]);
        for (const value of Object.values(run.secretValues)) {
          expect(JSON.stringify(plainOutputs)).not.toContain(value);
          expect(manifests).not.toContain(value);
        }
        expect(run.secretOutputs).toContain('kubeconfigs');
      });
    });

    describe('ingress', () => {
      it('has per region the load balancer controller (IRSA), an ACM certificate, and an ALB Ingress using it', () => {
        for (const r of cfg.regions) {
          const lbc = one(run, T.helm, (h) => h.region === r.name && h.inputs['chart'] === 'aws-load-balancer-controller');
          expect(lbc.inputs['values'].serviceAccount.annotations['eks.amazonaws.com/role-arn']).toMatch(/^arn:aws:iam:/);
          const cert = one(run, T.cert, (c) => c.region === r.name);
          expect(cert.inputs['domainName']).toBe(cfg.domain.apiHostname);
          const ingress = one(run, T.ingress, (i) => i.region === r.name);
          expect(ingress.inputs['spec'].ingressClassName).toBe('alb');
          expect(arnRegion(ingress.inputs['metadata'].annotations['alb.ingress.kubernetes.io/certificate-arn'])).toBe(r.name);
          expect(ingress.inputs['spec'].rules.map((x: { host: string }) => x.host)).toContain(cfg.domain.apiHostname);
        }
      });

      it('fails the api name over between regions with Route 53 health checks', () => {
        const failover = ofType(run, T.record).filter((rec) => rec.inputs['failoverRoutingPolicies']);
        expect(failover).toHaveLength(2);
        const byRole = Object.fromEntries(failover.map((f) => [f.inputs['failoverRoutingPolicies'][0].type, f]));
        expect(byRole['PRIMARY']!.inputs['setIdentifier']).toBe(active);
        expect(byRole['SECONDARY']!.inputs['setIdentifier']).not.toBe(active);
        const checks = ofType(run, T.healthCheck);
        expect(checks).toHaveLength(cfg.regions.length);
        for (const f of failover) {
          expect(f.inputs['name']).toBe(cfg.domain.apiHostname);
          expect(f.inputs['records'][0]).toBe(`k8s-herald-api-${f.inputs['setIdentifier']}.elb.amazonaws.com`);
          const check = checks.find((c) => c.state['id'] === f.inputs['healthCheckId'] || `${c.name}-id` === f.inputs['healthCheckId']);
          expect(check?.inputs['fqdn']).toBe(`${f.inputs['setIdentifier']}.${cfg.domain.apiHostname}`);
          expect(check?.inputs['resourcePath']).toBe('/readyz');
        }
      });
    });

    describe('workloads', () => {

      it("deploys the operator's own CRD and RBAC files, unchanged, in every cluster", () => {
        const files = loadOperatorManifests();
        const crdFile = readFileSync(path.join(REPO_ROOT, 'operator/config/crd/broadcasts.herald.dev.yaml'), 'utf8');
        expect(crdFile).toContain('broadcasts.herald.dev');
        for (const r of cfg.regions) {
          const objects = run.resources.filter((x) => x.region === r.name && x.name.startsWith(`herald-${stack}-${r.name}-operator-`));
          for (const m of files.manifests) {
            expect(objects.find((o) => o.inputs['kind'] === m.kind && o.inputs['metadata'].name === m.metadata.name)?.inputs).toEqual(m);
          }
        }
      });

      it('runs the operator with two replicas under its own ServiceAccount, and the api with Service and PDBs', () => {
        const files = loadOperatorManifests();
        for (const r of cfg.regions) {
          const op = deployment(r.name, 'herald-operator');
          expect(op.inputs['spec'].replicas).toBe(2);
          expect(op.inputs['metadata'].namespace).toBe(files.namespace);
          expect(op.inputs['spec'].template.spec.serviceAccountName).toBe(files.serviceAccountName);
          expect(env(op)['HERALD_LEASE_NAMESPACE']).toBe(files.namespace);
          expect(env(op)['HERALD_OPERATOR_PORT']).toBe('8082');
          expect(env(op)['POD_NAME']).toEqual({ fieldRef: { fieldPath: 'metadata.name' } });
          expect(container(op).image).toBe(image(cfg.images, 'herald/operator', cfg.images.operatorTag));
          const api = deployment(r.name, 'herald-api');
          expect(api.inputs['spec'].replicas).toBe(cfg.api.replicas);
          expect(container(api).image).toBe(image(cfg.images, 'herald/api', cfg.images.apiTag));
          one(run, T.service, (s) => s.region === r.name && s.inputs['metadata'].name === 'herald-api');
          expect(inRegion(T.pdb, r.name).map((p) => p.inputs['metadata'].name).sort()).toEqual([
            'herald-api',
            'herald-operator',
            'herald-worker-blue',
            'herald-worker-green',
          ]);
        }
      });

      it("runs each service as its image's built entrypoint (plain node, no tsx or npm)", () => {
        const cmds = readFinalStage().targets;
        for (const r of cfg.regions) {
          const expected: [string, string][] = [
            ['herald-api', 'api'],
            ['herald-operator', 'operator'],
            ['herald-worker-blue', 'worker'],
            ['herald-worker-green', 'worker'],
            ['herald-provider-simulator', 'simulator'],
          ];
          for (const [name, target] of expected) {
            expect(cmds[target], `Dockerfile target ${target}`).toBeDefined();
            expect(container(deployment(r.name, name)).command, name).toEqual(cmds[target]);
          }
        }
      });

      it('runs both worker colors with their own image tags and lanes in every region', () => {
        for (const r of cfg.regions) {
          for (const color of WORKER_COLORS) {
            const w = deployment(r.name, `herald-worker-${color}`);
            expect(container(w).image).toBe(image(cfg.images, 'herald/worker', color === 'blue' ? cfg.images.workerBlueTag : cfg.images.workerGreenTag));
            expect(env(w)['HERALD_LANE']).toBe(color);
            expect(env(w)['HERALD_WORKER_PORT']).toBe('8081');
            expect(env(w)['DATABASE_URL']).toEqual({ secretKeyRef: { name: 'herald-worker', key: 'DATABASE_URL' } });
            expect(env(w)['TELNYX_API_KEY_FILE']).toMatch(/^\/var\/run\/secrets\/herald\//);
          }
        }
      });

      it('leaves a worker color\'s image, version and replicas, and its scaler\'s min/max, to the Release controller and KEDA', () => {
        for (const r of cfg.regions) {
          for (const color of WORKER_COLORS) {
            const w = deployment(r.name, `herald-worker-${color}`);
            expect(w.ignoreChanges, w.name).toEqual(expect.arrayContaining(['spec.replicas', 'spec.template.spec.containers[0].image', 'spec.template.metadata.annotations']));
            const so = inRegion(T.scaledObject, r.name).find((x) => x.inputs['metadata'].name === `herald-worker-${color}`)!;
            expect(so.ignoreChanges, so.name).toEqual(expect.arrayContaining(['spec.minReplicaCount', 'spec.maxReplicaCount']));
            // Pulumi owns everything else of them (no broad ignore).
            expect(w.ignoreChanges.every((f) => f !== 'spec' && f !== 'spec.template')).toBe(true);
          }
        }
      });

      it('runs the migration Job in the writer region only, before the workers roll', () => {
        for (const r of cfg.regions) {
          const jobs = inRegion(T.job, r.name);
          if (r.name !== active) {
            expect(jobs).toHaveLength(0);
            continue;
          }
          expect(jobs).toHaveLength(1);
          expect(container(jobs[0]!).command).toEqual(['node', 'dist/scripts/migrate.js']);
          for (const color of WORKER_COLORS) expect(deployment(r.name, `herald-worker-${color}`).dependsOn).toContain(jobs[0]!.name);
        }
      });

      it('scales workers on pg-boss queue depth with KEDA, and keeps standby regions at zero, paused', () => {
        for (const r of cfg.regions) {
          one(run, T.helm, (h) => h.region === r.name && h.inputs['chart'] === 'keda');
          for (const color of WORKER_COLORS) {
            const so = one(run, T.scaledObject, (s) => s.region === r.name && s.inputs['metadata'].name === `herald-worker-${color}`);
            expect(so.inputs['spec'].scaleTargetRef.name).toBe(`herald-worker-${color}`);
            expect(so.inputs['spec'].triggers[0]).toMatchObject({ type: 'postgresql', metadata: { query: QUEUE_DEPTH_QUERY } });
            expect(so.inputs['spec'].maxReplicaCount).toBe(cfg.workers.maxReplicas);
            const paused = so.inputs['metadata'].annotations?.['autoscaling.keda.sh/paused-replicas'];
            const replicas = deployment(r.name, `herald-worker-${color}`).inputs['spec'].replicas;
            if (r.name === active) {
              expect(paused).toBeUndefined();
              expect(replicas).toBeUndefined();
            } else {
              expect(paused).toBe('0');
              expect(replicas).toBe(0);
            }
          }
        }
      });

      it('sets CPU and memory limits on every container', () => {
        const podBearing = run.resources.filter((r) => podContainers(r.type, r.inputs));
        expect(podBearing.length).toBeGreaterThan(0);
        for (const r of podBearing) {
          for (const c of podContainers(r.type, r.inputs)!) {
            expect(c.resources?.limits, `${r.name}/${c.name}`).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
          }
        }
      });
    });

    describe('load testing', () => {
      const LOADTEST_NS = 'herald-loadtest';
      const SA_MOUNT = '/var/run/secrets/kubernetes.io/serviceaccount';
      const cronIn = (region: string) => one(run, T.cronJob, (c) => c.region === region);
      const k6Pod = (cron: RegisteredResource) => cron.inputs['spec'].jobTemplate.spec.template.spec;

      it('runs k6 on a schedule against the synthetic tenant, failing the Job on a failed threshold', () => {
        for (const r of cfg.regions) {
          const cron = cronIn(r.name);
          expect(cron.inputs['spec'].schedule).toBe(cfg.loadTest.schedule);
          expect(cron.inputs['spec'].suspend).toBe(r.name !== active);
          const job = cron.inputs['spec'].jobTemplate.spec;
          expect(job.backoffLimit).toBe(0);
          expect(job.podFailurePolicy.rules[0]).toEqual({ action: 'FailJob', onExitCodes: { operator: 'In', values: [99] } });
          const c = podContainers(cron.type, cron.inputs)![0]!;
          expect(c.image).toBe(image(cfg.images, 'grafana/k6', cfg.images.k6Tag));
          expect(Object.fromEntries(c.env!.map((e) => [e.name, e.value]))).toMatchObject({ HERALD_TENANT: 'k6-synthetic' });
          expect(cfg.loadTest.tenant).toBe('k6-synthetic');
          expect(c.resources?.limits).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
        }
      });

      it('deploys loadtests/k8s/loadtest-rbac.yaml itself: Namespace, ServiceAccount, and a Role on broadcasts scoped to that namespace', () => {
        const files = loadManifestFiles([LOADTEST_RBAC_FILE]);
        expect(loadLoadTestRbac()).toMatchObject({ namespace: LOADTEST_NS, serviceAccountName: 'herald-loadtest' });
        for (const r of cfg.regions) {
          const objects = run.resources.filter((x) => x.region === r.name && x.name.startsWith(`herald-${stack}-${r.name}-loadtest-rbac-`));
          expect(objects).toHaveLength(files.length);
          for (const m of files) {
            expect(objects.find((o) => o.inputs['kind'] === m.kind && o.inputs['metadata'].name === m.metadata.name)?.inputs).toEqual(m);
          }
          one(run, T.namespace, (n) => n.region === r.name && n.inputs['metadata'].name === LOADTEST_NS);
          const sa = one(run, T.serviceAccount, (x) => x.region === r.name && x.inputs['metadata'].namespace === LOADTEST_NS);
          const role = one(run, T.role, (x) => x.region === r.name && x.inputs['metadata'].namespace === LOADTEST_NS);
          // broadcasts.herald.dev only, no wildcard; what capacity.js does: create, list (watch/probe), deletecollection (teardown)
          expect(role.inputs['rules']).toHaveLength(1);
          const rule = role.inputs['rules'][0];
          expect(rule.apiGroups).toEqual(['herald.dev']);
          expect(rule.resources).toEqual(['broadcasts']);
          expect(rule.verbs).toEqual(expect.arrayContaining(['create', 'list', 'deletecollection']));
          for (const v of rule.verbs) expect(['create', 'get', 'list', 'delete', 'deletecollection']).toContain(v);
          expect(rule.resourceNames).toBeUndefined();
          const binding = one(run, T.roleBinding, (x) => x.region === r.name && x.inputs['metadata'].namespace === LOADTEST_NS);
          expect(binding.inputs['roleRef']).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role.inputs['metadata'].name });
          expect(binding.inputs['subjects']).toEqual([{ kind: 'ServiceAccount', name: sa.inputs['metadata'].name, namespace: LOADTEST_NS }]);
          // nothing cluster-wide for the load-test identity
          for (const crb of inRegion(T.clusterRoleBinding, r.name)) {
            for (const subj of crb.inputs['subjects'] ?? []) expect(subj.namespace, crb.name).not.toBe(LOADTEST_NS);
          }
        }
      });

      it('runs k6 in the load-test namespace as its ServiceAccount, with a projected token and the API server CA', () => {
        for (const r of cfg.regions) {
          const cron = cronIn(r.name);
          expect(cron.inputs['metadata'].namespace).toBe(LOADTEST_NS);
          const pod = k6Pod(cron);
          expect(pod.serviceAccountName).toBe('herald-loadtest');
          const c = podContainers(cron.type, cron.inputs)![0]!;
          const mount = (c as { volumeMounts: { name: string; mountPath: string }[] }).volumeMounts.find((m) => m.mountPath === SA_MOUNT);
          const projected = mount ? pod.volumes.find((v: { name: string }) => v.name === mount.name)?.projected : undefined;
          if (pod.automountServiceAccountToken === false) {
            expect(projected, 'no token: automount off and no projected token volume').toBeDefined();
            const sources = projected.sources as Record<string, any>[];
            const token = sources.find((x) => x['serviceAccountToken'])?.['serviceAccountToken'];
            expect(token?.path).toBe('token');
            // k6 reads the token once: it must outlive the Job
            expect(token?.expirationSeconds).toBeGreaterThan(cron.inputs['spec'].jobTemplate.spec.activeDeadlineSeconds);
            expect(sources.find((x) => x['configMap'])?.['configMap']).toMatchObject({ name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] });
          } else {
            expect(pod.automountServiceAccountToken).toBe(true);
          }
          const cm = one(run, T.configMap, (x) => x.region === r.name && x.inputs['metadata'].name === 'herald-k6-scripts');
          expect(cm.inputs['metadata'].namespace).toBe(LOADTEST_NS);
        }
      });

      it('gives k6 the Kubernetes API, its CA, the api Service and the load-test namespace', () => {
        for (const r of cfg.regions) {
          const e = env(cronIn(r.name));
          expect(e['HERALD_KUBE_API']).toBe('https://kubernetes.default.svc');
          expect(e['HERALD_NAMESPACE']).toBe(LOADTEST_NS);
          expect(e['SSL_CERT_FILE']).toBe(`${SA_MOUNT}/ca.crt`);
          expect(e['HERALD_KUBE_TOKEN_FILE']).toBe(`${SA_MOUNT}/token`);
          expect(e['HERALD_KUBE_TOKEN']).toBeUndefined();
          expect(e['HERALD_API_URL']).toBe('http://herald-api.herald.svc.cluster.local');
          one(run, T.service, (s) => s.region === r.name && s.inputs['metadata'].name === 'herald-api' && s.inputs['metadata'].namespace === 'herald');
        }
      });

      it("gives k6 the synthetic tenant's api key from a Secret fed by External Secrets, never as a literal", () => {
        for (const r of cfg.regions) {
          const c = podContainers(T.cronJob, cronIn(r.name).inputs)![0]!;
          const key = c.env!.find((x) => x.name === 'HERALD_API_KEY');
          expect(key?.value).toBeUndefined();
          expect(key?.valueFrom).toEqual({ secretKeyRef: { name: 'herald-loadtest-api-key', key: 'api-key' } });
          for (const x of c.env!) if (/TOKEN|KEY|SECRET|PASSWORD/.test(x.name) && !/_FILE$/.test(x.name)) expect(x.value, x.name).toBeUndefined();
          const es = one(run, T.externalSecret, (x) => x.region === r.name && x.inputs['metadata'].name === 'herald-loadtest-api-key');
          expect(es.inputs['metadata'].namespace).toBe(LOADTEST_NS);
          expect(es.inputs['spec'].secretStoreRef).toEqual({ kind: 'ClusterSecretStore', name: `herald-loadtest-${r.name}` });
          expect(es.inputs['spec'].target.name).toBe('herald-loadtest-api-key');
          expect(es.inputs['spec'].data).toEqual([{ secretKey: 'api-key', remoteRef: { key: `herald/${stack}/loadtest-api-key` } }]);
        }
      });

      it("ships the k6 script file as a ConfigMap and routes the synthetic tenant's sends to the in-cluster simulator", () => {
        const script = readFileSync(path.join(REPO_ROOT, cfg.loadTest.scriptPath), 'utf8');
        for (const r of cfg.regions) {
          const cm = one(run, T.configMap, (c) => c.region === r.name && c.inputs['metadata'].name === 'herald-k6-scripts');
          expect(cm.inputs['data']['capacity.js']).toBe(script);
          const sim = deployment(r.name, 'herald-provider-simulator');
          expect(container(sim).image).toBe(image(cfg.images, 'herald/simulator', cfg.images.simulatorTag));
          for (const color of WORKER_COLORS) {
            const e = env(deployment(r.name, `herald-worker-${color}`));
            expect(e['HERALD_SIMULATED_TENANTS']).toBe(cfg.loadTest.tenant);
            expect(e['HERALD_SIMULATOR_URL']).toBe('http://herald-provider-simulator.herald.svc.cluster.local');
          }
        }
      });
    });

    describe('alerting', () => {
      it('sends alarms of every database instance (CPU, connections, storage, replica lag) to the configured targets', () => {
        for (const r of cfg.regions) {
          const topic = one(run, 'aws:sns/topic:Topic', (t) => t.region === r.name);
          // CloudWatch cannot publish to a topic under the AWS-managed alias/aws/sns key.
          const key = one(run, 'aws:kms/key:Key', (k) => k.state['arn'] === topic.inputs['kmsMasterKeyId']);
          const keyPolicy = one(run, 'aws:kms/keyPolicy:KeyPolicy', (p) => p.inputs['keyId'] === key.state['keyId'] || p.inputs['keyId'] === key.state['id']);
          const statements = (JSON.parse(keyPolicy.inputs['policy']) as { Statement: { Principal: { Service?: string[] }; Action: string[] | string }[] }).Statement;
          expect(statements.find((x) => x.Principal.Service?.includes('cloudwatch.amazonaws.com'))?.Action).toEqual(['kms:Decrypt', 'kms:GenerateDataKey*']);
          const subs = ofType(run, 'aws:sns/topicSubscription:TopicSubscription').filter((x) => x.region === r.name);
          expect(subs.map((x) => x.inputs['endpoint'])).toEqual(cfg.alerting.emails);
          for (const sub of subs) expect(sub.inputs['topic']).toBe(topic.state['arn']);
          const alarms = ofType(run, 'aws:cloudwatch/metricAlarm:MetricAlarm').filter((a) => a.region === r.name);
          for (const db of ofType(run, T.rds).filter((i) => i.region === r.name)) {
            const mine = alarms.filter((a) => a.inputs['dimensions'].DBInstanceIdentifier === db.state['identifier']);
            const metrics = mine.map((a) => a.inputs['metricName']);
            expect(metrics).toEqual(expect.arrayContaining(['CPUUtilization', 'DatabaseConnections', 'FreeStorageSpace']));
            expect(metrics.includes('ReplicaLag')).toBe(Boolean(db.inputs['replicateSourceDb']));
            expect(mine.find((a) => a.inputs['metricName'] === 'CPUUtilization')!.inputs['threshold']).toBe(90);
            for (const a of mine) expect(a.inputs['alarmActions']).toEqual([topic.state['arn']]);
          }
        }
      });

      it('alarms when a day passes without a finished automated backup of the writer', () => {
        const writers = ofType(run, T.rds).filter((i) => !i.inputs['replicateSourceDb']);
        expect(writers.length).toBeGreaterThan(0);
        for (const db of writers) {
          const rule = one(run, 'aws:cloudwatch/eventRule:EventRule', (x) => x.region === db.region && JSON.parse(x.inputs['eventPattern']).detail.SourceIdentifier[0] === db.state['identifier']);
          expect(JSON.parse(rule.inputs['eventPattern'])).toEqual({ source: ['aws.rds'], 'detail-type': ['RDS DB Instance Event'], detail: { EventID: [BACKUP_FINISHED_EVENT], SourceIdentifier: [db.state['identifier']] } });
          const alarm = one(run, 'aws:cloudwatch/metricAlarm:MetricAlarm', (a) => a.inputs['dimensions'].RuleName === rule.state['name']);
          expect(alarm.inputs).toMatchObject({ namespace: 'AWS/Events', metricName: 'TriggeredRules', period: 86_400, threshold: 1, comparisonOperator: 'LessThanThreshold', treatMissingData: 'breaching' });
          expect(alarm.inputs['alarmActions']).toEqual([one(run, 'aws:sns/topic:Topic', (t) => t.region === db.region).state['arn']]);
          expect(one(run, 'aws:cloudwatch/eventTarget:EventTarget', (t) => t.inputs['rule'] === rule.state['name']).region).toBe(db.region);
        }
        // replicas take no backups of their own: no backup alarm on them
        const rules = ofType(run, 'aws:cloudwatch/eventRule:EventRule').filter((x) => x.inputs['eventPattern']?.includes(BACKUP_FINISHED_EVENT));
        expect(rules).toHaveLength(writers.length);
      });

      it("outputs each region's alert topic (where loadtest.yml pages a failed k6 run)", () => {
        const topics = run.outputs['alertTopicArns'] as Record<string, string>;
        expect(Object.keys(topics).sort()).toEqual(cfg.regions.map((r) => r.name).sort());
        for (const r of cfg.regions) expect(topics[r.name]).toBe(one(run, 'aws:sns/topic:Topic', (t) => t.region === r.name).state['arn']);
      });
    });

    describe('exposure (issue 10)', () => {
      it('routes only /v1, /webhooks and /readyz from the public load balancer: /admin, /metrics and the rest are not reachable through it', () => {
        for (const r of cfg.regions) {
          const ingress = one(run, T.ingress, (i) => i.region === r.name);
          for (const path of ['/v1/contacts', '/v1', '/webhooks/telnyx', '/readyz']) expect(ingressBackend(ingress.inputs['spec'], path), path).toBe('herald-api');
          for (const path of ['/admin/tenants', '/admin', '/metrics', '/', '/healthz', '/openapi.json', '/v1x', '/readyz/x', '/webhooksx']) {
            expect(ingressBackend(ingress.inputs['spec'], path), path).toBeUndefined();
          }
        }
      });

      it("labels Herald's namespaces to enforce the restricted Pod Security Standard", () => {
        for (const r of cfg.regions) {
          for (const name of ['herald', loadOperatorManifests().namespace, 'herald-loadtest']) {
            const ns = one(run, T.namespace, (n) => n.region === r.name && n.inputs['metadata'].name === name);
            expect(ns.inputs['metadata'].labels['pod-security.kubernetes.io/enforce'], name).toBe('restricted');
          }
        }
      });

      it('turns on the VPC CNI network policy agent, so NetworkPolicies are enforced', () => {
        for (const r of cfg.regions) {
          const addon = one(run, T.eksAddon, (a) => a.region === r.name && a.inputs['addonName'] === 'vpc-cni');
          expect(JSON.parse(addon.inputs['configurationValues'])).toMatchObject({ enableNetworkPolicy: 'true' });
        }
      });

      it('admits exactly the flows Herald needs (NetworkPolicies evaluated connection by connection)', async () => {
        const byRegion = await renderKubernetesManifests(stack, run);
        const operatorNs = loadOperatorManifests().namespace;
        for (const r of cfg.regions) {
          const policies = parsePolicies(byRegion.get(r.name)!);
          const { privateCidrs, publicCidrs } = subnetCidrs(r.vpcCidr, 3);
          const host = (cidr: string, n: number) => cidr.replace(/\.0\/\d+$/, `.${n}`);
          const podIp = host(privateCidrs[0]!, 10);
          const pod = (namespace: string, component: string): Endpoint => ({ pod: { namespace, labels: { 'app.kubernetes.io/name': 'herald', 'app.kubernetes.io/component': component }, ip: podIp } });
          const api = pod('herald', 'api');
          const worker: Endpoint = { pod: { namespace: 'herald', labels: { 'app.kubernetes.io/name': 'herald', 'app.kubernetes.io/component': 'worker', 'herald.dev/lane': 'blue' }, ip: podIp } };
          const operator = pod(operatorNs, 'operator');
          const migrate = pod('herald', 'migrate');
          const simulator = pod('herald', 'provider-simulator');
          const k6 = pod('herald-loadtest', 'load-test');
          const prometheus: Endpoint = { pod: { namespace: MONITORING_NAMESPACE, labels: { app: 'prometheus' }, ip: podIp } };
          const tenantPod: Endpoint = { pod: { namespace: 'grace-church', labels: { app: 'anything' }, ip: podIp } };
          const dns: Endpoint = { pod: { namespace: 'kube-system', labels: { 'k8s-app': 'kube-dns' }, ip: podIp } };
          const loadBalancer: Endpoint = { ip: host(publicCidrs[0]!, 5) };
          const internet: Endpoint = { ip: '203.0.113.7' }; // Telnyx, FCM, or anyone's server
          const imds: Endpoint = { ip: '169.254.169.254' };
          const otherRegion = cfg.regions.find((x) => x.name !== r.name)!;
          const databases: Endpoint[] = [{ ip: host(privateCidrs[1]!, 4) }, { ip: host(subnetCidrs(otherRegion.vpcCidr, 3).privateCidrs[0]!, 4) }];
          const kubeApi: Endpoint = { ip: host(privateCidrs[2]!, 9) };
          const ok = (from: Endpoint, to: Endpoint, port: number, why: string) => expect(allowed(policies, from, to, port), `${r.name}: ${why}`).toBe(true);
          const no = (from: Endpoint, to: Endpoint, port: number, why: string) => expect(allowed(policies, from, to, port), `${r.name}: ${why}`).toBe(false);

          for (const [name, p] of [['api', api], ['worker', worker], ['operator', operator], ['migrate', migrate], ['simulator', simulator], ['k6', k6]] as const) {
            expect(allowed(policies, p, dns, 53, 'UDP'), `${name} resolves names`).toBe(true);
            no(p, imds, 80, `${name} reaches the instance metadata service`);
            no(tenantPod, p, PORTS.api, `a pod of a tenant namespace reaches ${name}`);
          }
          for (const db of databases) {
            for (const [name, p] of [['api', api], ['worker', worker], ['operator', operator], ['migrate', migrate]] as const) ok(p, db, 5432, `${name} -> PostgreSQL`);
            no(simulator, db, 5432, 'simulator -> PostgreSQL');
            no(k6, db, 5432, 'k6 -> PostgreSQL');
          }
          ok(worker, internet, 443, 'worker -> Telnyx / FCM');
          ok(api, internet, 443, 'api -> Telnyx (HELP replies)');
          no(worker, internet, 80, 'worker -> plain http on the internet');
          no(operator, internet, 443, 'operator -> the internet');
          ok(operator, kubeApi, 443, 'operator -> Kubernetes API');
          ok(k6, kubeApi, 443, 'k6 -> Kubernetes API');
          no(api, kubeApi, 443, 'api -> Kubernetes API');

          ok(loadBalancer, api, PORTS.api, 'load balancer -> api');
          no(loadBalancer, worker, PORTS.worker, 'load balancer -> worker');
          no(loadBalancer, operator, PORTS.operator, 'load balancer -> operator');
          no(internet, api, PORTS.api, 'the internet -> api, past the load balancer');
          ok(k6, api, PORTS.api, 'k6 -> api');
          for (const [p, port, name] of [[api, PORTS.api, 'api'], [worker, PORTS.worker, 'worker'], [operator, PORTS.operator, 'operator']] as const) {
            ok(prometheus, p, port, `Prometheus scrapes ${name}`);
          }
          no(tenantPod, api, PORTS.api, 'a tenant namespace pod -> api /admin');

          ok(worker, simulator, PORTS.simulator, 'worker -> simulator (Telnyx API)');
          ok(worker, simulator, PORTS.simulator + 1, 'worker -> simulator (FCM)');
          no(api, simulator, PORTS.simulator, 'api -> simulator');
          no(k6, simulator, PORTS.simulator, 'k6 -> simulator admin routes');
          no(loadBalancer, simulator, PORTS.simulator, 'load balancer -> simulator');
          ok(simulator, api, PORTS.api, 'simulator -> api webhooks');
          no(simulator, internet, 443, 'simulator (redeliver) -> an arbitrary https URL');
          no(simulator, internet, 80, 'simulator (redeliver) -> an arbitrary http URL');
          no(simulator, worker, PORTS.worker, 'simulator -> worker');
          no(simulator, kubeApi, 443, 'simulator -> Kubernetes API');

          const simService = one(run, T.service, (x) => x.region === r.name && x.inputs['metadata'].name === 'herald-provider-simulator');
          expect(simService.inputs['spec'].type).toBe('ClusterIP');
          expect(env(deployment(r.name, 'herald-provider-simulator'))['HERALD_SIMULATOR_ADMIN_ROUTES']).toBe('off');
        }
      });
    });

    describe('monitoring (issue 17)', () => {
      const crs = (region: string, kind: 'PodMonitor' | 'PrometheusRule') => inRegion(`kubernetes:monitoring.coreos.com/v1:${kind}`, region);

      it('installs the pinned kube-prometheus-stack in namespace monitoring of every cluster, selecting every PodMonitor and rule', () => {
        for (const r of cfg.regions) {
          const chart = one(run, T.helm, (h) => h.region === r.name && h.inputs['chart'] === 'kube-prometheus-stack');
          expect(chart.inputs).toMatchObject({ version: KUBE_PROMETHEUS_STACK_CHART_VERSION, namespace: MONITORING_NAMESPACE, atomic: true });
          expect(chart.inputs['repositoryOpts'].repo).toBe('https://prometheus-community.github.io/helm-charts');
          expect(chart.inputs['values'].prometheus.prometheusSpec).toMatchObject({ podMonitorSelectorNilUsesHelmValues: false, ruleSelectorNilUsesHelmValues: false });
          expect(chart.dependsOn.some((d) => one(run, T.namespace, (n) => n.region === r.name && n.inputs['metadata'].name === MONITORING_NAMESPACE).name === d)).toBe(true);
        }
      });

      it('scrapes the api, workers and operator under the job labels the alerts select on, matching their pods and port', () => {
        for (const r of cfg.regions) {
          const monitors = crs(r.name, 'PodMonitor');
          expect(monitors.map((m) => m.inputs['metadata'].name).sort()).toEqual([...HERALD_JOBS].sort());
          const templates = inRegion(T.deployment, r.name).map((d) => d.inputs['spec'].template);
          for (const m of monitors) {
            const { selector, podMetricsEndpoints } = m.inputs['spec'];
            expect(podMetricsEndpoints[0].relabelings).toContainEqual({ targetLabel: 'job', replacement: m.inputs['metadata'].name, action: 'replace' });
            const pods = templates.filter((t) => Object.entries(selector.matchLabels as Record<string, string>).every(([k, v]) => t.metadata.labels?.[k] === v));
            expect(pods.length, `${m.inputs['metadata'].name} selects a Deployment's pods`).toBeGreaterThan(0);
            for (const t of pods) {
              expect(t.spec.containers.some((c: { ports?: { name: string }[] }) => c.ports?.some((p) => p.name === podMetricsEndpoints[0].port))).toBe(true);
            }
            const ns = m.inputs['metadata'].namespace;
            for (const d of inRegion(T.deployment, r.name).filter((x) => pods.includes(x.inputs['spec'].template))) expect(d.inputs['metadata'].namespace).toBe(ns);
          }
        }
      });

      it('deploys the alerting rules as a PrometheusRule, each linking its runbook', () => {
        for (const r of cfg.regions) {
          const [rule] = crs(r.name, 'PrometheusRule');
          expect(rule!.inputs['metadata'].namespace).toBe(MONITORING_NAMESPACE);
          const rules = rule!.inputs['spec'].groups.flatMap((g: { rules: { alert: string; annotations: Record<string, string> }[] }) => g.rules);
          expect(rules.map((x: { alert: string }) => x.alert)).toEqual(ALERTS.map((a) => a.alert));
          for (const x of rules) expect(x.annotations['runbook']).toMatch(/^runbooks\/[a-z-]+\.md(#[a-z0-9-]+)?$/);
        }
      });

      it('routes every alert from Alertmanager to the SNS topic of its region, signing with a role only its service account can assume', () => {
        for (const r of cfg.regions) {
          const chart = one(run, T.helm, (h) => h.region === r.name && h.inputs['chart'] === 'kube-prometheus-stack');
          const topic = one(run, 'aws:sns/topic:Topic', (t) => t.region === r.name);
          const am = chart.inputs['values'].alertmanager;
          expect(am.serviceAccount.name).toBe(ALERTMANAGER_SERVICE_ACCOUNT);
          const receivers = am.config.receivers as { name: string; sns_configs: { topic_arn: string; sigv4: { region: string } }[] }[];
          expect(receivers.map((x) => x.name).sort()).toEqual([am.config.route.receiver, ...am.config.route.routes.map((x: { receiver: string }) => x.receiver)].sort());
          for (const x of receivers) expect(x.sns_configs).toEqual([expect.objectContaining({ topic_arn: topic.state['arn'], sigv4: { region: r.name } })]);
          const role = one(run, 'aws:iam/role:Role', (x) => x.region === r.name && x.name.endsWith('-alertmanager-irsa'));
          expect(am.serviceAccount.annotations['eks.amazonaws.com/role-arn']).toBe(role.state['arn']);
          const trust = JSON.parse(role.inputs['assumeRolePolicy']) as { Statement: { Condition: { StringEquals: Record<string, string> } }[] };
          expect(Object.values(trust.Statement[0]!.Condition.StringEquals)).toContain(`system:serviceaccount:${MONITORING_NAMESPACE}:${ALERTMANAGER_SERVICE_ACCOUNT}`);
          const policy = one(run, 'aws:iam/rolePolicy:RolePolicy', (x) => x.region === r.name && x.name.endsWith('-alertmanager-irsa'));
          expect(JSON.parse(policy.inputs['policy']).Statement[0]).toEqual({ Effect: 'Allow', Action: ['sns:Publish'], Resource: topic.state['arn'] });
        }
      });

      it('deploys each dashboard as a ConfigMap the Grafana sidecar loads', () => {
        for (const r of cfg.regions) {
          const maps = inRegion(T.configMap, r.name).filter((c) => c.inputs['metadata'].labels?.[GRAFANA_DASHBOARD_LABEL] === '1');
          expect(maps.map((c) => c.inputs['metadata'].namespace)).toEqual(maps.map(() => MONITORING_NAMESPACE));
          const uids = maps.map((c) => Object.values(c.inputs['data'] as Record<string, string>).map((j) => (JSON.parse(j) as { uid: string }).uid)[0]);
          expect(uids.sort()).toEqual(Object.keys(dashboards()).sort());
        }
      });
    });

    describe('AWS hardening (issue 10)', () => {
      it('opens each EKS public endpoint only to the configured networks, never 0.0.0.0/0', () => {
        for (const r of cfg.regions) {
          const eks = one(run, T.eks, (c) => c.region === r.name);
          expect(eks.inputs['vpcConfig'].publicAccessCidrs).toEqual(cfg.cluster.publicAccessCidrs);
          for (const c of eks.inputs['vpcConfig'].publicAccessCidrs) expect(c).not.toMatch(/\/0$/);
        }
      });

      it('launches every node from a template that requires IMDSv2 with a hop limit of 1', () => {
        for (const r of cfg.regions) {
          for (const group of ofType(run, T.nodeGroup).filter((g) => g.region === r.name)) {
            const template = one(run, 'aws:ec2/launchTemplate:LaunchTemplate', (t) => `${t.name}-id` === group.inputs['launchTemplate']?.id);
            expect(template.region).toBe(r.name);
            expect(template.inputs['metadataOptions']).toEqual({ httpEndpoint: 'enabled', httpTokens: 'required', httpPutResponseHopLimit: 1 });
          }
        }
      });

      it("gives the load balancer controller named actions only, changing or deleting only what carries its cluster tag", () => {
        for (const r of cfg.regions) {
          const role = one(run, 'aws:iam/role:Role', (x) => x.region === r.name && String(x.inputs['assumeRolePolicy']).includes('system:serviceaccount:kube-system:aws-load-balancer-controller'));
          const statements = JSON.parse(one(run, 'aws:iam/rolePolicy:RolePolicy', (x) => x.inputs['role'] === `${role.name}-id`).inputs['policy']).Statement as {
            Action: string[];
            Condition?: Record<string, Record<string, unknown>>;
          }[];
          const grants = (action: string) => statements.filter((st) => st.Action.includes(action));
          for (const st of statements) for (const a of st.Action) expect(a, a).not.toMatch(/(^|:)\*$/);
          for (const action of ['elasticloadbalancing:DeleteLoadBalancer', 'elasticloadbalancing:DeleteTargetGroup', 'elasticloadbalancing:ModifyLoadBalancerAttributes', 'elasticloadbalancing:SetSecurityGroups', 'ec2:DeleteSecurityGroup']) {
            expect(grants(action).length, action).toBeGreaterThan(0);
            for (const st of grants(action)) expect(st.Condition?.['Null']?.['aws:ResourceTag/elbv2.k8s.aws/cluster'], action).toBe('false');
          }
          for (const action of ['elasticloadbalancing:CreateLoadBalancer', 'elasticloadbalancing:CreateTargetGroup']) {
            for (const st of grants(action)) expect(st.Condition?.['Null']?.['aws:RequestTag/elbv2.k8s.aws/cluster'], action).toBe('false');
          }
        }
      });

      it("pulls every image from the stack's registry (production: by digest)", () => {
        const pods = run.resources.filter((r) => podContainers(r.type, r.inputs));
        expect(cfg.images.registry).toMatch(/\.dkr\.ecr\./);
        for (const r of pods) {
          for (const c of podContainers(r.type, r.inputs)!) {
            expect(c.image!.startsWith(`${cfg.images.registry}/`), `${r.name}: ${c.image}`).toBe(true);
            if (stack === 'production') expect(c.image, r.name).toMatch(/@sha256:[0-9a-f]{64}$/);
          }
        }
      });
    });

    describe('naming and tagging', () => {
      it('names every resource herald-<stack>-<region>-<thing>, in the region of its provider', () => {
        const regions = cfg.regions.map((r) => r.name);
        for (const r of run.resources) {
          const m = new RegExp(`^herald-${stack}-(${regions.join('|')})-[a-z0-9]`).exec(r.name);
          expect(m, r.name).not.toBeNull();
          // Route 53 is global: its records are named after the region they serve
          if (r.custom && !r.type.startsWith('aws:route53/') && r.region) expect(m![1], r.name).toBe(r.region);
        }
      });

      it('creates every AWS and Kubernetes resource through an explicit regional provider', () => {
        for (const r of run.resources.filter((x) => x.custom && !x.type.startsWith('pulumi:providers:'))) {
          expect(r.providerName, r.name).toMatch(new RegExp(`^herald-${stack}-[a-z0-9-]+-(aws|k8s)$`));
        }
        expect(run.config['pulumi:disable-default-providers']).toBe(JSON.stringify(['aws', 'kubernetes']));
      });
    });
  });

  return { run: () => run, cfg: () => cfg };
}
