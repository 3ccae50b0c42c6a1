import { existsSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { createJiti, type Jiti } from 'jiti';

/**
 * Imports the user's modules (the app and the config file) as they are, TypeScript included.
 *
 * Node 20 cannot strip types, so TypeScript goes through jiti, which also emits decorator metadata (NestJS
 * constructor injection needs it; esbuild-based loaders do not emit it) and caches its transforms on disk so
 * a restarted worker boots fast. Plain JavaScript is imported natively: no transform, true ESM semantics.
 */
export class ModuleImporter {
  /** One jiti per tsconfig.json, so each file is compiled with the `paths` of the project it belongs to. */
  readonly #jitis = new Map<string, Jiti>();

  constructor(private readonly baseDir: string) {}

  private jitiFor(file: string | null): Jiti {
    const tsconfig = file ? nearestTsconfig(path.dirname(file)) : null;
    const key = tsconfig ?? '';
    let jiti = this.#jitis.get(key);
    if (!jiti) {
      jiti = createJiti(pathToFileURL(path.join(this.baseDir, 'index.js')).href, {
        // fsCache is jiti's default (on); left unset so JITI_FS_CACHE=false can turn it off.
        moduleCache: true,
        interopDefault: false,
        sourceMaps: true,
        // jiti resolves `compilerOptions.paths` of this tsconfig; without one there is nothing to resolve.
        tsconfigPaths: tsconfig ?? false,
      });
      this.#jitis.set(key, jiti);
    }
    return jiti;
  }

  async import(file: string): Promise<Record<string, unknown>> {
    if (/\.(c|m)?js$/.test(file)) {
      return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
    }
    return (await this.jitiFor(file).import(file)) as Record<string, unknown>;
  }

  /** Resolves a bare package specifier (or a path) from the base directory. */
  resolve(spec: string): string {
    if (spec.startsWith('.') || path.isAbsolute(spec)) return path.resolve(this.baseDir, spec);
    const local = path.resolve(this.baseDir, spec);
    if (existsSync(local)) return local;
    return this.jitiFor(null)
      .esmResolve(spec, { parentURL: pathToFileURL(path.join(this.baseDir, 'index.js')).href, try: false })
      .replace(/^file:\/\//, '');
  }
}

/** The tsconfig.json that governs a file: the nearest one in its directory or above, as tsc finds it. */
export function nearestTsconfig(dir: string): string | null {
  for (let d = dir; ; ) {
    const candidate = path.join(d, 'tsconfig.json');
    if (existsSync(candidate)) return candidate;
    const up = path.dirname(d);
    if (up === d) return null;
    d = up;
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
