import { watch, type FSWatcher } from 'node:fs';
import path from 'node:path';

/** Changes closer together than this are one reload (an editor saving several files, or writing twice). */
const DEBOUNCE_MS = 150;

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
  readonly #globWatchers: FSWatcher[] = [];
  #timer: NodeJS.Timeout | null = null;
  #changed: string | null = null;

  constructor(
    private readonly onChange: (file: string) => void,
    private readonly onError: (message: string) => void,
  ) {}

  get size(): number {
    return this.#files.size;
  }

  add(files: readonly string[]): void {
    for (const f of files) {
      const file = path.resolve(f);
      if (this.#files.has(file)) continue;
      this.#files.add(file);
      const dir = path.dirname(file);
      if (this.#dirs.has(dir)) continue;
      try {
        const w = watch(dir, { persistent: false }, (_event, name) => {
          const p = name ? path.join(dir, name.toString()) : null;
          if (p && this.#files.has(p)) this.changed(p);
        });
        w.on('error', () => this.#dirs.delete(dir));
        this.#dirs.set(dir, w);
      } catch (err) {
        this.onError(`cannot watch ${dir}: ${(err as Error).message}`);
      }
    }
  }

  /** Watches the directory before the first wildcard, recursively, and matches the glob against what changes. */
  addGlob(glob: string, cwd: string): void {
    const abs = path.resolve(cwd, glob).split(path.sep).join('/');
    const parts = abs.split('/');
    const firstWild = parts.findIndex((p) => /[*?]/.test(p));
    const base = firstWild < 0 ? path.dirname(abs) : parts.slice(0, firstWild).join('/') || '/';
    const rest = firstWild < 0 ? path.basename(abs) : parts.slice(firstWild).join('/');
    const re = globToRegExp(rest);
    try {
      const w = watch(base, { persistent: false, recursive: true }, (_event, name) => {
        const rel = name ? name.toString().split(path.sep).join('/') : null;
        if (rel && re.test(rel)) this.changed(path.join(base, rel));
      });
      w.on('error', (err) => this.onError(`watching ${glob}: ${err.message}`));
      this.#globWatchers.push(w);
    } catch (err) {
      this.onError(`cannot watch ${glob} (${base}): ${(err as Error).message}`);
    }
  }

  close(): void {
    if (this.#timer) clearTimeout(this.#timer);
    for (const w of this.#dirs.values()) w.close();
    for (const w of this.#globWatchers) w.close();
    this.#dirs.clear();
  }

  private changed(file: string): void {
    this.#changed ??= file;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      const f = this.#changed!;
      this.#changed = null;
      this.#timer = null;
      this.onChange(f);
    }, DEBOUNCE_MS);
    this.#timer.unref();
  }
}
