import { existsSync, readdirSync, statSync, watch, type Dirent, type FSWatcher } from 'node:fs';
import path from 'node:path';

/** Changes closer together than this are one reload (an editor saving several files, or writing twice). */
const DEBOUNCE_MS = 150;

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** What a package manager's record in node_modules is called, which it writes last on an install. */
const INSTALL_RECORDS = new Set(['.package-lock.json', '.modules.yaml', '.yarn-integrity', '.yarn-state.yml']);

/**
 * An entry of node_modules an install adds, replaces or removes: a package (`express`, `@scope`) or the
 * package manager's record. Not another dot entry: a tool's cache (`.cache`, `.vite`) that the app writes as
 * it loads would otherwise reload it again and again.
 */
function isInstall(name: string): boolean {
  return !name.startsWith('.') || INSTALL_RECORDS.has(name);
}

/** A glob (`*`, `**`, `?`) as a regular expression over a relative path with `/` separators. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      re += glob[i + 2] === '/' ? '(?:.*/)?' : '.*';
      i += glob[i + 2] === '/' ? 2 : 1;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/**
 * --reload: watches the files the app imported (reported by the workers) and the --reload-extra-file globs.
 * Each file is watched through its directory, not its inode: editors save by writing a new file and renaming
 * it over the old one, after which a watch on the old inode would never fire again.
 */
export class Reloader {
  readonly #files = new Set<string>();
  readonly #dirs = new Map<string, FSWatcher>();
  /** The outermost node_modules folders the app's packages load from, where any change is an install. */
  readonly #installs = new Set<string>();
  /** The --reload-extra-file globs: the folder before the first wildcard, and the rest as a pattern. */
  readonly #globs: { base: string; re: RegExp; deep: boolean }[] = [];
  #timer: NodeJS.Timeout | null = null;
  /** The files changed since the last reload, in the order they changed. */
  readonly #changed = new Set<string>();
  /** Files a worker missed that existed when reported, and so reloaded: not again until a worker finds them. */
  readonly #caughtUp = new Set<string>();

  constructor(
    private readonly onChange: (files: readonly string[]) => void,
    private readonly onError: (message: string) => void,
  ) {}

  get size(): number {
    return this.#files.size;
  }

