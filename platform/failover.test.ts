/**
 * Failover is a config change plus `pulumi up`: setting herald:failover.activeRegion to a
 * secondary promotes that region's replica, moves the proxy and the migration Job there,
 * wakes its workers and k6, puts the former primary's workers on standby, and makes it
 * the PRIMARY of the api's DNS failover pair.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { BACKUP_FINISHED_EVENT } from './alerting.js';
import { runStack, type StackRun } from './testing/mocked-run.js';
import { ofType, one, T } from './testing/stack-assertions.js';

describe('failing staging over to us-west-2 (config only)', () => {
  let run: StackRun;
  beforeAll(async () => {
    run = await runStack('staging', { 'herald:failover': { activeRegion: 'us-west-2' } });
  });

  it('promotes the us-west-2 replica: no replication source, Multi-AZ, its own managed master secret', () => {
    const promoted = one(run, T.rds, (i) => i.region === 'us-west-2');
    expect(promoted.inputs['replicateSourceDb']).toBeUndefined();
    expect(promoted.inputs['multiAz']).toBe(true);
    expect(promoted.inputs['manageMasterUserPassword']).toBe(true);
    expect(promoted.inputs['backupRetentionPeriod']).toBe(7);
  });

  it('alarms on the promoted writer going a day without a finished backup, in its region', () => {
    const promoted = one(run, T.rds, (i) => i.region === 'us-west-2');
    const rule = one(run, 'aws:cloudwatch/eventRule:EventRule', (x) => x.region === 'us-west-2' && x.inputs['eventPattern'].includes(BACKUP_FINISHED_EVENT));
    expect(JSON.parse(rule.inputs['eventPattern']).detail.SourceIdentifier).toEqual([promoted.state['identifier']]);
    expect(one(run, 'aws:cloudwatch/metricAlarm:MetricAlarm', (a) => a.inputs['dimensions'].RuleName === rule.state['name']).region).toBe('us-west-2');
  });

  it('moves the RDS Proxy, the password rotation and the migration Job to us-west-2', () => {
    expect(one(run, T.proxy).region).toBe('us-west-2');
    expect(one(run, T.rotation).region).toBe('us-west-2');
    expect(ofType(run, T.job).map((j) => j.region)).toEqual(['us-west-2']);
  });

  it('wakes the us-west-2 workers and k6, and puts us-east-1 workers on standby', () => {
    for (const so of ofType(run, T.scaledObject)) {
      const paused = so.inputs['metadata'].annotations?.['autoscaling.keda.sh/paused-replicas'];
      expect(paused).toBe(so.region === 'us-west-2' ? undefined : '0');
    }
    for (const cron of ofType(run, T.cronJob)) expect(cron.inputs['spec'].suspend).toBe(cron.region !== 'us-west-2');
  });

  it('points DATABASE_URL of every cluster at the new writer', () => {
    for (const es of ofType(run, T.externalSecret).filter((e) => e.inputs['metadata'].name === 'herald-database')) {
      expect(es.inputs['spec'].secretStoreRef.name).toBe('aws-secrets-manager-us-west-2');
      expect(es.inputs['spec'].target.template.data.DATABASE_URL).toContain('.us-west-2.rds.amazonaws.com:5432/herald');
    }
  });

  it('makes us-west-2 the PRIMARY of the api failover records', () => {
    const primary = ofType(run, T.record).find((r) => r.inputs['failoverRoutingPolicies']?.[0]?.type === 'PRIMARY');
    expect(primary?.inputs['setIdentifier']).toBe('us-west-2');
  });

  it('still refuses an active region that is not one of the regions', async () => {
    await expect(runStack('staging', { 'herald:failover': { activeRegion: 'eu-west-1' } })).rejects.toThrow(
      /herald:failover\.activeRegion: 'eu-west-1' is not one of regions/,
    );
  });
});
