import type http from 'node:http';
import { describeLoadError, errorLocation, esmOnlyHint, esmSyntaxHint, tunicornImportHint } from '../config/file.js';
import { ListenCapture } from './capture.js';
import { AppLoadError, stackText, thrownText } from './errors.js';
import { ModuleImporter, unwrapDefault } from './import.js';
import { ACCEPTED, describeValue, isClass, mistakenExport, SHAPES, type AdaptContext, type ServedApp } from './shapes.js';
import { APP_EXTENSIONS, parseAppSpec, type AppSpec } from './spec.js';
import { stopPart } from './stop-parts.js';

export interface LoadResult {
  readonly spec: AppSpec;
  readonly served: ServedApp;
}

/** How long a module with no export may take to call listen() (a Nest `bootstrap()`, a listen after a DB connect). */
const LISTEN_WAIT_MS = 10_000;
/** How long an import that already called listen() may take to finish (a top-level `await app.listen()`). */
const SETTLE_AFTER_LISTEN_MS = 100;

type Module = Record<string, unknown>;
type Lifespan = () => unknown;

/**
 * Loads the app for a worker (or for --check-config/--preload in the master): imports the module with
 * listen() captured, picks the export, adapts it to a shape (SHAPES, in order; a function of no parameters
 * is a factory whose result is adapted), and attaches the module's `startup`/`shutdown` exports.
 *
 * Which server is served: the one the module listen()ed on during import, if any, unless the export is a
 * framework app owning that same server (then the framework shape, which knows how to close it); else the
 * export.
 */
export async function loadApp(raw: string, cwd: string, ctx: AdaptContext): Promise<LoadResult> {
  const spec = parseAppSpec(raw, cwd);
  // The global's, not an import from 'node:process': an ES module importing it builds that module's exports
  // from every property of `process`, `allowedNodeEnvironmentFlags` too, 6 ms of a worker's start.
  const resourcesBefore = process.getActiveResourcesInfo();
  const capture = new ListenCapture();
  capture.start();
  try {
    const { mod, later } = await importModule(spec, raw, cwd, capture);
    const exported = pickExport(mod, spec, raw, capture.server !== null);
    let served: ServedApp | null = exported === undefined ? null : await adaptApp(exported, raw, ctx, capture).catch((err: unknown) => {
      throw spec.exportName === null ? withNamedHint(err, mod, raw) : err;
    });
    if (!served && capture.server === null) await waitForListen(capture, resourcesBefore);
    const own = capture.server;
    if (own && served?.server !== own) {
      served = { kind: `http.Server (its listen() at import captured)`, server: own, close: served?.close };
    }
    if (own && later) return { spec, served: lateExports(served!, own, later, raw) };
    if (!served) {
      const err = new AppLoadError(`app ${raw}: no default export, no export named "app", and no listen() call (it has: ${exportList(mod)})`);
      throw spec.exportName === null ? withNamedHint(err, mod, raw) : err;
    }
    return { spec, served: withLifespan(served, mod, raw) };
  } finally {
    capture.stop();
  }
}

/**
 * `later`: the module awaits its own listen() at the top level, so its import finishes only once the worker
 * serves that server; `mod` is empty until then and `later` resolves to the module (null if it failed).
 */
interface Imported {
  readonly mod: Module;
  readonly later: Promise<Module | null> | null;
}

async function importModule(spec: AppSpec, raw: string, cwd: string, capture: ListenCapture): Promise<Imported> {
  const importer = new ModuleImporter(cwd);
  let file: string;
  let importing: Promise<Module>;
  try {
    file = spec.isFile ? spec.target : await importer.resolve(spec.target);
    importing = importer.import(file);
  } catch (err) {
    throw loadError(err, spec, raw);
  }
  // A module may await its own listen() at the top level (`await app.listen()`): that promise settles only
  // once tunicorn makes the server listen, after the import. So once listen() was called, the import gets a
  // short while to finish and is then left to complete on its own.
  const first = await Promise.race([
    importing.then((m) => ({ m }), (err: unknown) => ({ err })),
    capture.captured.then(() => null),
  ]);
  if (first && 'err' in first) throw loadError(first.err, spec, raw);
  if (first) return { mod: first.m, later: null };
  const settled = await Promise.race([
    importing.then((m) => ({ m }), (err: unknown) => ({ err })),
    new Promise<null>((r) => setTimeout(() => r(null), SETTLE_AFTER_LISTEN_MS)),
  ]);
  if (settled && 'err' in settled) throw loadError(settled.err, spec, raw);
  if (settled) return { mod: settled.m, later: null };
  // A failure after that is the module's own uncaught error: it takes the worker down with the cause logged.
  importing.catch((err: unknown) => {
    throw loadError(err, spec, raw);
  });
  return { mod: {}, later: importing.then((m) => m, () => null) };
}

