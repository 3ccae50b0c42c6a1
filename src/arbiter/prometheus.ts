/**
 * Prometheus's text exposition format, version 0.0.4: what the master's `GET /metrics` answers (the `metrics`
 * setting). Families of samples in, text out; nothing here knows where the numbers come from (metrics.ts).
 */

export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export type Labels = Readonly<Record<string, string>>;

export interface Sample {
  readonly labels?: Labels;
  readonly value: number;
}

export interface HistogramSample {
  readonly labels?: Labels;
  /** Upper bounds, ascending, without +Inf. */
  readonly bounds: readonly number[];
  /** Observations per bucket, each its own (not cumulative): one more than `bounds`, the last being +Inf's. */
  readonly counts: readonly number[];
  readonly sum: number;
}

export type Family =
  | { readonly name: string; readonly help: string; readonly type: 'counter' | 'gauge'; readonly samples: readonly Sample[] }
  | { readonly name: string; readonly help: string; readonly type: 'histogram'; readonly samples: readonly HistogramSample[] };

/** A sample's value: Go's formatting of a float, as Prometheus parses it (`+Inf`, `-Inf`, `NaN`). */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/** A label value: backslash, double quote and line feed escaped. */
export function escapeLabel(v: string): string {
  return v.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}

/** A HELP text: backslash and line feed escaped (a double quote is left as it is). */
export function escapeHelp(v: string): string {
  return v.replace(/[\\\n]/g, (c) => (c === '\n' ? '\\n' : '\\\\'));
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function labelText(labels: Labels | undefined, extra?: readonly [string, string]): string {
  const pairs = Object.entries(labels ?? {});
  if (extra) pairs.push([extra[0], extra[1]]);
  if (pairs.length === 0) return '';
  return `{${pairs
    .map(([k, v]) => {
      // Our own names only: a bad one is a bug, not a user's mistake.
      if (!LABEL.test(k) || k.startsWith('__')) throw new Error(`invalid Prometheus label name ${JSON.stringify(k)}`);
      return `${k}="${escapeLabel(v)}"`;
    })
    .join(',')}}`;
}

/** The exposition of `families`, each with its HELP and TYPE line once, in the order given. */
export function exposition(families: readonly Family[]): string {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const f of families) {
    if (!NAME.test(f.name)) throw new Error(`invalid Prometheus metric name ${JSON.stringify(f.name)}`);
    if (seen.has(f.name)) throw new Error(`Prometheus metric family ${f.name} given twice`);
    seen.add(f.name);
    out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    if (f.type !== 'histogram') {
      for (const s of f.samples) out.push(`${f.name}${labelText(s.labels)} ${formatValue(s.value)}`);
      continue;
    }
    for (const h of f.samples) {
      if (h.counts.length !== h.bounds.length + 1) throw new Error(`histogram ${f.name}: ${h.counts.length} counts for ${h.bounds.length} bounds`);
      let cumulative = 0;
      h.bounds.forEach((b, i) => {
        cumulative += h.counts[i]!;
        out.push(`${f.name}_bucket${labelText(h.labels, ['le', formatValue(b)])} ${formatValue(cumulative)}`);
      });
      cumulative += h.counts[h.bounds.length]!;
      out.push(`${f.name}_bucket${labelText(h.labels, ['le', '+Inf'])} ${formatValue(cumulative)}`);
      out.push(`${f.name}_sum${labelText(h.labels)} ${formatValue(h.sum)}`);
      out.push(`${f.name}_count${labelText(h.labels)} ${formatValue(cumulative)}`);
    }
  }
  return out.length ? `${out.join('\n')}\n` : '';
}
