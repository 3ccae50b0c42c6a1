// What every benchmarked server answers, whatever its shape: the seed's hello app plus the secondary loads.
export const HELLO = JSON.stringify({ message: 'Hello World' });
/** The 1 MB response, allocated once so the benchmark measures the server, not the allocator. */
export const BIG = Buffer.alloc(1024 * 1024, 'x');
/** The I/O-bound handler's wait. */
export const SLOW_MS = 50;
