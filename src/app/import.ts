import { accessSync, constants as fsConstants, existsSync, lstatSync, mkdirSync, realpathSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Jiti, JitiOptions } from 'jiti';
import { jsxOptions, TsconfigReader, type JsxOptions, type NearestTsconfig } from './tsconfig.js';
import { lazy } from '../lazy.js';

type TransformOptions = Parameters<NonNullable<JitiOptions['transform']>>[0];
type TransformResult = ReturnType<NonNullable<JitiOptions['transform']>>;
/** A babel plugin, as babel calls it: with its API (`types` among it). */
type BabelPlugin = (api: { types: { traverseFast(node: unknown, enter: (node: BabelNode) => void): void } }) => Record<string, unknown>;
interface BabelNode {
  type: string;
  loc?: { start: { line: number; column: number } } | null;
}

/** Bumped when the loader compiles differently: the transforms jiti cached before are not used. */
const TRANSFORM_VERSION = 1;

/**
 * Imports the user's modules (the app and the config file) as they are, TypeScript included.
 *
 * Node 20 cannot strip types, so TypeScript goes through jiti, which also emits decorator metadata (NestJS
 * constructor injection needs it; esbuild-based loaders do not emit it) and caches its transforms on disk so
 * a restarted worker boots fast. Plain JavaScript is imported natively: no transform, true ESM semantics.
 */
/** Stack frames kept while a module loads (see ModuleImporter.import). */
const LOAD_STACK_FRAMES = 50;

/** JITI_FS_CACHE=false (or the older JITI_CACHE=false) turns the transform cache off, as jiti reads it. */
function transformCacheTurnedOff(): boolean {
  const value = process.env.JITI_FS_CACHE ?? process.env.JITI_CACHE;
  if (value === undefined) return false;
  try {
    return !JSON.parse(value);
  } catch {
    return false; // jiti reads what is not JSON as its default, on
  }
}

/** This process's user id (0 where there are none: Windows). */
const uid = (): number => process.getuid?.() ?? 0;

/**
 * Where the transforms may be cached, in this order: `node_modules/.cache/jiti` beside the working directory
 * when there is a node_modules (jiti's choice), else a folder of this user's own in the OS temporary directory,
 * `jiti-uidN` (see privateDir).
 */
function transformCacheBases(baseDir: string, user = uid()): string[] {
  const modules = path.join(baseDir, 'node_modules');
  return [...(existsSync(modules) ? [path.join(modules, '.cache', 'jiti')] : []), path.join(tmpdir(), `jiti-uid${user}`)];
}

/**
 * Whether `dir`, in the OS temporary directory, is this user's alone: a transform found in the cache is run as
 * the app's code, so a folder another user made, or may write in (jiti's own default, a shared `/tmp/jiti`),
 * would let that user run code as this one. It must be a directory (not a link) this user owns, that neither
 * group nor others may write in.
 */
function privateDir(dir: string, user = uid()): boolean {
  try {
    const s = lstatSync(dir);
    return s.isDirectory() && s.uid === user && (s.mode & 0o022) === 0;
  } catch {
    return false;
  }
}

/** The workers' user and group when they are not this process's (`user`, `group`: a master started as root). */
export interface WorkerIds {
  readonly uid: number;
  readonly gid: number;
}

/**
 * Whether `ids` may write in a folder of this mode and owner, by its permission bits: this process (root) can
 * write anywhere but a read-only file system (which access() tells), the workers only where the bits let them.
 * Their supplementary groups (`initgroups`) are not known here: only their group counts.
 */
function bitsLetWrite(s: { uid: number; gid: number; mode: number }, ids: WorkerIds): boolean {
  if (ids.uid === 0) return true;
  if (s.uid === ids.uid) return (s.mode & 0o200) !== 0;
  if (s.gid === ids.gid) return (s.mode & 0o020) !== 0;
  return (s.mode & 0o002) !== 0;
}

/**
 * Can the workers make (or write in) this cache folder? Looked at without making anything, as this process,
 * or, given `ids`, as the workers' user and group.
 */
function canWrite(dir: string, temporary: boolean, ids: WorkerIds | null): boolean {
  for (let d = dir; ; d = path.dirname(d)) {
    if (existsSync(d)) {
      if (temporary && d === dir && !privateDir(d, ids?.uid)) return false;
      try {
        accessSync(d, fsConstants.W_OK);
        const s = statSync(d);
        return s.isDirectory() && (ids === null || bitsLetWrite(s, ids));
      } catch {
        return false;
      }
    }
    if (path.dirname(d) === d) return false;
  }
}

/**
 * The master's line at start when no directory can hold the transform cache (a read-only node_modules and
 * temporary directory, as in a container with a read-only root file system), or null: each worker then
 * compiles the app's TypeScript again as it starts, which it says nowhere else.
 */
