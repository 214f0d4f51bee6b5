/**
 * The dashboards as Grafana receives them: the six the Operations issue names, each panel
 * with a unique id and at least one query on the datasource variable, every query valid
 * PromQL (Prometheus' own grammar). Which metrics they name is the metric-drift test's.
 */
import { describe, expect, it } from 'vitest';
import { dashboards, panelQueries } from './dashboards.js';
import { metricNames } from './promql.js';

describe('dashboards', () => {
  const boards = dashboards();

  it('are delivery, queue, providers, tenants, rollouts and operator', () => {
    expect(Object.keys(boards).sort()).toEqual(['herald-delivery', 'herald-operator', 'herald-providers', 'herald-queue', 'herald-rollouts', 'herald-tenants']);
    for (const [name, d] of Object.entries(boards)) expect(d.uid).toBe(name);
  });

  it('give each panel a unique id and a query on the datasource variable', () => {
    for (const [name, d] of Object.entries(boards)) {
      const panels = (d.panels ?? []) as { id?: number; type: string; title?: string; datasource?: { uid?: string }; targets?: unknown[] }[];
      const ids = panels.map((p) => p.id);
      expect(new Set(ids).size, `${name}: ids ${ids.join(',')}`).toBe(panels.length);
      for (const p of panels.filter((x) => x.type !== 'row')) {
        expect(p.datasource?.uid, `${name} "${p.title}"`).toBe('${datasource}');
        expect(p.targets?.length ?? 0, `${name} "${p.title}"`).toBeGreaterThan(0);
      }
    }
  });

  it('query in valid PromQL', () => {
    for (const q of panelQueries(boards)) expect(() => metricNames(q.expr), q.source).not.toThrow();
    expect(() => metricNames('sum(rate(herald_queue_depth[5m])')).toThrow(/does not parse/);
  });
});
