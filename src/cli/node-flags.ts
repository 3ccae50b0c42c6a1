/**
 * Node options the master runs with, from the `tunicorn` bin's first line (`#!/usr/bin/env -S node ...`;
 * a unit test keeps the two the same). `--lite-mode`: the master spawns, watches and signals workers and never
 * serves a request, so V8's optimizing tiers buy it nothing; without them, and with feedback vectors
 * allocated lazily, its idle RSS is about 5 MB smaller (measured: 52.5 -> 47.1 MB). V8 reads the option at
 * start-up only, hence the command line and not `v8.setFlagsFromString`.
 */
export const MASTER_NODE_FLAGS: readonly string[] = ['--lite-mode'];

/** The Node options a worker starts with: the master's own (`--inspect`, `--cpu-prof` ...) without the above. */
export const workerExecArgv = (): string[] => process.execArgv.filter((a) => !MASTER_NODE_FLAGS.includes(a));
