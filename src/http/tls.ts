import { readFileSync } from 'node:fs';
import type { TlsOptions } from 'node:tls';
import type { Config } from '../config/registry.js';
import { ConfigError } from '../config/setting.js';
import { lazy } from '../lazy.js';

// Apart from the HTTP layer: the master checks the certificate at start and must not load node:http for it
// (every module it imports stays in its resident memory). node:tls itself loads only when TLS is on.

/** The TLS options of a config (files read now), or null when it serves plain HTTP. */
export function tlsOptionsOf(cfg: Config): TlsOptions | null {
  if (!cfg.certfile) return null;
  const cert = readFileSync(cfg.certfile);
  return {
    cert,
    key: cfg.keyfile ? readFileSync(cfg.keyfile) : cert,
    ca: cfg.caCerts ? readFileSync(cfg.caCerts) : undefined,
    requestCert: cfg.certReqs !== 'none',
    rejectUnauthorized: cfg.certReqs === 'required',
    ciphers: cfg.ciphers ?? undefined,
    ALPNProtocols: cfg.httpProtocols.includes('h2') ? ['h2', 'http/1.1'] : ['http/1.1'],
  };
}

/** Loads and checks the certificate and key once, at start, so a bad pair stops the server in one line. */
export function checkTls(cfg: Config): void {
  if (!cfg.certfile) {
    if (cfg.keyfile) throw new ConfigError('keyfile (--keyfile) is set without certfile (--certfile); set both for HTTPS');
    return;
  }
  try {
    const o = tlsOptionsOf(cfg)!;
    lazy.tls().createSecureContext(o);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new ConfigError(`cannot use certfile ${JSON.stringify(cfg.certfile)}${cfg.keyfile ? ` with keyfile ${JSON.stringify(cfg.keyfile)}` : ''}: ${e.message}`);
  }
}
