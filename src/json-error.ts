/**
 * A JSON.parse error in `text` as a reason and a place: V8's message without its position, and that position
 * as a 1-based line and column (null when the message gives none, as for an empty text).
 */
export function jsonError(err: unknown, text: string): { reason: string; line: number | null; column: number | null } {
  const message = (err as Error).message;
  const reason = message.replace(/ in JSON at position \d+.*$/s, '').split('\n')[0]!;
  const at = /at position (\d+)/.exec(message);
  if (!at) return { reason, line: null, column: null };
  const before = text.slice(0, Number(at[1]));
  return { reason, line: before.split('\n').length, column: Number(at[1]) - before.lastIndexOf('\n') };
}
