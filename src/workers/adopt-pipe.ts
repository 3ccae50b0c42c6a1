import type net from 'node:net';

/** A raw Pipe handle as Node's pipe_wrap makes it (the part used here). */
interface PipeHandle {
  listen(backlog: number): number;
  onconnection?: unknown;
  [key: symbol]: unknown;
}

/** What net.Server sets on the handle it listens on: its connection callback and the owner back-reference. */
interface NetInternals {
  readonly onconnection: unknown;
  readonly owner: symbol;
}

let internals: NetInternals | null | undefined;

/**
 * Learns net's connection callback and owner symbol from a server that listened the ordinary way (the
 * worker's first acceptors, on inherited descriptors). Found once; null when this Node does not have them
 * where Node 20 to 24 put them, and then `adoptPipe` declines.
 */
export function learnNetInternals(server: net.Server): void {
  if (internals) return;
  const h = (server as unknown as { _handle?: PipeHandle | null })._handle;
  if (!h) return;
  const owner = Object.getOwnPropertySymbols(h).find((s) => s.description === 'owner_symbol');
  internals = typeof h.onconnection === 'function' && owner ? { onconnection: h.onconnection, owner } : null;
}

export function isPipeHandle(h: object): h is PipeHandle {
  return h.constructor?.name === 'Pipe' && typeof (h as PipeHandle).listen === 'function';
}

/**
 * Makes `server` listen on a Pipe handle received over IPC, as net.Server does for a TCP handle. Given a
 * Pipe, `server.listen(handle)` opens a second handle on the same descriptor instead, and the received one
 * can then be neither used nor closed (closing it would close the descriptor under the server): one handle
 * left behind per resume, which a sync worker on a `unix:` bind does for every connection. Returns false
 * (nothing done) when net's internals are unknown; the caller then listens the ordinary way.
 */
export function adoptPipe(server: net.Server, handle: PipeHandle, backlog: number): boolean {
  if (!internals) return false;
  const err = handle.listen(backlog);
  if (err) throw Object.assign(new Error(`listen on a leased Unix socket failed (${err})`), { errno: err });
  handle.onconnection = internals.onconnection;
  handle[internals.owner] = server;
  (server as unknown as { _handle: PipeHandle })._handle = handle;
  return true;
}