/**
 * The exports of a module that awaits its own listen() at the top level (`await app.listen()`), known only
 * once its import finishes, after the worker serves: its `startup` runs then (it cannot run before the worker
 * accepts; a throw ends the worker as an uncaught exception does), and a stop runs the close of a Fastify or
 * Nest app it exports that owns the served server (onClose hooks), then its `shutdown`, as for any other app.
 */
function lateExports(served: ServedApp, own: http.Server, later: Promise<Module | null>, raw: string): ServedApp {
  let mod: Module | null = null;
  let started: Promise<boolean> = Promise.resolve(false);
  void later.then((m) => {
    if (!m) return;
    mod = m;
    const startup = lifespanExport(m, 'startup');
    started = startup
      ? Promise.resolve()
          .then(startup)
          .then(
            () => true,
            (err: unknown) => {
              throw startupFailed(raw, err);
            },
          )
      : Promise.resolve(true);
    started.catch((err: unknown) => {
      throw err;
    });
  });
  return {
    ...served,
    close: () =>
      stopInOrder(
        async () => {
          await served.close?.();
          const app = mod ? frameworkOwning(unwrapDefault(mod.default) ?? mod.app, own) : null;
          if (app) await stopPart("the app's close()", () => app.close());
        },
        async () => {
          const shutdown = mod ? lifespanExport(mod, 'shutdown') : undefined;
          if (shutdown && (await started.catch(() => false))) await stopPart(SHUTDOWN_EXPORT, shutdown);
        },
      ),
  };
}

/**
 * A Fastify or Nest app whose http.Server is `server`: its close() runs its hooks and closes that server. A hapi
 * server whose listener it is (`await server.start()`) stops with stop(): its onPreStop and onPostStop extensions.
 */
function frameworkOwning(value: unknown, server: http.Server): { close(): Promise<void> } | null {
  if (!value || typeof value !== 'object') return null;
  const v = value as { close?: unknown; stop?: unknown; initialize?: unknown; server?: unknown; listener?: unknown; getHttpServer?: unknown };
  if (v.listener === server && typeof v.stop === 'function' && typeof v.initialize === 'function') return { close: () => (v as { stop(): Promise<void> }).stop() };
  if (typeof v.close !== 'function') return null;
  const owns = v.server === server || (typeof v.getHttpServer === 'function' && (v.getHttpServer as () => unknown)() === server);
  return owns ? (v as { close(): Promise<void> }) : null;
}

const SHUTDOWN_EXPORT = 'the shutdown() export';

/** Runs the parts of the app's stop in order, each one also after a failure before it; throws what failed. */
async function stopInOrder(...parts: (() => Promise<unknown>)[]): Promise<void> {
  const failed: unknown[] = [];
  for (const part of parts) await part().catch((err: unknown) => failed.push(err));
  if (failed.length === 1) throw failed[0];
  if (failed.length > 1) throw new AggregateError(failed, failed.map((err) => describeLoadError(err)).join('; '));
}

function startupFailed(raw: string, err: unknown): AppLoadError {
  return new AppLoadError(`app ${raw}: startup() failed: ${describeLoadError(err)}`, stackText(err));
}

/** The module's `startup` or `shutdown` export, or its default export's (an object holding the app). */
function lifespanExport(mod: Module, name: string): Lifespan | undefined {
  const holder = unwrapDefault(mod.default);
  const v = mod[name] ?? (holder && typeof holder === 'object' ? (holder as Module)[name] : undefined);
  return typeof v === 'function' ? (v as Lifespan) : undefined;
}

/**
 * The default export is not an app, or there is none, but a named one is (`export default config; export const
 * app = ...`, `export const handler = ...`): the error names the export to serve.
 */
function withNamedHint(err: unknown, mod: Module, raw: string): unknown {
  if (!(err instanceof AppLoadError)) return err;
  for (const [name, value] of Object.entries(mod)) {
    const shape = name === 'default' || mistakenExport(value) ? undefined : SHAPES.find((s) => s.matches(value));
    if (shape) return new AppLoadError(`${err.message}. Its export ${name} is ${/^[aeiou]/i.test(shape.name) ? 'an' : 'a'} ${shape.name}: serve it with ${raw}:${name}`, err.detail);
  }
  return err;
}

