/**
 * A strict reader of Prometheus's text exposition format (0.0.4), for the tests of `GET /metrics`: it throws
 * on any line that is not a valid sample, HELP or TYPE line, on a family whose HELP or TYPE comes twice or
 * after its samples, on samples of one family that are not together, and on a histogram whose buckets are not
 * cumulative or whose +Inf bucket is not its _count.
 */
export interface ParsedSample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface ParsedFamily {
  readonly name: string;
  help: string | null;
  type: string | null;
  readonly samples: ParsedSample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(raw: string, line: string): number {
  if (raw === '+Inf') return Infinity;
  if (raw === '-Inf') return -Infinity;
  if (raw === 'NaN') return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(raw)) throw new Error(`not a float value ${JSON.stringify(raw)} in ${JSON.stringify(line)}`);
  return Number(raw);
}

/** name{a="x",b="y"} value: the labels read with their escapes (\\, \", \n). */
function parseSample(line: string): ParsedSample {
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line);
  if (!m) throw new Error(`no metric name in ${JSON.stringify(line)}`);
  const name = m[1]!;
  let i = name.length;
  const labels: Record<string, string> = {};
  if (line[i] === '{') {
    i++;
    while (line[i] !== '}') {
      const k = /^([a-zA-Z_][a-zA-Z0-9_]*)="/.exec(line.slice(i));
      if (!k || !LABEL_NAME.test(k[1]!)) throw new Error(`bad label at ${i} in ${JSON.stringify(line)}`);
      if (k[1]! in labels) throw new Error(`label ${k[1]} twice in ${JSON.stringify(line)}`);
      i += k[0].length;
      let v = '';
      for (;;) {
        const c = line[i++];
        if (c === undefined) throw new Error(`unterminated label value in ${JSON.stringify(line)}`);
        if (c === '"') break;
        if (c === '\\') {
          const e = line[i++];
          if (e === 'n') v += '\n';
          else if (e === '\\' || e === '"') v += e;
          else throw new Error(`bad escape \\${e} in ${JSON.stringify(line)}`);
        } else v += c;
      }
      labels[k[1]!] = v;
      if (line[i] === ',') i++;
      else if (line[i] !== '}') throw new Error(`expected , or } at ${i} in ${JSON.stringify(line)}`);
    }
    i++;
  }
  if (line[i] !== ' ') throw new Error(`expected one space before the value in ${JSON.stringify(line)}`);
  const rest = line.slice(i + 1).split(' ');
  // A timestamp may follow; the master sends none.
  if (rest.length !== 1) throw new Error(`unexpected fields after the value in ${JSON.stringify(line)}`);
  return { name, labels, value: parseValue(rest[0]!, line) };
}

/** The family a sample belongs to: histogram samples carry _bucket, _sum, _count. */
function familyOf(name: string, families: Map<string, ParsedFamily>): string {
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (name.endsWith(suffix)) {
      const base = name.slice(0, -suffix.length);
      if (families.get(base)?.type === 'histogram') return base;
    }
  }
  return name;
}

export function parseExposition(text: string): Map<string, ParsedFamily> {
  if (text !== '' && !text.endsWith('\n')) throw new Error('the exposition does not end with a line feed');
  const families = new Map<string, ParsedFamily>();
  const done = new Set<string>();
  let current: string | null = null;
  const family = (name: string): ParsedFamily => {
    if (!NAME.test(name)) throw new Error(`bad metric name ${JSON.stringify(name)}`);
    if (current !== name) {
      if (done.has(name)) throw new Error(`the lines of family ${name} are not together`);
      if (current) done.add(current);
      current = name;
    }
    let f = families.get(name);
    if (!f) families.set(name, (f = { name, help: null, type: null, samples: [] }));
    return f;
  };
  for (const line of text.split('\n').slice(0, -1)) {
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
      if (!m) {
        if (/^# (HELP|TYPE)\b/.test(line)) throw new Error(`bad ${line.slice(2, 6)} line ${JSON.stringify(line)}`);
        continue; // a comment
      }
      const f = family(m[2]!);
      if (f.samples.length > 0) throw new Error(`${m[1]} of ${f.name} after its samples`);
      if (m[1] === 'HELP') {
        if (f.help !== null) throw new Error(`HELP of ${f.name} twice`);
        f.help = m[3]!;
      } else {
        if (f.type !== null) throw new Error(`TYPE of ${f.name} twice`);
        if (!TYPES.has(m[3]!)) throw new Error(`unknown TYPE ${m[3]} of ${f.name}`);
        f.type = m[3]!;
      }
      continue;
    }
    if (line.trim() === '') throw new Error('an empty line');
    const s = parseSample(line);
    family(familyOf(s.name, families)).samples.push(s);
  }
  for (const f of families.values()) {
    if (f.type === 'counter' && !f.name.endsWith('_total')) throw new Error(`counter ${f.name} does not end with _total`);
    if (f.type === 'histogram') checkHistogram(f);
    const seen = new Set<string>();
    for (const s of f.samples) {
      const key = `${s.name}${JSON.stringify(Object.entries(s.labels).sort())}`;
      if (seen.has(key)) throw new Error(`sample ${key} twice`);
      seen.add(key);
    }
  }
  return families;
}

function checkHistogram(f: ParsedFamily): void {
  const groups = new Map<string, { buckets: [number, number][]; sum?: number; count?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { buckets: [] }));
    if (s.name === `${f.name}_bucket`) {
      if (le === undefined) throw new Error(`${s.name} without le`);
      g.buckets.push([parseValue(le, le), s.value]);
    } else if (s.name === `${f.name}_sum`) g.sum = s.value;
    else if (s.name === `${f.name}_count`) g.count = s.value;
    else throw new Error(`${s.name} in histogram ${f.name}`);
  }
  for (const [key, g] of groups) {
    if (g.sum === undefined || g.count === undefined) throw new Error(`histogram ${f.name}${key} without _sum or _count`);
    for (let i = 1; i < g.buckets.length; i++) {
      if (!(g.buckets[i]![0] > g.buckets[i - 1]![0])) throw new Error(`histogram ${f.name}: le not ascending`);
      if (g.buckets[i]![1] < g.buckets[i - 1]![1]) throw new Error(`histogram ${f.name}: buckets not cumulative`);
    }
    const last = g.buckets.at(-1);
    if (!last || last[0] !== Infinity) throw new Error(`histogram ${f.name}: no +Inf bucket`);
    if (last[1] !== g.count) throw new Error(`histogram ${f.name}: +Inf bucket ${last[1]} is not _count ${g.count}`);
  }
}

/** The value of the sample `name` whose labels include `labels`; undefined when there is none. */
export function sampleValue(families: Map<string, ParsedFamily>, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const f of families.values())
    for (const s of f.samples) if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) return s.value;
  return undefined;
}

/** The sum of the samples `name` whose labels include `labels`. */
export function sampleSum(families: Map<string, ParsedFamily>, name: string, labels: Record<string, string> = {}): number {
  let n = 0;
  for (const f of families.values())
    for (const s of f.samples) if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) n += s.value;
  return n;
}