  /**
   * Every report is read, also of files already known: a folder deleted (a branch switch, `rm -r`) lost its
   * watch, and the report of the workers that the deletion restarted watches it again once it is back. A
   * file in a folder that does not exist (a module the app imports that is not written yet, reported by
   * importedFiles) is watched for through its first missing folder, from the nearest one that exists; the
   * reload its creation brings reports the rest.
   *
   * `missing`: the files a load that failed looked for and did not find. One that exists now was made after the
   * worker looked and perhaps before its folder was watched (`rm -r lib && mkdir lib && cp ... lib/`, a branch
   * switch, while the restarted workers load): no event would come for it, so it is a change now. Once per
   * file, until a worker reports it found: a worker that cannot see a file the master can (a `--user` without
   * the rights) would otherwise restart the workers for ever.
   */
  add(files: readonly string[], missing: readonly string[] = []): void {
    for (const f of files) {
      const resolved = path.resolve(f);
      // Found by the worker that reports it: a later miss of it may reload again.
      if (this.#caughtUp.size > 0 && !missing.includes(f)) this.#caughtUp.delete(resolved);
      let file = resolved;
      let dir = path.dirname(file);
      if (!this.#dirs.has(dir))
        while (!existsSync(dir) && path.dirname(dir) !== dir) {
          file = dir;
          dir = path.dirname(dir);
        }
      this.#files.add(file);
      this.watchDir(dir);
      // A package's file: a package folder added, replaced or removed in the outermost node_modules is an
      // install (npm, pnpm and yarn rename package folders or links there, and each writes its own record
      // there last: see isInstall), which one watch sees.
      const i = file.indexOf('/node_modules/');
      if (i >= 0) {
        const installs = file.slice(0, i + '/node_modules'.length);
        this.#installs.add(installs);
        this.watchDir(installs);
      }
    }
    for (const f of missing) {
      const file = path.resolve(f);
      if (this.#caughtUp.has(file) || !existsSync(file)) continue;
      this.#caughtUp.add(file);
      this.changed(file);
    }
  }

  private watchDir(dir: string): void {
    if (this.#dirs.has(dir)) return;
    try {
      const w = watch(dir, { persistent: false }, (_event, name) => {
        if (!name) return;
        const p = path.join(dir, name.toString());
        // The folder itself is gone, and inotify's watch with it (the event names the folder): dropped, so
        // that a later report watches it again.
        if (name.toString() === path.basename(dir) && this.#dirs.get(dir) === w && !existsSync(dir)) {
          w.close();
          this.#dirs.delete(dir);
        }
        if (this.#files.has(p) || (this.#installs.has(dir) && isInstall(name.toString())) || this.matchesGlob(p)) this.changed(p);
        // A folder made where a glob looks (a new templates/sub/, or the glob's own folder made at last):
        // watched, and a matching file already in it (`cp -r`, `mkdir -p x && echo > x/y`) is a change.
        else if (this.wantsTree(p) && isDirectory(p)) for (const f of this.watchTree(p)) this.changed(f);
      });
      w.on('error', () => {
        if (this.#dirs.get(dir) === w) this.#dirs.delete(dir);
      });
      this.#dirs.set(dir, w);
    } catch (err) {
      this.onError(`cannot watch ${dir}: ${(err as Error).message}`);
    }
  }

  /**
   * Watches the folder before the first wildcard, and under it (for a glob with a `/` or `**` after its
   * wildcard) each folder, one watch each (see wantsTree): Node 20's recursive watch on Linux follows
   * each file by its inode and goes deaf to a file once an editor has saved it by renaming over it. A folder
   * that does not exist yet is watched for from the nearest one that does.
   */
  addGlob(glob: string, cwd: string): void {
    const abs = path.resolve(cwd, glob).split(path.sep).join('/');
    const parts = abs.split('/');
    const firstWild = parts.findIndex((p) => /[*?]/.test(p));
    const base = firstWild < 0 ? path.dirname(abs) : parts.slice(0, firstWild).join('/') || '/';
    const rest = firstWild < 0 ? path.basename(abs) : parts.slice(firstWild).join('/');
    this.#globs.push({ base, re: globToRegExp(rest), deep: rest.includes('/') || rest.includes('**') });
    let dir = base;
    while (!existsSync(dir) && path.dirname(dir) !== dir) dir = path.dirname(dir);
    this.watchTree(dir);
  }

  private matchesGlob(p: string): boolean {
    return this.#globs.some((g) => p.startsWith(g.base + '/') && g.re.test(p.slice(g.base.length + 1)));
  }

  /**
   * A folder on the way to a glob's folder, or one under it where a glob looks for files (not node_modules
   * nor a dot folder there: `**` would otherwise watch every package's folders, and .git's).
   */
  private wantsTree(dir: string): boolean {
    const name = path.basename(dir);
    const looked = name !== 'node_modules' && !name.startsWith('.');
    return this.#globs.some((g) => g.base === dir || g.base.startsWith(dir + '/') || (looked && g.deep && dir.startsWith(g.base + '/')));
  }

  /** Watches `dir` and the folders under it that a glob wants; returns the files in them that match. */
  private watchTree(dir: string): string[] {
    this.watchDir(dir);
    const found: string[] = [];
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return found;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) {
        if (this.wantsTree(p)) found.push(...this.watchTree(p));
      } else if (this.matchesGlob(p)) found.push(p);
    }
    return found;
  }

  close(): void {
    if (this.#timer) clearTimeout(this.#timer);
    for (const w of this.#dirs.values()) w.close();
    this.#dirs.clear();
  }

  private changed(file: string): void {
    this.#changed.add(file);
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      const files = [...this.#changed];
      this.#changed.clear();
      this.#timer = null;
      this.onChange(files);
    }, DEBOUNCE_MS);
    this.#timer.unref();
  }
}
