/**
 * PostgreSQL on RDS across the stack's regions.
 *
 * Primary region: a Multi-AZ primary (customer-managed KMS key, automated backups with
 * point-in-time recovery, Performance Insights, a parameter group with connection limits
 * and slow-query logging, master password managed and rotated by RDS in Secrets Manager)
 * and in-region read replicas spread over the availability zones.
 * Each secondary region: a cross-region read replica naming its source by ARN and
 * encrypted with a KMS key of its own region. The primary's automated backups are
 * replicated into the first secondary region.
 * The active (writer) region gets an RDS Proxy so autoscaled workers stay inside the
 * connection budget. Failing over = setting `failover.activeRegion`: that region's replica
 * is promoted (its replication source removed) and receives the proxy.
 */
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';
import type { StackConfig } from './config.js';
import type { Network } from './network.js';
import { inRegion, type RegionContext } from './region.js';

export const DATABASE_NAME = 'herald';
export const DATABASE_PORT = 5432;

export interface DatabaseRegion {
  ctx: RegionContext;
  network: Network;
}

export interface DatabaseArgs {
  primary: DatabaseRegion;
  secondaries: DatabaseRegion[];
  settings: StackConfig['database'];
  /** The clusters that connect: per region, the security group of its nodes and pods, and its private subnets. */
  clients: DatabaseClient[];
}

export interface DatabaseClient {
  region: string;
  /** EKS's cluster security group: managed nodes carry it, and pods use their node's ENIs. */
  securityGroupId: pulumi.Input<string>;
  /** Where that cluster's nodes and pods are (security groups cannot be referenced across regions). */
  privateCidrs: string[];
}

/** Where pods find the CA bundle DATABASE_URL names (sslmode=verify-full&sslrootcert=...). */
export const DATABASE_CA_MOUNT = '/var/run/herald/database-ca';
export const DATABASE_CA_FILE = 'ca.pem';
export const DATABASE_CA_CONFIGMAP = 'herald-database-ca';

/**
 * The CAs the database's TLS certificate chains to. Herald connects through RDS Proxy,
 * whose certificate is issued by ACM and chains to the Amazon Root CAs (1-4), taken from
 * the Mozilla store Node ships; a direct instance connection would need the RDS CA bundle
 * (global-bundle.pem) instead.
 */
export function databaseCaBundle(): string {
  const amazon = tls.rootCertificates.filter((pem) => /^CN=Amazon Root CA [1-4]$/m.test(new X509Certificate(pem).subject));
  if (amazon.length !== 4) throw new Error(`expected the 4 Amazon Root CAs in Node's root store, found ${amazon.length}`);
  return `${amazon.join('\n')}\n`;
}

export interface DatabaseInstanceInfo {
  region: string;
  role: 'primary' | 'replica' | 'cross-region-replica' | 'promoted';
  identifier: pulumi.Output<string>;
}

export interface DatabaseWriter {
  region: string;
  /** RDS Proxy endpoint: what applications connect to. */
  proxyEndpoint: pulumi.Output<string>;
  /** ARN of the RDS-managed (and rotated) master user secret. */
  secretArn: pulumi.Output<string>;
}

interface RegionalBase {
  key: aws.kms.Key;
  subnetGroup: aws.rds.SubnetGroup;
  securityGroup: aws.ec2.SecurityGroup;
  parameterGroup: aws.rds.ParameterGroup;
  monitoringRole: aws.iam.Role;
}

export class Database extends pulumi.ComponentResource {
  readonly writer: DatabaseWriter;
  readonly instances: DatabaseInstanceInfo[] = [];
  readonly primaryArn: pulumi.Output<string>;
  readonly keyArns: Record<string, pulumi.Output<string>> = {};
  readonly readerEndpoints: Record<string, pulumi.Output<string>[]> = {};

