import type { ServerResponse } from 'node:http';

/**
 * Where the app's work for a request goes while it is pending, when a worker class runs one request at a time
 * (OneAtATime sets `track`; null otherwise, and nothing is done per request). A listener's promise (an async
 * listener, Koa's callback) or a Fetch handler's: the turn lasts until it has settled, not only until the
 * response closed, so a client that leaves early does not let the next request run beside a handler that
 * still runs.
 */
export const appWork: { track: ((res: ServerResponse, work: PromiseLike<unknown>) => void) | null } = { track: null };
