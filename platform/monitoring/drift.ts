/**
 * Metric drift: every metric a rule or a dashboard panel names must be one a Herald
 * service exports (its /metrics) or one of the pinned cluster series (external-series.ts).
 * A renamed or removed Herald metric otherwise leaves an alert that can never fire and a
 * panel that stays empty, with nothing failing.
 */
import { EXTERNAL_SERIES } from './external-series.js';
import { metricNames } from './promql.js';

/** A PromQL expression and where it is (an alert's name, a dashboard's panel). */
export interface MetricReference {
  source: string;
  expr: string;
}

/**
 * The series names a Prometheus text exposition makes available: each family of a
 * `# TYPE` line (declared, even with no sample yet) and, for histograms and summaries,
 * its _bucket/_sum/_count series; plus every sample's name.
 */
export function exportedSeries(exposition: string): Set<string> {
  const names = new Set<string>();
  for (const line of exposition.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type) {
      const [, name, kind] = type;
      names.add(name!);
      if (kind === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name + s);
      if (kind === 'summary') for (const s of ['_sum', '_count']) names.add(name + s);
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/.exec(line);
    if (sample) names.add(sample[1]!);
  }
  return names;
}

/** "source: name" for each metric referenced that nobody exports and is not a pinned cluster series. */
export function metricDrift(refs: MetricReference[], exported: ReadonlySet<string>): string[] {
  const missing: string[] = [];
  for (const r of refs) {
    for (const name of metricNames(r.expr)) {
      if (!exported.has(name) && !EXTERNAL_SERIES.has(name)) missing.push(`${r.source}: ${name}`);
    }
  }
  return missing;
}
