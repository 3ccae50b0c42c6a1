import module from 'node:module';
import { fileURLToPath } from 'node:url';
import { lazy } from '../lazy.js';
import { isAppFile } from './imported-files.js';

/**
 * --reload: reports the files of native ES modules as they load (module.register, Node >= 20.6). Node lists
 * the CommonJS modules it loaded (require.cache) but no ES module, so without this a JavaScript ESM app's
 * watched graph was its entry file alone. `report` gets each app file once, as it loads; dynamic imports
 * later on are reported too. Returns false when this Node cannot register hooks.
 */
export function watchEsmImports(report: (files: string[]) => void): boolean {
  const register = (module as { register?: (specifier: string | URL, options: object) => void }).register;
  if (typeof register !== 'function') return false;
  const { port1, port2 } = new (lazy.workerThreads().MessageChannel)();
  const seen = new Set<string>();
  port1.on('message', (url: string) => {
    const file = fileURLToPath(url);
    if (seen.has(file) || !isAppFile(file)) return;
    seen.add(file);
    report([file]);
  });
  port1.unref();
  register(new URL('./esm-watch-hooks.js', import.meta.url), { data: { port: port2 }, transferList: [port2] });
  return true;
}
