import { existsSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Jiti } from 'jiti';

/**
 * Imports the user's modules (the app and the config file) as they are, TypeScript included.
 *
 * Node 20 cannot strip types, so TypeScript goes through jiti, which also emits decorator metadata (NestJS
 * constructor injection needs it; esbuild-based loaders do not emit it) and caches its transforms on disk so
 * a restarted worker boots fast. Plain JavaScript is imported natively: no transform, true ESM semantics.
 */
export class ModuleImporter {
  #jiti: Jiti | undefined;

  constructor(private readonly baseDir: string) {}

  /**
   * Loaded on first use: jiti adds about 15 MB to a process's RSS (measured on Node 20), which a master with
   * no TypeScript config and a worker serving plain JavaScript need not pay.
   */
  private async jiti(): Promise<Jiti> {
    if (!this.#jiti) {
      const { createJiti } = await import('jiti');
      this.#jiti = createJiti(pathToFileURL(path.join(this.baseDir, 'index.js')).href, {
        fsCache: true,
        moduleCache: true,
        interopDefault: false,
        sourceMaps: true,
        tsconfigPaths: true,
      } as Parameters<typeof createJiti>[1]);
    }
    return this.#jiti;
  }

  async import(file: string): Promise<Record<string, unknown>> {
    if (/\.(c|m)?js$/.test(file)) {
      return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
    }
    return (await (await this.jiti()).import(file)) as Record<string, unknown>;
  }

  /** Resolves a bare package specifier (or a path) from the base directory. */
  async resolve(spec: string): Promise<string> {
    if (spec.startsWith('.') || path.isAbsolute(spec)) return path.resolve(this.baseDir, spec);
    const local = path.resolve(this.baseDir, spec);
    if (existsSync(local)) return local;
    return (await this.jiti()).esmResolve(spec, { parentURL: pathToFileURL(path.join(this.baseDir, 'index.js')).href, try: false })
      .replace(/^file:\/\//, '');
  }
}

/** CommonJS compiled from ESM yields `{ __esModule, default }` as `module.exports`; unwrap it. */
export function unwrapDefault(value: unknown): unknown {
  let v = value;
  for (let i = 0; i < 3; i++) {
    if (v && typeof v === 'object' && 'default' in v && ('__esModule' in v || Object.keys(v).length === 1)) {
      v = (v as { default: unknown }).default;
    } else break;
  }
  return v;
}
