import { describe, expect, it } from 'vitest';
import { hostDifferences, type HostSnapshot } from './host.js';

const empty = (): HostSnapshot => ({ sysctls: {}, iptables: { v4: [], v6: [] }, links: [], mounts: [], cgroups: [], paths: [] });

describe('hostDifferences (what a stopped node may leave behind)', () => {
  it('a table the kernel now lists, with only its built-in chains at ACCEPT, is no difference', () => {
    const after = empty();
    after.iptables.v4 = ['*filter', ':INPUT ACCEPT', ':FORWARD ACCEPT', ':OUTPUT ACCEPT', 'COMMIT', '*nat', ':PREROUTING ACCEPT', ':POSTROUTING ACCEPT', 'COMMIT'];
    after.iptables.v6 = ['*mangle', ':PREROUTING ACCEPT', 'COMMIT'];
    expect(hostDifferences(empty(), after)).toEqual([]);
  });

  it("a rule, a chain or a changed built-in policy is one, named with its table", () => {
    const after = empty();
    after.iptables.v4 = ['*filter', ':INPUT ACCEPT', ':FORWARD DROP', ':KUBE-FORWARD - ', '-A FORWARD -j KUBE-FORWARD', 'COMMIT', '*nat', '-A FORWARD -j KUBE-FORWARD', 'COMMIT'];
    expect(hostDifferences(empty(), after)).toEqual([
      'iptables added: :FORWARD DROP (*filter)',
      'iptables added: :KUBE-FORWARD -  (*filter)',
      'iptables added: -A FORWARD -j KUBE-FORWARD (*filter)',
      'iptables added: -A FORWARD -j KUBE-FORWARD (*nat)',
    ]);
  });
});
