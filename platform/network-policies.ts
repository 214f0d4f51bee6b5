/**
 * Who may talk to whom inside a cluster: every Herald namespace denies all traffic, in and
 * out, and each component gets exactly the flows it needs (DNS, PostgreSQL, the providers,
 * the Kubernetes API, Prometheus scraping, the load balancer to the api). EKS enforces
 * these through the VPC CNI's network policy agent (cluster.ts turns it on).
 */
import * as k8s from '@pulumi/kubernetes';
import type * as k8sInput from '@pulumi/kubernetes/types/input.js';
import * as pulumi from '@pulumi/pulumi';
import { DATABASE_PORT } from './database.js';
import type { RegionContext } from './region.js';

/** Where the Prometheus that scrapes Herald runs (its pods may reach every /metrics port). */
export const MONITORING_NAMESPACE = 'monitoring';
/** Private address ranges (and link-local, where the instance metadata service answers): not "the internet". */
export const NOT_INTERNET = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', '169.254.0.0/16'];

export const component = (name: string): k8sInput.meta.v1.LabelSelector => ({
  matchLabels: { 'app.kubernetes.io/name': 'herald', 'app.kubernetes.io/component': name },
});
const inNamespace = (ns: string): k8sInput.meta.v1.LabelSelector => ({ matchLabels: { 'kubernetes.io/metadata.name': ns } });
const tcp = (...ports: number[]): k8sInput.networking.v1.NetworkPolicyPort[] => ports.map((port) => ({ protocol: 'TCP', port }));

export interface NetworkPolicyArgs {
  ctx: RegionContext;
  /** The api, workers, migration Job and simulator live here. */
  namespace: string;
  operatorNamespace: string;
  loadTestNamespace?: string;
  /** The provider simulator runs (load testing on). */
  simulator: boolean;
  ports: { api: number; worker: number; operator: number; simulator: number };
  /** Where the internet-facing load balancer's nodes are (this region's public subnets): the api's only outside caller. */
  loadBalancerCidrs: string[];
  /** Where the database (RDS Proxy) is reachable: the private subnets of every region (the writer may be across the peering). */
  databaseCidrs: string[];
  /** Where the EKS API server's private endpoint answers: this region's private subnets. */
  kubeApiCidrs: string[];
}

/** The flows, as NetworkPolicy specs keyed by name and namespace (pure: the tests read them too). */
export function networkPolicySpecs(a: NetworkPolicyArgs): { name: string; namespace: string; spec: k8sInput.networking.v1.NetworkPolicySpec }[] {
  const dns: k8sInput.networking.v1.NetworkPolicyEgressRule = {
    to: [{ namespaceSelector: inNamespace('kube-system'), podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
    ports: [
      { protocol: 'UDP', port: 53 },
      { protocol: 'TCP', port: 53 },
    ],
  };
  const database: k8sInput.networking.v1.NetworkPolicyEgressRule = { to: a.databaseCidrs.map((cidr) => ({ ipBlock: { cidr } })), ports: tcp(DATABASE_PORT) };
  // Telnyx and FCM (and Google's token endpoint) are public HTTPS; nothing private through this rule
  const providers: k8sInput.networking.v1.NetworkPolicyEgressRule = { to: [{ ipBlock: { cidr: '0.0.0.0/0', except: NOT_INTERNET } }], ports: tcp(443) };
  const kubeApi: k8sInput.networking.v1.NetworkPolicyEgressRule = { to: a.kubeApiCidrs.map((cidr) => ({ ipBlock: { cidr } })), ports: tcp(443) };
  const scrape = (port: number): k8sInput.networking.v1.NetworkPolicyIngressRule => ({ from: [{ namespaceSelector: inNamespace(MONITORING_NAMESPACE) }], ports: tcp(port) });
  const simulator = a.simulator
    ? [{ to: [{ podSelector: component('provider-simulator') }], ports: tcp(a.ports.simulator, a.ports.simulator + 1) }]
    : [];
  const deny = (namespace: string) => ({ name: 'default-deny', namespace, spec: { podSelector: {}, policyTypes: ['Ingress', 'Egress'] } });

  const apiCallers: k8sInput.networking.v1.NetworkPolicyPeer[] = [...a.loadBalancerCidrs.map((cidr) => ({ ipBlock: { cidr } }))];
  if (a.simulator) apiCallers.push({ podSelector: component('provider-simulator') }); // receipts and inbound webhooks
  if (a.loadTestNamespace) apiCallers.push({ namespaceSelector: inNamespace(a.loadTestNamespace), podSelector: component('load-test') });

  type Rules = Pick<k8sInput.networking.v1.NetworkPolicySpec, 'ingress' | 'egress'>;
  const allow = (name: string, namespace: string, of: string, rules: Rules) => ({
    name,
    namespace,
    spec: { podSelector: component(of), policyTypes: ['Ingress', 'Egress'], ...rules },
  });
  const out = [
    deny(a.namespace),
    // HELP/STOP replies go to Telnyx
    allow('herald-api', a.namespace, 'api', { ingress: [{ from: apiCallers, ports: tcp(a.ports.api) }, scrape(a.ports.api)], egress: [dns, database, providers] }),
    allow('herald-worker', a.namespace, 'worker', { ingress: [scrape(a.ports.worker)], egress: [dns, database, providers, ...simulator] }),
    allow('herald-migrate', a.namespace, 'migrate', { egress: [dns, database] }),
  ];
  if (a.operatorNamespace !== a.namespace) out.push(deny(a.operatorNamespace));
  out.push(allow('herald-operator', a.operatorNamespace, 'operator', { ingress: [scrape(a.ports.operator)], egress: [dns, database, kubeApi] }));
  if (a.simulator) {
    out.push(
      allow('herald-provider-simulator', a.namespace, 'provider-simulator', {
        ingress: [{ from: [{ podSelector: component('worker') }], ports: tcp(a.ports.simulator, a.ports.simulator + 1) }],
        // its webhooks (receipts, inbound, redeliveries) reach the api and nothing else
        egress: [dns, { to: [{ podSelector: component('api') }], ports: tcp(a.ports.api) }],
      }),
    );
  }
  if (a.loadTestNamespace) {
    out.push(
      deny(a.loadTestNamespace),
      allow('herald-k6', a.loadTestNamespace, 'load-test', {
        egress: [dns, kubeApi, { to: [{ namespaceSelector: inNamespace(a.namespace), podSelector: component('api') }], ports: tcp(a.ports.api) }],
      }),
    );
  }
  return out;
}

export function createNetworkPolicies(a: NetworkPolicyArgs, opts: pulumi.CustomResourceOptions): k8s.networking.v1.NetworkPolicy[] {
  return networkPolicySpecs(a).map(
    (p) => new k8s.networking.v1.NetworkPolicy(a.ctx.name(`netpol-${p.namespace}-${p.name}`), { metadata: { name: p.name, namespace: p.namespace }, spec: p.spec }, opts),
  );
}
