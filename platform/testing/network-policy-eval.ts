/**
 * A stand-in for the cluster's NetworkPolicy enforcement (on EKS, the VPC CNI's network
 * policy agent), small enough to read: Kubernetes' rules for which connections a set of
 * NetworkPolicy objects admits. A pod selected by a policy of a type (Ingress/Egress) is
 * isolated in that direction and admits only what some selecting policy's rule allows; a
 * connection needs the source's egress and the destination's ingress. IPv4, TCP/UDP,
 * numeric ports (what Herald's policies use); named ports and endPort are refused.
 */
import type { Manifest } from '../operator-manifests.js';

export interface PodEndpoint {
  namespace: string;
  labels: Record<string, string>;
  /** Pods get VPC addresses on EKS, so ipBlock peers can match them too. */
  ip: string;
}
export type Endpoint = { pod: PodEndpoint } | { ip: string };

interface Selector {
  matchLabels?: Record<string, string>;
  matchExpressions?: unknown[];
}
interface Peer {
  podSelector?: Selector;
  namespaceSelector?: Selector;
  ipBlock?: { cidr: string; except?: string[] };
}
interface Port {
  protocol?: string;
  port?: number | string;
  endPort?: number;
}
interface Rule {
  from?: Peer[];
  to?: Peer[];
  ports?: Port[];
}
interface Policy {
  namespace: string;
  podSelector: Selector;
  policyTypes: string[];
  ingress: Rule[];
  egress: Rule[];
}

function ipToInt(ip: string): number {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new Error(`not an IPv4 address: ${ip}`);
  return parts.reduce((n, p) => n * 256 + p, 0);
}
export function inCidr(ip: string, cidr: string): boolean {
  const [base, bits] = cidr.split('/');
  const size = 2 ** (32 - Number(bits));
  const start = Math.floor(ipToInt(base!) / size) * size;
  const n = ipToInt(ip);
  return n >= start && n < start + size;
}

function selects(selector: Selector, labels: Record<string, string>): boolean {
  if (selector.matchExpressions?.length) throw new Error('matchExpressions are not evaluated by this stand-in');
  return Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
}
const namespaceLabels = (ns: string) => ({ 'kubernetes.io/metadata.name': ns });
const ipOf = (e: Endpoint) => ('pod' in e ? e.pod.ip : e.ip);

function peerMatches(peer: Peer, policyNamespace: string, other: Endpoint): boolean {
  if (peer.ipBlock) {
    const ip = ipOf(other);
    return inCidr(ip, peer.ipBlock.cidr) && !(peer.ipBlock.except ?? []).some((c) => inCidr(ip, c));
  }
  if (!('pod' in other)) return false;
  const nsOk = peer.namespaceSelector ? selects(peer.namespaceSelector, namespaceLabels(other.pod.namespace)) : other.pod.namespace === policyNamespace;
  return nsOk && (peer.podSelector ? selects(peer.podSelector, other.pod.labels) : true);
}

function portMatches(ports: Port[] | undefined, protocol: string, port: number): boolean {
  if (!ports || ports.length === 0) return true;
  return ports.some((p) => {
    if (p.endPort !== undefined || typeof p.port === 'string') throw new Error('named ports and endPort are not evaluated by this stand-in');
    return (p.protocol ?? 'TCP') === protocol && (p.port === undefined || p.port === port);
  });
}

export function parsePolicies(manifests: Manifest[]): Policy[] {
  return manifests
    .filter((m) => m.kind === 'NetworkPolicy')
    .map((m) => {
      const spec = m['spec'] as { podSelector: Selector; policyTypes?: string[]; ingress?: Rule[]; egress?: Rule[] };
      if (!spec.policyTypes) throw new Error(`NetworkPolicy ${m.metadata.name}: give policyTypes explicitly`);
      return { namespace: m.metadata.namespace!, podSelector: spec.podSelector, policyTypes: spec.policyTypes, ingress: spec.ingress ?? [], egress: spec.egress ?? [] };
    });
}

function admits(policies: Policy[], direction: 'Ingress' | 'Egress', pod: PodEndpoint, other: Endpoint, protocol: string, port: number): boolean {
  const selecting = policies.filter((p) => p.namespace === pod.namespace && p.policyTypes.includes(direction) && selects(p.podSelector, pod.labels));
  if (selecting.length === 0) return true; // not isolated
  return selecting.some((p) =>
    (direction === 'Ingress' ? p.ingress : p.egress).some((rule) => {
      const peers = direction === 'Ingress' ? rule.from : rule.to;
      return (!peers || peers.length === 0 || peers.some((peer) => peerMatches(peer, p.namespace, other))) && portMatches(rule.ports, protocol, port);
    }),
  );
}

/** Whether a connection from `from` to `to` on `port` is admitted by the policies. */
export function allowed(policies: Policy[], from: Endpoint, to: Endpoint, port: number, protocol = 'TCP'): boolean {
  const out = 'pod' in from ? admits(policies, 'Egress', from.pod, to, protocol, port) : true;
  const inn = 'pod' in to ? admits(policies, 'Ingress', to.pod, from, protocol, port) : true;
  return out && inn;
}
