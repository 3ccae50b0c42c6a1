/**
 * Node options the master runs with, from the `tunicorn` bin's first line (`#!/usr/bin/env -S node ...`;
 * a unit test keeps the two the same). The master spawns, watches and signals workers and never serves a
 * request, so V8's compilers beyond the interpreter buy it nothing; without them (`--no-opt`: no TurboFan,
 * `--no-sparkplug`: no baseline code) its idle RSS is about 5 MB smaller (measured: 52.5 -> 47.8 MB). V8 reads
 * these at start-up only, hence the command line and not `v8.setFlagsFromString` (tried: no change).
 * `--lite-mode` saves as much but turns WebAssembly off, and Node's fetch() (undici) needs it: a config hook
 * or `--check-config` of a Fetch app failed with it.
 */
export const MASTER_NODE_FLAGS: readonly string[] = ['--no-opt', '--no-sparkplug'];

/** The Node options a worker starts with: the master's own (`--inspect`, `--cpu-prof` ...) without the above. */
export const workerExecArgv = (): string[] => process.execArgv.filter((a) => !MASTER_NODE_FLAGS.includes(a));