function loadError(err: unknown, spec: AppSpec, raw: string): AppLoadError {
  if (err instanceof AppLoadError) return err;
  if (spec.directory !== null)
    return new AppLoadError(`app not found: ${raw} is a directory with no index file (index${APP_EXTENSIONS.join(', index')}) and no package.json of its own to import`);
  if (!spec.isFile && isNotFound(err))
    return new AppLoadError(`app not found: ${raw} is neither a file (${APP_EXTENSIONS.join(' ')}) nor an installed package`);
  const description = describeLoadError(err).trimEnd();
  const where = spec.isFile ? errorLocation(err, spec.target) : errorLocation(err);
  return new AppLoadError(
    `app ${raw} failed to load: ${description}${where && !description.includes(where) ? ` (${where})` : ''}${tunicornImportHint(err) || esmOnlyHint(err) || esmSyntaxHint(err, spec.isFile ? spec.target : undefined)}`,
    stackText(err),
  );
}

/** The export to serve: `:EXPORT` when given, else default, else `app`; undefined when there is none. */
function pickExport(mod: Module, spec: AppSpec, raw: string, listened: boolean): unknown {
  if (spec.exportName) {
    const inner = unwrapDefault(mod.default);
    const found = spec.exportName in mod || (inner && typeof inner === 'object' && spec.exportName in inner);
    if (!found) throw new AppLoadError(`app ${raw}: the module has no export named ${spec.exportName} (it has: ${exportList(mod)})`);
    const value = spec.exportName in mod ? mod[spec.exportName] : (inner as Module)[spec.exportName];
    return spec.call ? factoryCall(value, spec.exportName, raw) : value;
  }
  if (mod.default !== undefined) {
    const value = unwrapDefault(mod.default);
    // `module.exports = { app }` from CommonJS arrives as a default object holding `app`.
    if (value && typeof value === 'object' && !SHAPES.some((s) => s.matches(value)) && 'app' in value) return (value as { app: unknown }).app;
    // `module.exports = { startup, shutdown }` next to a listen() call: the exports are only lifespan hooks.
    if (listened && value && typeof value === 'object' && !SHAPES.some((s) => s.matches(value))) return undefined;
    return value;
  }
  if (mod.app !== undefined) return mod.app;
  // jiti hands back a CommonJS module's `module.exports` itself (`export = app` in a .cts file).
  if (typeof mod === 'function' || SHAPES.some((s) => s.matches(mod))) return mod;
  return undefined;
}

/**
 * `PATH:NAME()`: NAME is called with no arguments whatever its parameters (`create_app(options = {})`, or one
 * of one parameter that would otherwise be taken for a Fetch handler), and what it returns is served: a
 * function of no parameters that calls it is a factory (adaptApp).
 */
function factoryCall(value: unknown, name: string, raw: string): () => unknown {
  if (isClass(value)) throw new AppLoadError(`app ${raw}: ${name} is a class, not a function to call: export a function that makes the app`);
  if (typeof value !== 'function')
    throw new AppLoadError(`app ${raw}: ${name} is ${describeValue(value)}, not a function to call; serve it without the parentheses`);
  return () => (value as () => unknown)();
}

/** Turns an export into something a worker serves; a factory (no parameters) is called and its result adapted. */
export async function adaptApp(value: unknown, raw: string, ctx: AdaptContext, capture?: ListenCapture, depth = 0): Promise<ServedApp> {
  // A module that listen()ed is served by that server, whatever it exports (a Router next to `app.listen()`).
  const mistake = capture?.server ? null : mistakenExport(value);
  if (mistake) throw new AppLoadError(`app ${raw} is ${depth > 0 ? 'a factory resolving to ' : ''}${mistake}`);
  const shape = SHAPES.find((s) => s.matches(value));
  if (shape) {
    try {
      return await shape.adapt(value, ctx);
    } catch (err) {
      throw new AppLoadError(`app ${raw}: starting the ${shape.name} failed: ${describeLoadError(err)}`, stackText(err));
    }
  }
  if (typeof value === 'function' && value.length === 0 && depth === 0 && !isClass(value)) {
    const threw = (err: unknown) =>
      new AppLoadError(`app ${raw}: the factory threw: ${describeLoadError(err)}`, stackText(err));
    const listened = capture && capture.server === null ? capture : undefined;
    const call = (async () => (value as () => unknown)())();
    let made: unknown;
    try {
      made = listened ? await untilListened(call, listened) : await call;
    } catch (err) {
      throw threw(err);
    }
    if (made === LISTENING) {
      // The factory awaits its own listen() (`await app.listen()`), which resolves only once the worker serves
      // that server: it is served now, and the app the factory resolves to then (a Fastify or Nest app
      // owning it) is closed on stop. A throw after that is the factory's own uncaught error.
      const server = listened!.server!;
      let app: unknown;
      call.then(
        (v) => (app = unwrapDefault(v)),
        (err: unknown) => {
          throw threw(err);
        },
      );
      return {
        kind: 'http.Server (its listen() in the factory captured)',
        server,
        close: async () => {
          const owning = frameworkOwning(app, server);
          if (owning) await stopPart("the app's close()", () => owning.close());
        },
      };
    }
    // A factory that called listen() itself and returned nothing: its server is the app.
    if (made === undefined && capture?.server) return { kind: 'http.Server (its listen() in the factory captured)', server: capture.server };
    return adaptApp(unwrapDefault(made), raw, ctx, capture, depth + 1);
  }
  const what = depth > 0 ? `a factory resolving to ${describeValue(value)}` : describeValue(value);
  throw new AppLoadError(`app ${raw} is ${what}; tunicorn serves ${ACCEPTED}`);
}

