import { describeLoadError } from '../config/file.js';
import { AppLoadError } from './errors.js';
import { ModuleImporter, unwrapDefault } from './import.js';
import { ACCEPTED, describeValue, SHAPES, type AdaptContext, type ServedApp } from './shapes.js';
import { parseAppSpec, type AppSpec } from './spec.js';

export interface LoadResult {
  readonly spec: AppSpec;
  readonly served: ServedApp;
}

/** Imports the app module and picks the export: `:EXPORT` when given, else default, else `app`. */
export async function importApp(raw: string, cwd: string): Promise<{ spec: AppSpec; value: unknown }> {
  const spec = parseAppSpec(raw, cwd);
  const importer = new ModuleImporter(cwd);
  let mod: Record<string, unknown>;
  try {
    const file = spec.isFile ? spec.target : await importer.resolve(spec.target);
    mod = await importer.import(file);
  } catch (err) {
    if (!spec.isFile && isNotFound(err))
      throw new AppLoadError(`app not found: ${raw} is neither a file (.ts .mts .cts .tsx .js .mjs .cjs) nor an installed package`);
    throw new AppLoadError(`app ${raw} failed to load: ${describeLoadError(err)}`, err instanceof Error ? (err.stack ?? '') : '');
  }
  let value: unknown;
  if (spec.exportName) {
    if (!(spec.exportName in mod)) {
      const inner = unwrapDefault(mod.default);
      if (inner && typeof inner === 'object' && spec.exportName in inner) value = (inner as Record<string, unknown>)[spec.exportName];
      else throw new AppLoadError(`app ${raw}: the module has no export named ${spec.exportName} (it has: ${exportList(mod)})`);
    } else value = mod[spec.exportName];
  } else if (mod.default !== undefined) {
    value = unwrapDefault(mod.default);
    // `module.exports = { app }` from CommonJS arrives as a default object holding `app`.
    if (value && typeof value === 'object' && !SHAPES.some((s) => s.matches(value)) && 'app' in value) value = (value as { app: unknown }).app;
  } else if (mod.app !== undefined) value = mod.app;
  else throw new AppLoadError(`app ${raw}: no default export and no export named "app" (it has: ${exportList(mod)})`);
  return { spec, value };
}

/** Turns an export into something a worker serves; an async factory is called and its result adapted. */
export async function adaptApp(value: unknown, raw: string, ctx: AdaptContext, depth = 0): Promise<ServedApp> {
  const shape = SHAPES.find((s) => s.matches(value));
  if (shape) return shape.adapt(value, ctx);
  if (typeof value === 'function' && value.length === 0 && depth === 0) {
    let made: unknown;
    try {
      made = await (value as () => unknown)();
    } catch (err) {
      throw new AppLoadError(`app ${raw}: the factory threw: ${describeLoadError(err)}`, err instanceof Error ? (err.stack ?? '') : '');
    }
    return adaptApp(unwrapDefault(made), raw, ctx, depth + 1);
  }
  throw new AppLoadError(`app ${raw} is ${describeValue(value)}; tunicorn serves ${ACCEPTED}`);
}

export async function loadApp(raw: string, cwd: string, ctx: AdaptContext): Promise<LoadResult> {
  const { spec, value } = await importApp(raw, cwd);
  return { spec, served: await adaptApp(value, raw, ctx) };
}

function exportList(mod: Record<string, unknown>): string {
  const keys = Object.keys(mod).filter((k) => k !== '__esModule' && k !== 'module.exports');
  return keys.length ? keys.join(', ') : 'no exports';
}

function isNotFound(err: unknown): boolean {
  const code = (err as { code?: string })?.code;
  return code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND' || /Cannot find (module|package)/.test(String(err));
}
