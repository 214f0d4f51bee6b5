/**
 * The metric names a PromQL expression reads, found with Prometheus' own PromQL grammar
 * (@prometheus-io/lezer-promql, the parser behind the Prometheus UI) rather than a regex:
 * label names, function names and `by (...)` lists are not metrics, and a name given as
 * `{__name__="x"}` is one. Grafana's interval variables are replaced by a duration first.
 */
import { parser } from '@prometheus-io/lezer-promql';

const GRAFANA_VARIABLES: [RegExp, string][] = [
  [/\$__rate_interval|\$__interval|\$__range/g, '5m'],
];

/** Every metric name `expr` selects; throws naming the expression when it does not parse. */
export function metricNames(expr: string): string[] {
  let q = expr;
  for (const [re, by] of GRAFANA_VARIABLES) q = q.replace(re, by);
  const names = new Set<string>();
  const errors: string[] = [];
  parser.parse(q).iterate({
    enter: (n) => {
      if (n.type.isError) errors.push(`at ${n.from}: ${JSON.stringify(q.slice(Math.max(0, n.from - 10), n.to + 10))}`);
      if (n.name === 'Identifier' && n.node.parent?.name === 'VectorSelector') names.add(q.slice(n.from, n.to));
      if (n.name === 'UnquotedLabelMatcher') {
        const m = /^__name__\s*=\s*"([^"]+)"$/.exec(q.slice(n.from, n.to));
        if (m) names.add(m[1]!);
      }
    },
  });
  if (errors.length > 0) throw new Error(`PromQL does not parse (${errors.join('; ')}): ${expr}`);
  return [...names].sort();
}