const LISTENING = Symbol('listening');

/**
 * What `work` (a factory's call) resolves to, or LISTENING when it called listen() and has not settled a short
 * while later: it awaits that listen(), which resolves only once the worker serves the server.
 */
async function untilListened(work: Promise<unknown>, capture: ListenCapture): Promise<unknown> {
  const first = await Promise.race([work.then((v) => ({ v })), capture.captured.then(() => null)]);
  if (first) return first.v;
  const settled = await Promise.race([work.then((v) => ({ v })), new Promise<null>((r) => setTimeout(() => r(null), SETTLE_AFTER_LISTEN_MS))]);
  return settled ? settled.v : LISTENING;
}

/**
 * Waits for a module with nothing to export to call listen() later (Nest's `bootstrap()` pattern). Gives up
 * early when the module left nothing running (no timer, socket or file operation beyond those before),
 * since then nothing can call listen() any more.
 */
/**
 * How many of the process's resources (timers, handles, requests) are not in `baseline`, type by type: one
 * of the baseline's that ended since (a file closed) does not hide a timer the module set.
 */
function resourcesBeyond(baseline: readonly string[]): number {
  const left = new Map<string, number>();
  for (const r of baseline) left.set(r, (left.get(r) ?? 0) + 1);
  let beyond = 0;
  for (const r of process.getActiveResourcesInfo()) {
    const n = left.get(r) ?? 0;
    if (n > 0) left.set(r, n - 1);
    else beyond++;
  }
  return beyond;
}

async function waitForListen(capture: ListenCapture, baseline: readonly string[]): Promise<void> {
  const deadline = Date.now() + LISTEN_WAIT_MS;
  let idle = 0;
  while (capture.server === null && Date.now() < deadline) {
    const tick = await Promise.race([capture.captured.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 25))]);
    if (tick) return;
    // The poll's own timer is gone by now; anything above the baseline is the module's work in progress.
    idle = resourcesBeyond(baseline) === 0 ? idle + 1 : 0;
    if (idle >= 3) return;
  }
}

function withLifespan(served: ServedApp, mod: Module, raw: string): ServedApp {
  const startup = lifespanExport(mod, 'startup');
  const shutdown = lifespanExport(mod, 'shutdown');
  if (!startup && !shutdown) return served;
  const frameworkClose = served.close;
  // As ASGI's lifespan: `shutdown` follows a `startup` that completed, never one that did not run
  // (--check-config loads the app and closes it) or failed.
  let started = !startup;
  return {
    ...served,
    frameworkClose: frameworkClose ?? (async () => {}),
    startup: startup
      ? async () => {
          try {
            await startup();
            started = true;
          } catch (err) {
            throw startupFailed(raw, err);
          }
        }
      : served.startup,
    close: () =>
      stopInOrder(
        async () => frameworkClose?.(),
        async () => {
          if (started && shutdown) await stopPart(SHUTDOWN_EXPORT, shutdown);
        },
      ),
  };
}

function exportList(mod: Module): string {
  const keys = Object.keys(mod).filter((k) => k !== '__esModule' && k !== 'module.exports');
  return keys.length ? keys.join(', ') : 'no exports';
}

function isNotFound(err: unknown): boolean {
  const code = (err as { code?: string })?.code;
  return code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND' || /Cannot find (module|package)/.test(thrownText(err));
}
