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

/** What is wrong with a format (an unknown atom), or undefined. */
export function accessFormatProblem(format: string): string | undefined {
  const re = accessTokens();
  for (let m = re.exec(format); m; m = re.exec(format)) {
    const name = m[1];
    if (name === undefined || name.startsWith('{')) continue;
    if (!(ACCESS_ATOMS as readonly string[]).includes(name))
      return `unknown atom %(${name})s; known: ${ACCESS_ATOMS.join(' ')}, {header}i, {header}o, {var}e`;
  }
  return undefined;
}
