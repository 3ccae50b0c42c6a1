/**
 * The shape of Gunicorn's access_log_format, shared by the config check (a format with an unknown atom stops
 * the start, or a HUP, with one line) and the compiler in access-log.ts (which must stay importable from the
 * config without the log's own modules).
 */

/** The atoms that name a value (access-log.ts's table has one function for each). */
export const ACCESS_ATOMS = ['h', 'l', 'u', 't', 'r', 'm', 'U', 'q', 'H', 's', 'B', 'b', 'f', 'a', 'T', 'M', 'D', 'L', 'p', 'Q'] as const;

/**
 * One token of a format: `%%` (a literal `%`, as Python's `%` operator, which Gunicorn formats with, reads it)
 * or `%(NAME)s` with NAME an atom or `{name}i`, `{name}o`, `{name}e`. A fresh regex each time: it is global.
 */
export const accessTokens = (): RegExp => /%%|%\((\{[^}]*\}[ioe]|[A-Za-z]+)\)s/g;

/** What is wrong with a format (an unknown atom, one not written `%(NAME)s`), or undefined. */
export function accessFormatProblem(format: string): string | undefined {
  const re = accessTokens();
  let last = 0;
  for (let m = re.exec(format); m; m = re.exec(format)) {
    const bad = malformedAtom(format.slice(last, m.index));
    if (bad) return bad;
    last = m.index + m[0].length;
    const name = m[1];
    if (name === undefined || name.startsWith('{')) continue;
    if (!(ACCESS_ATOMS as readonly string[]).includes(name))
      return `unknown atom %(${name})s; known: ${ACCESS_ATOMS.join(' ')}, {header}i, {header}o, {var}e`;
  }
  return malformedAtom(format.slice(last));
}

/**
 * A `%(` in the format's own text: an atom not written `%(NAME)s` (`%(h) -`, `%(D)d`, `%(h)15s`), which
 * would be written as it is on every line, where Gunicorn's Python formatting fails or pads. `%%(` is a
 * literal `%(` (the `%%` is a token of its own).
 */
function malformedAtom(text: string): string | undefined {
  const at = text.indexOf('%(');
  if (at < 0) return undefined;
  // The atom as Python's formatting would read it: flags, a width, a precision, a conversion.
  const shown = /^%\([^)]*\)?[-#0 +]*\d*(?:\.\d*)?[A-Za-z]?/.exec(text.slice(at))![0].trimEnd();
  return `${JSON.stringify(shown)} is not an atom: write it %(NAME)s, with no width or other conversion (%% for a literal %)`;
}

/**
 * With --log-format json, a format other than Gunicorn's default is a JSON template: what is wrong with it
 * as one, or undefined. Each atom must sit inside a JSON string (its value is written JSON-escaped there, and
 * `-` for none, which is no JSON number); the template, every atom read as a letter, must be one JSON object.
 */
export function jsonTemplateProblem(format: string): string | undefined {
  const sample = format.replace(accessTokens(), (t) => (t === '%%' ? '%' : 'x'));
  let parsed: unknown;
  try {
    parsed = JSON.parse(sample);
  } catch (err) {
    return `it is not JSON with each atom inside a string (${(err as Error).message}; read with each atom as x: ${sample})`;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return 'it is not a JSON object ({...})';
  if (sample.includes('\n') || sample.includes('\r')) return 'it spans lines: a JSON log line is one line';
  return undefined;
}
