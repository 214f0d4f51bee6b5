/**
 * Herald's platform, composed per region: network, cluster, database, secrets, ingress,
 * workloads, load testing, alerting, monitoring (Prometheus rules, monitors, dashboards).
 * Config is read and validated once, here.
 * The default export is the program (Pulumi calls it); tests call it under mocks.
 */
import * as pulumi from '@pulumi/pulumi';
import { Alerting } from './alerting.js';
import { Cluster } from './cluster.js';
import { loadStackConfig } from './config.js';
import { Database } from './database.js';
import { ApiDns, Ingress } from './ingress.js';
import { loadLoadTestRbac, LoadTesting } from './loadtesting.js';
import { Network, RegionPeering } from './network.js';
import { createNetworkPolicies } from './network-policies.js';
import { Monitoring } from './monitoring/prometheus-stack.js';
import { loadOperatorManifests } from './operator-manifests.js';
import { regionContexts } from './region.js';
import { SecretDelivery, Secrets } from './secrets.js';
import { NAMESPACE, PORTS, Workloads } from './workloads.js';

export default async function herald(): Promise<Record<string, unknown>> {
  const cfg = loadStackConfig();
  const operator = loadOperatorManifests();
  const regions = regionContexts(cfg);
  const primary = regions.find((r) => r.isPrimary)!;
  const secondaries = regions.filter((r) => !r.isPrimary);

  const networks = new Map(regions.map((ctx) => [ctx.region, new Network(ctx.name('network'), { ctx, natGatewayPerAz: cfg.network.natGatewayPerAz })]));
  const net = (region: string) => networks.get(region)!;
  for (const s of secondaries) {
    new RegionPeering(s.name('peering'), { primary: { ctx: primary, network: net(primary.region) }, secondary: { ctx: s, network: net(s.region) } });
  }
  const clusters = new Map(regions.map((ctx) => [ctx.region, new Cluster(ctx.name('cluster'), { ctx, network: net(ctx.region), settings: cfg.cluster })]));

  const database = new Database(primary.name('database'), {
    primary: { ctx: primary, network: net(primary.region) },
    secondaries: secondaries.map((ctx) => ({ ctx, network: net(ctx.region) })),
    settings: cfg.database,
    clients: regions.map((ctx) => ({ region: ctx.region, securityGroupId: clusters.get(ctx.region)!.securityGroupId, privateCidrs: net(ctx.region).privateCidrs })),
  });
  const secrets = new Secrets(primary.name('secrets'), {
    primary,
    secondaries,
    values: cfg.secrets,
    recoveryWindowDays: cfg.database.protectFromDeletion ? 30 : 7,
  });

  const endpoints = regions.map((ctx) => {
    const cluster = clusters.get(ctx.region)!;
    const alerting = new Alerting(ctx.name('alerting'), {
      ctx,
      alerting: cfg.alerting,
      database: cfg.database,
      instances: database.instances.filter((i) => i.region === ctx.region),
    });
    const secretDelivery = new SecretDelivery(ctx.name('secret-delivery'), {
      ctx,
      cluster,
      secrets,
      database: database.writer,
      secretsKeyArns: Object.values(secrets.keyArns),
      databaseKeyArns: Object.values(database.keyArns),
      namespaces: { app: NAMESPACE, operator: operator.namespace, loadTest: cfg.loadTest.enabled ? loadLoadTestRbac().namespace : undefined },
    });
    const ingress = new Ingress(ctx.name('ingress'), { ctx, cluster, network: net(ctx.region), domain: cfg.domain });
    const workloads = new Workloads(ctx.name('workloads'), {
      ctx,
      cluster,
      operator,
      secretDelivery,
      ingress,
      images: cfg.images,
      api: cfg.api,
      workers: cfg.workers,
      syntheticTenant: cfg.loadTest.tenant,
      simulator: cfg.loadTest.enabled,
    });
    const loadTesting = cfg.loadTest.enabled
      ? new LoadTesting(ctx.name('load-testing'), {
          ctx,
          cluster,
          namespace: workloads.namespace,
          images: cfg.images,
          loadTest: cfg.loadTest,
          apiServiceUrl: workloads.apiServiceUrl,
          secretDelivery,
        })
      : undefined;
    new Monitoring(ctx.name('monitoring'), {
      ctx,
      cluster,
      operatorNamespace: operator.namespace,
      runbookBaseUrl: cfg.alerting.runbookBaseUrl,
      alertTopicArn: alerting.topicArn,
      dependsOn: workloads.namespaces,
    });
    createNetworkPolicies(
      {
        ctx,
        namespace: NAMESPACE,
        operatorNamespace: operator.namespace,
        loadTestNamespace: loadTesting?.namespace,
        simulator: cfg.loadTest.enabled,
        ports: PORTS,
        loadBalancerCidrs: net(ctx.region).publicCidrs,
        databaseCidrs: regions.flatMap((r) => net(r.region).privateCidrs),
        kubeApiCidrs: net(ctx.region).privateCidrs,
      },
      { provider: cluster.k8s, dependsOn: [...workloads.namespaces, ...(loadTesting?.namespaces ?? [])] },
    );
    return { ctx, loadBalancerHostname: workloads.apiLoadBalancerHostname, alertTopicArn: alerting.topicArn };
  });
  const dns = new ApiDns(primary.name('api-dns'), { home: primary, domain: cfg.domain, activeRegion: cfg.activeRegion, endpoints });

  return {
    primaryRegion: cfg.primaryRegion,
    activeRegion: cfg.activeRegion,
    regions: regions.map((r) => r.region),
    clusterNames: Object.fromEntries([...clusters].map(([region, c]) => [region, c.name])),
    // no static credentials inside (exec: aws eks get-token), but cluster access details stay secret
    kubeconfigs: pulumi.secret(Object.fromEntries([...clusters].map(([region, c]) => [region, c.kubeconfig]))),
    apiUrl: dns.url,
    // where CI pages (loadtest.yml publishes a failed k6 run here)
    alertTopicArns: Object.fromEntries(endpoints.map((e) => [e.ctx.region, e.alertTopicArn])),
    database: {
      writerRegion: database.writer.region,
      proxyEndpoint: database.writer.proxyEndpoint,
      readerEndpoints: database.readerEndpoints,
    },
    providerSecretNames: secrets.names,
  };
}
