/** The raw results file (bench/results/latest.json): everything docs/benchmarks.md is generated from. */
import type { Sample } from './load.js';

export interface Memory {
  readonly master: number | null;
  readonly workers: (number | null)[];
}

export interface ServerResult {
  readonly label: string;
  readonly tunicorn: boolean;
  readonly command: string;
  startupMs: number | null;
  idle: Memory | null;
  loaded: Memory | null;
  /**
   * Wakeups a second of every thread of the master and its workers, idle after the loads (voluntary context
   * switches, /proc); absent in results from before 2026-12-07.
   */
  idleWakeups?: number | null;
  hupMs: number[];
  error?: string;
}

export interface LoadResult {
  readonly id: string;
  readonly label: string;
  readonly rounds: number;
  readonly seconds: number;
  /** Seconds a server of the unrecorded round that came before the measured ones (absent: no such round). */
  readonly warmupSeconds?: number;
  readonly command: string;
  readonly servers: string[];
  /** Per server, one sample per round, in round order (null: that run failed). */
  readonly samples: Record<string, (Sample | null)[]>;
}

export interface RawResults {
  readonly date: string;
  readonly mode: 'full' | 'quick';
  readonly durationS: number;
  readonly machine: Record<string, string | number>;
  readonly versions: Record<string, string>;
  readonly generator: string;
  readonly command: string;
  readonly skipped: { what: string; why: string }[];
  readonly servers: Record<string, ServerResult>;
  readonly loads: LoadResult[];
  /** Seconds each server's idle wakeups were counted over (ServerResult.idleWakeups); absent before 2026-12-07. */
  readonly idleWakeSeconds?: number;
  readonly extra: Record<string, unknown>;
}
