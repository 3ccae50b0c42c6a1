import { existsSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
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

  /**
   * `fresh`: bypass the module caches, so a file that changed since it was last imported in this process is
   * read again (the config file on HUP). Each fresh import of plain JavaScript leaves one module instance in
   * Node's ESM cache, which cannot be emptied: a few KiB per reload.
   */
  constructor(
    private readonly baseDir: string,
    private readonly opts: { fresh?: boolean } = {},
  ) {}

  /** jiti costs ~14 MB of RSS once imported: a process that never meets TypeScript never loads it. */
  private async jiti(): Promise<Jiti> {
    if (this.#jiti) return this.#jiti;
    const { createJiti } = await import('jiti');
    this.#jiti = createJiti(pathToFileURL(path.join(this.baseDir, 'index.js')).href, {
      // fsCache is jiti's default (on); left unset so JITI_FS_CACHE=false can turn it off (the boot benchmark).
      moduleCache: !this.opts.fresh,
      interopDefault: false,
      sourceMaps: true,
      // `true`, not a path: jiti makes a child instance per imported module, and each finds the tsconfig.json
      // nearest that module, so every file gets the `paths` of its own project (checked with a fixture
      // whose tsconfig is below the working directory's, and with the working directory outside it).
      tsconfigPaths: true,
    });
    return this.#jiti;
  }

  async import(file: string): Promise<Record<string, unknown>> {
    if (/\.(c|m)?js$/.test(file)) {
      const url = pathToFileURL(file);
      if (this.opts.fresh) url.search = `?v=${process.hrtime.bigint()}`;
      return (await import(url.href)) as Record<string, unknown>;
    }
    return (await (await this.jiti()).import(file)) as Record<string, unknown>;
  }

  /** Resolves a bare package specifier (or a path) from the base directory. */
  async resolve(spec: string): Promise<string> {
    if (spec.startsWith('.') || path.isAbsolute(spec)) return path.resolve(this.baseDir, spec);
    const local = path.resolve(this.baseDir, spec);
    if (existsSync(local)) return local;
    try {
      return createRequire(path.join(this.baseDir, 'index.js')).resolve(spec);
    } catch (err) {
      // An ESM-only package (no "require" condition in its exports) is found by jiti's ESM resolver.
      const jiti = await this.jiti().catch(() => null);
      if (!jiti) throw err;
      // A URL: a path with a space or a non-ASCII character in it is percent-encoded there.
      const url = jiti.esmResolve(spec, { parentURL: pathToFileURL(path.join(this.baseDir, 'index.js')).href, try: false });
      return url.startsWith('file:') ? fileURLToPath(url) : url;
    }
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