export function transformCacheLine(baseDir: string, workers: WorkerIds | null = null): string | null {
  if (transformCacheTurnedOff()) return null;
  // A master started as root looks as the workers' user (`user`), who makes and writes the cache.
  const ids = workers && workers.uid !== uid() ? workers : null;
  const bases = transformCacheBases(baseDir, ids?.uid);
  if (bases.some((b, i) => canWrite(b, i === bases.length - 1, ids))) return null;
  return `TypeScript transforms are not cached (not writable, or not this user's own: ${bases.join(', ')}): each worker compiles the app as it starts. Set TMPDIR to a writable directory to cache them, or JITI_FS_CACHE=false to say no cache is meant`;
}

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
    const common = { interopDefault: false, sourceMaps: true };
    // jiti's own transform (babel), called by ours: no cache of its own, and only ever asked to transform.
    const babel = createJiti(pathToFileURL(path.join(this.baseDir, 'index.js')).href, { ...common, fsCache: false, moduleCache: false });
    const jiti = createJiti(pathToFileURL(path.join(this.baseDir, 'index.js')).href, {
      // fsCache is jiti's default (on); left unset so JITI_FS_CACHE=false can turn it off (the boot benchmark).
      moduleCache: !this.opts.fresh,
      ...common,
      // `true`, not a path: jiti makes a child instance per imported module, and each finds the tsconfig.json
      // nearest that module, so every file gets the `paths` of its own project (checked with a fixture
      // whose tsconfig is below the working directory's, and with the working directory outside it).
      tsconfigPaths: true,
      // .jsx is jiti's only when its own JSX option is on (JITI_JSX): ours is set per file, by the transform.
      extensions: [...new Set([...babel.options.extensions!, '.jsx'])],
      transform: (opts) => this.transform(babel, opts),
    });
    // jiti keys its cached transforms by the source alone, but ours also depend on the tsconfig.json (its JSX
    // and decorator options): the cache goes in a directory of jiti's named after this loader's version and
    // the options of the working directory's tsconfig.json, so a change to them compiles again.
    jiti.options.fsCache = false;
    if (!transformCacheTurnedOff()) {
      const { options } = this.#tsconfigs.forFile(this.baseDir, true);
      const key = lazy.crypto().createHash('sha256').update(JSON.stringify([TRANSFORM_VERSION, options])).digest('hex').slice(0, 12);
      // Each must be writable: made by another user (the master as root, --check-config, --preload, a server of
      // another user), a worker that runs as --user could read it but not add to it, and jiti's write of a new
      // transform would fail the load (EACCES). Then a directory of this user's own. And where node_modules is
      // read-only (a container image's), jiti caches nothing at all: the OS temporary directory serves then,
      // in a folder of this user's alone (privateDir). With none, no cache (the master says so once as it
      // starts: transformCacheLine).
      const bases = transformCacheBases(this.baseDir);
      found: for (const [i, base] of bases.entries()) {
        if (i === bases.length - 1) {
          try {
            mkdirSync(base, { mode: 0o700 });
          } catch {
            // there already (checked next), or cannot be made
          }
          if (!privateDir(base)) break;
        }
        for (const name of [`tunicorn-${key}`, `tunicorn-${key}-uid${uid()}`]) {
          try {
            mkdirSync(path.join(base, name), { recursive: true });
            accessSync(path.join(base, name), fsConstants.W_OK);
            jiti.options.fsCache = path.join(base, name);
            break found;
          } catch {
            // the next one, or no cache
          }
        }
      }
    }
    this.#jiti = jiti;
    return jiti;
  }

  /**
   * Compiles one file as tsc would with the tsconfig.json nearest it: JSX (.tsx, .jsx) with its `jsx`,
   * `jsxImportSource`, `jsxFactory` and `jsxFragmentFactory`. jiti compiles decorators with TypeScript's
   * experimentalDecorators semantics only (its babel pipeline hard-codes the legacy decorators transform,
   * and babel plugins passed to it only run after that one): a TypeScript file using decorators whose
   * tsconfig does not set experimentalDecorators, which tsc compiles as standard (TC39) decorators, is
   * refused in words rather than run with other semantics.
   */
  private transform(babel: Jiti, opts: TransformOptions): TransformResult {
    const file = opts.filename;
    const isJsx = !!file && /\.[cm]?[jt]sx$/.test(file);
    if (!file || (!opts.ts && !isJsx)) return { code: babel.transform(opts) };
    const tsconfig = this.#tsconfigs.forFile(file);
    const plugins: unknown[] = [...((opts.babel?.plugins as unknown[] | undefined) ?? [])];
    const jsx = isJsx ? jsxOptions(tsconfig.options) : undefined;
    if (jsx?.runtime === 'classic' && opts.ts) plugins.push(classicPragmas(jsx));
    let refused: Error | null = null;
    if (opts.ts && !tsconfig.options.experimentalDecorators) {
      plugins.push(refuseStandardDecorators(file, tsconfig, (err) => (refused = err)));
    }
    const code = babel.transform({ ...opts, jsx: jsx ?? opts.jsx, babel: { ...opts.babel, plugins } });
    if (refused) {
      // Its message says all: a stack would show babel's frames, none of them the app's.
      (refused as Error).stack = `${(refused as Error).name}: ${(refused as Error).message}`;
      throw refused;
    }
    return { code };
  }

  /** The tsconfig.json files read by the transform, each once for this importer. */
  readonly #tsconfigs = new TsconfigReader();

  async import(file: string): Promise<Record<string, unknown>> {
    // While the module loads, its errors keep more frames than Node's 10, which can all be Node's own: on
    // Node 26 a require() that fails to resolve has more than 10 frames of the module loader above the line
    // that called it, and the load error could not say where that was (errorLocation). Put back after, unless
    // the module set a limit of its own.
    const limit = Error.stackTraceLimit;
    const raised = limit < LOAD_STACK_FRAMES;
    if (raised) Error.stackTraceLimit = LOAD_STACK_FRAMES;
    try {
      if (/\.(c|m)?js$/.test(file)) {
        // Node's ES module loader remembers the real path it found for each path for the life of the process:
        // a config file named through a symlink switched since (a deploy's `current`) would be read again from
        // the release it named first. A fresh import names the file by its real path now.
        const url = pathToFileURL(this.opts.fresh ? realPath(file) : file);
        if (this.opts.fresh) url.search = `?v=${process.hrtime.bigint()}`;
        return (await import(url.href)) as Record<string, unknown>;
      }
      return (await (await this.jiti()).import(file)) as Record<string, unknown>;
    } finally {
      if (raised && Error.stackTraceLimit === LOAD_STACK_FRAMES) Error.stackTraceLimit = limit;
    }
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

/**
 * The classic runtime's factories as `@jsx`/`@jsxFrag` comments at the top of the file (the file's own come
 * after, so they win): babel's TypeScript transform keeps an import that JSX alone uses only when it is
 * named there (`import { jsx } from 'hono/jsx'`, used by `<h1/>` once compiled), as its `jsxPragma` option,
 * which jiti does not set, would.
 */
function classicPragmas(jsx: JsxOptions): BabelPlugin {
  return () => ({
    name: 'tunicorn-jsx-pragmas',
    pre(file: { ast: { comments?: { type: string; value: string }[] | null } }) {
      const pragmas = [`* @jsx ${jsx.pragma} `, `* @jsxFrag ${jsx.pragmaFrag} `].map((value) => ({ type: 'CommentBlock', value }));
      file.ast.comments = [...pragmas, ...(file.ast.comments ?? [])];
    },
  });
}

/**
 * Refuses a TypeScript file whose tsconfig leaves experimentalDecorators off when it uses decorators or
 * `accessor` fields (which the parser is told to accept, to say so in words): `refuse` gets the error, and
 * the transform is stopped.
 */
function refuseStandardDecorators(file: string, tsconfig: NearestTsconfig, refuse: (err: Error) => void): BabelPlugin {
  return ({ types }) => ({
    name: 'tunicorn-standard-decorators',
    manipulateOptions(_opts: unknown, parserOpts: { plugins: unknown[] }) {
      parserOpts.plugins.push('decoratorAutoAccessors');
    },
    pre(f: { ast: unknown }) {
      let found: BabelNode | null = null;
      types.traverseFast(f.ast, (node) => {
        if (!found && (node.type === 'Decorator' || node.type === 'ClassAccessorProperty')) found = node;
      });
      if (!found) return;
      const node: BabelNode = found;
      const where = `${file}:${node.loc?.start.line ?? 0}:${(node.loc?.start.column ?? 0) + 1}`;
      const config = tsconfig.file ?? `a tsconfig.json for it (there is none in ${path.dirname(file)} or above)`;
      const message =
        node.type === 'Decorator'
          ? `standard (TC39) decorators are not supported by tunicorn's TypeScript loader, which compiles decorators as TypeScript's experimentalDecorators only: set "experimentalDecorators": true in ${config} if the code is written for those (NestJS, TypeORM), or compile the app first (tsc) and serve the JavaScript`
          : `\`accessor\` fields (from standard TC39 decorators) are not supported by tunicorn's TypeScript loader: compile the app first (tsc) and serve the JavaScript`;
      refuse(new Error(`${message}\n ${where}`));
      throw new Error(message);
    },
  });
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

/** The path with its symlinks resolved now; as given when it cannot be (gone: the import says so). */
function realPath(file: string): string {
  try {
    return realpathSync(file);
  } catch {
    return file;
  }
}
