/**
 * Node options the master runs with, from the `tunicorn` bin's first lines (`#!/bin/sh`, then `exec node ...`;
 * a unit test keeps the two the same). The master spawns, watches and signals workers and never serves a
 * request, so V8's compilers beyond the interpreter buy it nothing; without them (`--no-opt`: no TurboFan,
 * `--no-sparkplug`: no baseline code) its idle RSS is about 5 MB smaller (measured: 52.5 -> 47.8 MB). From Node
 * 22 V8 also has Maglev, a mid-tier compiler on by default: `--no-maglev` took Node 26.12's idle master from 58.4
 * to 54.5 MB (Node 20 has the flag, with Maglev off, and is unchanged: 49.0 MB). V8 reads
 * these at start-up only, hence the command line and not `v8.setFlagsFromString` (tried: no change).
 * `--lite-mode` saves as much but turns WebAssembly off, and Node's fetch() (undici) needs it: a config hook
 * or `--check-config` of a Fetch app failed with it. `--max-semi-space-size=1` keeps V8's young generation at its
 * first size (1 MB a semi-space) instead of letting the start's allocations (the config, the app under
 * --preload) grow it for good: an idle master with two workers (bench/memprobe.ts) went from 50.3-50.5 to 50.0 MB
 * on Node 20.20 (six runs), and from 56.7-56.9 to 55.4 MB on Node 26.12. The master's later work (signals, a
 * scrape, a HUP) allocates little; a smaller young generation costs it a few more scavenges.
 */
export const MASTER_NODE_FLAGS: readonly string[] = ['--no-opt', '--no-sparkplug', '--no-maglev', '--max-semi-space-size=1'];

/** Node's default inspector port. */
const INSPECT_DEFAULT_PORT = 9229;

/** The options that turn the inspector on, with or without `=[host:]port`. */
const INSPECT_ON = /^--inspect(?:-brk|-wait)?(?:=(.*))?$/;
/** The option that sets its address alone. */
const INSPECT_PORT = /^--inspect-port=(.*)$|^--debug-port=(.*)$/;

/** The port of an inspector address `[host:]port`; NaN when it is not one. */
function portOf(address: string): number {
  const colon = address.lastIndexOf(':');
  const text = colon < 0 ? address : address.slice(colon + 1);
  return /^\d+$/.test(text) ? Number(text) : NaN;
}

/**
 * The inspector port of the worker with this age (1 for the first worker spawned, 2 for the next...), or
 * undefined when the master runs without the inspector. Node options come from NODE_OPTIONS, then the command
 * line, the later one winning, as Node reads them. Every worker would otherwise inherit the master's port and
 * fail to listen on it ("address already in use"): as `node:cluster` does, each worker takes the master's
 * port plus its age, counted over 1024-65535, so a replacement never takes the port of a worker still
 * draining. Port 0 (any free port) stays 0.
 */
export function workerInspectPort(execArgv: readonly string[], nodeOptions: string | undefined, age: number): number | undefined {
  let on = false;
  let port = INSPECT_DEFAULT_PORT;
  for (const arg of [...(nodeOptions ?? '').split(/\s+/), ...execArgv]) {
    const inspect = INSPECT_ON.exec(arg);
    const address = inspect ? inspect[1] : INSPECT_PORT.exec(arg)?.slice(1).find((v) => v !== undefined);
    if (inspect) on = true;
    if (address !== undefined && !Number.isNaN(portOf(address))) port = portOf(address);
  }
  if (!on) return undefined;
  if (port === 0) return 0;
  const span = 65536 - 1024;
  return 1024 + ((port - 1024 + age) % span + span) % span;
}

/**
 * The Node options a worker starts with: the master's own (`--inspect`, `--cpu-prof` ...) without the above,
 * and the worker's own inspector port when there is one (see workerInspectPort).
 */
export function workerExecArgv(inspectPort?: number): string[] {
  const args = process.execArgv.filter((a) => !MASTER_NODE_FLAGS.includes(a));
  if (inspectPort !== undefined) args.push(`--inspect-port=${inspectPort}`);
  return args;
}
