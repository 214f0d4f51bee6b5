/**
 * Alerting of one region: an SNS topic with the stack's alert targets subscribed, and
 * CloudWatch alarms on the region's database instances (CPU over 90%, replica lag, low
 * storage, connections near the limit) and, on the writer, a day without a finished
 * automated backup. Herald's own alerts are PrometheusRules (platform/monitoring/alerts.ts),
 * which Alertmanager sends to the same topic.
 */
import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';
import type { StackConfig } from './config.js';
import type { DatabaseInstanceInfo } from './database.js';
import { inRegion, type RegionContext } from './region.js';

/** The RDS event of a finished automated backup (category backup). */
export const BACKUP_FINISHED_EVENT = 'RDS-EVENT-0002';

/** The alerts key's policy: the account administers it; CloudWatch and EventBridge may encrypt to it for SNS. */
export function alertsKeyPolicy(account: string) {
  return {
    Version: '2012-10-17',
    Statement: [
      { Sid: 'Account', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${account}:root` }, Action: 'kms:*', Resource: '*' },
      {
        Sid: 'AlarmsPublish',
        Effect: 'Allow',
        Principal: { Service: ['cloudwatch.amazonaws.com', 'events.amazonaws.com'] },
        Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        Resource: '*',
      },
    ],
  };
}

export interface AlertingArgs {
  ctx: RegionContext;
  alerting: StackConfig['alerting'];
  database: StackConfig['database'];
  instances: DatabaseInstanceInfo[];
}

export class Alerting extends pulumi.ComponentResource {
  readonly topicArn: pulumi.Output<string>;

  constructor(name: string, args: AlertingArgs, opts?: pulumi.ComponentResourceOptions) {
    super('herald:platform:Alerting', name, {}, opts);
    const { ctx } = args;
    const o = () => inRegion(ctx, this);
    // A key of our own: CloudWatch cannot publish to a topic under the AWS-managed
    // alias/aws/sns key (its policy cannot be changed to let the service use it), so every
    // alarm would be dropped. This key lets CloudWatch (and EventBridge) encrypt to it.
    const key = new aws.kms.Key(ctx.name('alerts-key'), { description: `${ctx.name('alerts')} SNS topic`, enableKeyRotation: true, deletionWindowInDays: 30 }, o());
    new aws.kms.KeyPolicy(
      ctx.name('alerts-key'),
      { keyId: key.keyId, policy: key.arn.apply((arn) => JSON.stringify(alertsKeyPolicy(arn.split(':')[4] ?? ''))) },
      o(),
    );
    const topic = new aws.sns.Topic(ctx.name('alerts'), { kmsMasterKeyId: key.arn }, o());
    args.alerting.emails.forEach((email, i) => {
      new aws.sns.TopicSubscription(ctx.name(`alerts-email-${i}`), { topic: topic.arn, protocol: 'email', endpoint: email }, o());
    });
    args.instances.forEach((db, i) => {
      const alarm = (thing: string, a: Omit<aws.cloudwatch.MetricAlarmArgs, 'namespace' | 'dimensions' | 'alarmActions' | 'okActions'>) =>
        new aws.cloudwatch.MetricAlarm(
          ctx.name(`db-${i}-${thing}`),
          { ...a, namespace: 'AWS/RDS', dimensions: { DBInstanceIdentifier: db.identifier }, alarmActions: [topic.arn], okActions: [topic.arn] },
          o(),
        );
      alarm('cpu', { comparisonOperator: 'GreaterThanThreshold', metricName: 'CPUUtilization', statistic: 'Average', period: 300, evaluationPeriods: 1, threshold: 90 });
      alarm('connections', {
        comparisonOperator: 'GreaterThanThreshold',
        metricName: 'DatabaseConnections',
        statistic: 'Maximum',
        period: 300,
        evaluationPeriods: 1,
        threshold: Math.floor(args.database.maxConnections * 0.9),
      });
      alarm('storage', {
        comparisonOperator: 'LessThanThreshold',
        metricName: 'FreeStorageSpace',
        statistic: 'Minimum',
        period: 300,
        evaluationPeriods: 1,
        threshold: args.database.allocatedStorageGb * 0.1 * 1024 ** 3,
      });
      if (db.role === 'primary' || db.role === 'promoted') {
        // RDS publishes no backup-age metric. An EventBridge rule matches this instance's
        // RDS-EVENT-0002 ("Finished DB instance backup") and writes it to a log group; the
        // alarm reads the rule's TriggeredRules: under 1 in a day (or none yet) is a backup
        // older than a day (runbooks/database-restore.md).
        const log = new aws.cloudwatch.LogGroup(ctx.name(`db-${i}-backups`), { retentionInDays: 30 }, o());
        const rule = new aws.cloudwatch.EventRule(
          ctx.name(`db-${i}-backup-finished`),
          {
            description: 'Automated backup of the writer finished',
            eventPattern: pulumi.jsonStringify({
              source: ['aws.rds'],
              'detail-type': ['RDS DB Instance Event'],
              detail: { EventID: [BACKUP_FINISHED_EVENT], SourceIdentifier: [db.identifier] },
            }),
          },
          o(),
        );
        new aws.cloudwatch.EventTarget(ctx.name(`db-${i}-backup-finished`), { rule: rule.name, arn: log.arn }, o());
        new aws.cloudwatch.LogResourcePolicy(
          ctx.name(`db-${i}-backups`),
          {
            policyName: ctx.name(`db-${i}-backups`),
            policyDocument: pulumi.jsonStringify({
              Version: '2012-10-17',
              Statement: [{ Effect: 'Allow', Principal: { Service: ['events.amazonaws.com', 'delivery.logs.amazonaws.com'] }, Action: ['logs:CreateLogStream', 'logs:PutLogEvents'], Resource: pulumi.interpolate`${log.arn}:*` }],
            }),
          },
          o(),
        );
        new aws.cloudwatch.MetricAlarm(
          ctx.name(`db-${i}-backup-age`),
          {
            alarmDescription: 'No automated backup of the database finished in the last day (runbooks/database-restore.md)',
            namespace: 'AWS/Events',
            metricName: 'TriggeredRules',
            dimensions: { RuleName: rule.name },
            statistic: 'Sum',
            period: 86_400,
            evaluationPeriods: 1,
            threshold: 1,
            comparisonOperator: 'LessThanThreshold',
            treatMissingData: 'breaching',
            alarmActions: [topic.arn],
            okActions: [topic.arn],
          },
          o(),
        );
      }
      if (db.role === 'replica' || db.role === 'cross-region-replica') {
        alarm('replica-lag', { comparisonOperator: 'GreaterThanThreshold', metricName: 'ReplicaLag', statistic: 'Maximum', period: 60, evaluationPeriods: 5, threshold: 60 });
      }
    });
    this.topicArn = topic.arn;
    this.registerOutputs({ topicArn: this.topicArn });
  }
}
