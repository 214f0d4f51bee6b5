/**
 * Alerting of one region: an SNS topic with the stack's alert targets subscribed, and
 * CloudWatch alarms on the region's database instances (CPU over 90%, replica lag, low
 * storage, connections near the limit).
 */
import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';
import type { StackConfig } from './config.js';
import type { DatabaseInstanceInfo } from './database.js';
import { inRegion, type RegionContext } from './region.js';

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
    const topic = new aws.sns.Topic(ctx.name('alerts'), { kmsMasterKeyId: 'alias/aws/sns' }, o());
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
      if (db.role === 'replica' || db.role === 'cross-region-replica') {
        alarm('replica-lag', { comparisonOperator: 'GreaterThanThreshold', metricName: 'ReplicaLag', statistic: 'Maximum', period: 60, evaluationPeriods: 5, threshold: 60 });
      }
    });
    this.topicArn = topic.arn;
    this.registerOutputs({ topicArn: this.topicArn });
  }
}