  constructor(name: string, args: DatabaseArgs, opts?: pulumi.ComponentResourceOptions) {
    super('herald:platform:Database', name, {}, opts);
    const s = args.settings;
    const bases = new Map<string, RegionalBase>();
    for (const r of [args.primary, ...args.secondaries]) {
      bases.set(r.ctx.region, this.regionalBase(r, args));
      this.keyArns[r.ctx.region] = bases.get(r.ctx.region)!.key.arn;
      this.readerEndpoints[r.ctx.region] = [];
    }

    const common = (ctx: RegionContext, base: RegionalBase) => ({
      instanceClass: s.instanceClass,
      storageEncrypted: true,
      kmsKeyId: base.key.arn,
      dbSubnetGroupName: base.subnetGroup.name,
      vpcSecurityGroupIds: [base.securityGroup.id],
      parameterGroupName: base.parameterGroup.name,
      publiclyAccessible: false,
      performanceInsightsEnabled: true,
      performanceInsightsKmsKeyId: base.key.arn,
      performanceInsightsRetentionPeriod: s.performanceInsightsRetentionDays,
      monitoringInterval: 60,
      monitoringRoleArn: base.monitoringRole.arn,
      enabledCloudwatchLogsExports: ['postgresql', 'upgrade'],
      autoMinorVersionUpgrade: true,
      copyTagsToSnapshot: true,
      deletionProtection: s.protectFromDeletion,
      tags: { Name: ctx.name('db') },
    });
    const finalSnapshot = (ctx: RegionContext) =>
      s.protectFromDeletion
        ? { skipFinalSnapshot: false, finalSnapshotIdentifier: ctx.name('db-final'), deleteAutomatedBackups: false }
        : { skipFinalSnapshot: true, deleteAutomatedBackups: true };
    const backups = {
      backupRetentionPeriod: s.backupRetentionDays,
      backupWindow: '03:00-04:00',
      maintenanceWindow: 'sun:04:30-sun:05:30',
    };

    // --- primary region -------------------------------------------------------------
    const p = args.primary.ctx;
    const pBase = bases.get(p.region)!;
    const primary = new aws.rds.Instance(
      p.name('db'),
      {
        ...common(p, pBase),
        ...finalSnapshot(p),
        ...backups,
        identifier: p.name('db'),
        engine: 'postgres',
        engineVersion: s.engineVersion,
        allocatedStorage: s.allocatedStorageGb,
        maxAllocatedStorage: s.maxAllocatedStorageGb,
        storageType: 'gp3',
        multiAz: true,
        dbName: DATABASE_NAME,
        username: 'herald_admin',
        port: DATABASE_PORT,
        manageMasterUserPassword: true,
        masterUserSecretKmsKeyId: pBase.key.arn,
        tags: { Name: p.name('db') },
      },
      inRegion(p, this),
    );
    this.primaryArn = primary.arn;
    this.instances.push({ region: p.region, role: 'primary', identifier: primary.identifier });

    const zones = p.config.availabilityZones;
    for (let i = 0; i < s.inRegionReplicas; i++) {
      const replicaName = p.name(`db-replica-${i + 1}`);
      const replica = new aws.rds.Instance(
        replicaName,
        {
          ...common(p, pBase),
          identifier: replicaName,
          replicateSourceDb: primary.identifier,
          availabilityZone: zones[i % zones.length]!,
          multiAz: false,
          skipFinalSnapshot: true,
          backupRetentionPeriod: 0,
          tags: { Name: replicaName },
        },
        inRegion(p, this),
      );
      this.instances.push({ region: p.region, role: 'replica', identifier: replica.identifier });
      this.readerEndpoints[p.region]!.push(replica.address);
    }

    // --- secondary regions: cross-region replicas (promoted when failed over to) -----
    let writerInstance: aws.rds.Instance = primary;
    let writerCtx = p;
    for (const sec of args.secondaries) {
      const c = sec.ctx;
      const base = bases.get(c.region)!;
      const promoted = c.isActive;
      const replicaName = c.name('db-replica');
      const replica = new aws.rds.Instance(
        replicaName,
        {
          ...common(c, base),
          ...backups,
          identifier: replicaName,
          // by ARN: a cross-region source cannot be named by identifier
          replicateSourceDb: promoted ? undefined : primary.arn,
          multiAz: promoted ? true : s.crossRegionReplicaMultiAz,
          storageType: 'gp3',
          maxAllocatedStorage: s.maxAllocatedStorageGb,
          ...(promoted
            ? { ...finalSnapshot(c), manageMasterUserPassword: true, masterUserSecretKmsKeyId: base.key.arn }
            : { skipFinalSnapshot: true }),
          tags: { Name: replicaName },
        },
        inRegion(c, this),
      );
      this.instances.push({ region: c.region, role: promoted ? 'promoted' : 'cross-region-replica', identifier: replica.identifier });
      this.readerEndpoints[c.region]!.push(replica.address);
      if (promoted) {
        writerInstance = replica;
        writerCtx = c;
      }
    }

    // --- automated backups replicated into the first secondary region ----------------
    const dest = args.secondaries[0];
    if (dest) {
      new aws.rds.InstanceAutomatedBackupsReplication(
        dest.ctx.name('db-backups-from-primary'),
        { sourceDbInstanceArn: primary.arn, kmsKeyId: bases.get(dest.ctx.region)!.key.arn, retentionPeriod: s.backupRetentionDays },
        inRegion(dest.ctx, this),
      );
    }

    // --- master secret rotation + proxy for the writer --------------------------------
    const wBase = bases.get(writerCtx.region)!;
    const secretArn = writerInstance.masterUserSecrets.apply((secrets: { secretArn?: string }[] | undefined) => {
      const arn = secrets?.[0]?.secretArn;
      if (!arn) throw new Error(`${writerCtx.name('db')}: RDS returned no managed master user secret`);
      return arn;
    });
    new aws.secretsmanager.SecretRotation(
      writerCtx.name('db-master-rotation'),
      { secretId: secretArn, rotationRules: { automaticallyAfterDays: s.passwordRotationDays } },
      inRegion(writerCtx, this),
    );
    const proxyRole = new aws.iam.Role(
      writerCtx.name('db-proxy-role'),
      {
        assumeRolePolicy: JSON.stringify({
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Principal: { Service: 'rds.amazonaws.com' }, Action: 'sts:AssumeRole' }],
        }),
      },
      inRegion(writerCtx, this),
    );
    new aws.iam.RolePolicy(
      writerCtx.name('db-proxy-role'),
      {
        role: proxyRole.id,
        policy: pulumi.jsonStringify({
          Version: '2012-10-17',
          Statement: [
            { Effect: 'Allow', Action: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'], Resource: secretArn },
            { Effect: 'Allow', Action: ['kms:Decrypt'], Resource: wBase.key.arn },
          ],
        }),
      },
      inRegion(writerCtx, this),
    );
    const proxyName = writerCtx.name('db-proxy');
    const proxy = new aws.rds.Proxy(
      proxyName,
      {
        name: proxyName,
        engineFamily: 'POSTGRESQL',
        requireTls: true,
        idleClientTimeout: 1800,
        roleArn: proxyRole.arn,
        vpcSubnetIds: [args.primary, ...args.secondaries].find((r) => r.ctx.region === writerCtx.region)!.network.privateSubnetIds,
        vpcSecurityGroupIds: [wBase.securityGroup.id],
        auths: [{ authScheme: 'SECRETS', iamAuth: 'DISABLED', secretArn, description: 'RDS-managed master user' }],
        tags: { Name: proxyName },
      },
      inRegion(writerCtx, this),
    );
    const targetGroup = new aws.rds.ProxyDefaultTargetGroup(
      proxyName,
      {
        dbProxyName: proxy.name,
        connectionPoolConfig: {
          maxConnectionsPercent: s.proxyMaxConnectionsPercent,
          maxIdleConnectionsPercent: Math.min(50, s.proxyMaxConnectionsPercent),
          connectionBorrowTimeout: 120,
        },
      },
      inRegion(writerCtx, this),
    );
    new aws.rds.ProxyTarget(
      proxyName,
      { dbProxyName: proxy.name, targetGroupName: targetGroup.name, dbInstanceIdentifier: writerInstance.identifier },
      inRegion(writerCtx, this),
    );

    this.writer = { region: writerCtx.region, proxyEndpoint: proxy.endpoint, secretArn };
    this.registerOutputs({ primaryArn: this.primaryArn, writerEndpoint: this.writer.proxyEndpoint });
  }

  private regionalBase(r: DatabaseRegion, args: DatabaseArgs): RegionalBase {
    const { ctx, network } = r;
    const s = args.settings;
    const o = () => inRegion(ctx, this);
    const key = new aws.kms.Key(
      ctx.name('db-key'),
      { description: `${ctx.name('db')} storage, backups, Performance Insights and master secret`, enableKeyRotation: true, deletionWindowInDays: 30 },
      o(),
    );
    new aws.kms.Alias(ctx.name('db-key'), { name: `alias/${ctx.name('db')}`, targetKeyId: key.keyId }, o());
    const subnetGroup = new aws.rds.SubnetGroup(
      ctx.name('db-subnets'),
      { subnetIds: network.privateSubnetIds, tags: { Name: ctx.name('db-subnets') } },
      o(),
    );
    const securityGroup = new aws.ec2.SecurityGroup(
      ctx.name('db-sg'),
      {
        vpcId: network.vpcId,
        description: "PostgreSQL from Herald's clusters only (nodes and pods); RDS Proxy to the database",
        ingress: [
          ...args.clients
            .filter((c) => c.region === ctx.region)
            .map((c) => ({ protocol: 'tcp', fromPort: DATABASE_PORT, toPort: DATABASE_PORT, securityGroups: [c.securityGroupId], description: `EKS nodes and pods (${c.region})` })),
          // across the peering a security group cannot be named: that cluster's private subnets, not its whole VPC
          ...args.clients
            .filter((c) => c.region !== ctx.region)
            .map((c) => ({ protocol: 'tcp', fromPort: DATABASE_PORT, toPort: DATABASE_PORT, cidrBlocks: c.privateCidrs, description: `EKS nodes and pods (${c.region}, peered)` })),
          { protocol: 'tcp', fromPort: DATABASE_PORT, toPort: DATABASE_PORT, self: true, description: 'RDS Proxy' },
        ],
        egress: [{ protocol: '-1', fromPort: 0, toPort: 0, cidrBlocks: [network.cidr], description: 'within the VPC' }],
        tags: { Name: ctx.name('db-sg') },
      },
      o(),
    );
    const parameterGroup = new aws.rds.ParameterGroup(
      ctx.name('db-params'),
      {
        family: s.parameterGroupFamily,
        description: 'Herald: connection limits, slow-query logging, TLS only',
        parameters: [
          { name: 'max_connections', value: String(s.maxConnections), applyMethod: 'pending-reboot' },
          { name: 'log_min_duration_statement', value: String(s.slowQueryMs), applyMethod: 'immediate' },
          { name: 'log_lock_waits', value: '1', applyMethod: 'immediate' },
          { name: 'idle_in_transaction_session_timeout', value: '60000', applyMethod: 'immediate' },
          { name: 'rds.force_ssl', value: '1', applyMethod: 'immediate' },
          { name: 'shared_preload_libraries', value: 'pg_stat_statements', applyMethod: 'pending-reboot' },
        ],
        tags: { Name: ctx.name('db-params') },
      },
      o(),
    );
    const monitoringRole = new aws.iam.Role(
      ctx.name('db-monitoring'),
      {
        assumeRolePolicy: JSON.stringify({
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Principal: { Service: 'monitoring.rds.amazonaws.com' }, Action: 'sts:AssumeRole' }],
        }),
      },
      o(),
    );
    new aws.iam.RolePolicyAttachment(
      ctx.name('db-monitoring'),
      { role: monitoringRole.name, policyArn: 'arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole' },
      o(),
    );
    return { key, subnetGroup, securityGroup, parameterGroup, monitoringRole };
  }
}
