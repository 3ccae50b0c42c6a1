import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { TLSSocket, TlsOptions } from 'node:tls';
import type { Config } from '../config/registry.js';
import { ConfigError } from '../config/setting.js';
import { lazy } from '../lazy.js';

// Apart from the HTTP layer: the master checks the certificate at start and must not load node:http for it
// (every module it imports stays in its resident memory). node:tls itself loads only when TLS is on.

/**
 * The certificate, key and CA of a config as the master read and checked them (checkTls). The master sends
 * them to each worker with its config, under TLS_MATERIAL: a worker started later (a crash, max_requests, TTIN)
 * serves the pair that was checked, not whatever the files hold by then (a renewal caught half-way, or one a
 * HUP refused), which failed every new worker's boot.
 */
export interface TlsMaterial {
  readonly cert: string;
  readonly key: string;
  readonly ca: string | null;
}
export const TLS_MATERIAL = 'tlsMaterial';

/**
 * In a worker: keeps the material the master sent on the config, but not enumerable, so that a hook or an app
 * that prints its config (`worker.cfg`) does not print the private key. Returns it, for a thread's config.
 */
export function keepTlsMaterial(config: Record<string, unknown>): TlsMaterial | null {
  const m = (config[TLS_MATERIAL] as TlsMaterial | null | undefined) ?? null;
  Object.defineProperty(config, TLS_MATERIAL, { value: m, enumerable: false, configurable: true, writable: false });
  return m;
}

/** The TLS options of a config (the files read now, or the material the master sent), or null for plain HTTP. */
export function tlsOptionsOf(cfg: Config): TlsOptions | null {
  if (!cfg.certfile) return null;
  const sent = (cfg as Config & { [TLS_MATERIAL]?: TlsMaterial })[TLS_MATERIAL];
  const cert = sent?.cert ?? readPem(cfg.certfile, 'certfile (--certfile)');
  return {
    cert,
    key: sent?.key ?? (cfg.keyfile ? readPem(cfg.keyfile, 'keyfile (--keyfile)') : cert),
    ca: sent ? (sent.ca ?? undefined) : cfg.caCerts ? readPem(cfg.caCerts, 'caCerts (--ca-certs)') : undefined,
    requestCert: cfg.certReqs !== 'none',
    rejectUnauthorized: cfg.certReqs === 'required',
    ciphers: cfg.ciphers ?? undefined,
    ...alpnOptions(cfg.httpProtocols),
  };
}

/**
 * Why a connection's client certificate fails `cert_reqs optional`, or null when it is to be served: it sent
 * none, or one that verified. Python's CERT_OPTIONAL (Gunicorn's) aborts the handshake on a certificate that
 * does not verify; Node has no such mode: asked for a certificate but not told to reject, it serves whatever
 * the client sent, leaving `authorized` false, and an app that reads the subject of a self-signed one would
 * take it for the client's identity. Called once a handshake is done, as Node itself checks `required`.
 */
export function unverifiedCertificate(secure: TLSSocket): string | null {
  if (secure.authorized) return null;
  // An empty object when the client sent no certificate (null once the socket is destroyed).
  const cert = secure.getPeerCertificate();
  if (cert === null || Object.keys(cert).length === 0) return null;
  return String(secure.authorizationError ?? 'not verified');
}

/**
 * ALPN in the setting's order, which is the server's preference, as in Gunicorn. Node's HTTP/2 server replaces
 * `ALPNProtocols` with its own list (h2 first), so with h2 the choice is a callback, which it keeps: the first
 * protocol of ours the client offers; none is TLS's no_application_protocol alert, as with the list.
 */
function alpnOptions(protocols: readonly string[]): Pick<TlsOptions, 'ALPNProtocols' | 'ALPNCallback'> {
  if (!protocols.includes('h2')) return { ALPNProtocols: ['http/1.1'] };
  const ours = protocols.map((p) => (p === 'h1' ? 'http/1.1' : 'h2'));
  return { ALPNCallback: ({ protocols: offered }) => ours.find((p) => offered.includes(p)) };
}

/**
 * A PEM file, read from the working directory the server runs in: after `--chdir`, as Gunicorn reads its
 * certificate after changing directory. A file that cannot be read is a ConfigError that says where it was
 * looked for.
 */
function readPem(file: string, setting: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'it is a directory' : (err as Error).message;
    const where = path.isAbsolute(file) ? '' : ` (looked for in ${process.cwd()}, the directory the server runs in)`;
    throw new ConfigError(`cannot read ${setting} ${JSON.stringify(file)}: ${why}${where}`);
  }
}

/** The TLS settings that mean nothing without a certificate, with their flags. */
const HTTPS_ONLY = [
  ['keyfile', '--keyfile'],
  ['caCerts', '--ca-certs'],
  ['ciphers', '--ciphers'],
] as const;

/** The PEM certificates of a file, in its order. */
function pemCertificates(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
}

/**
 * Loads and checks the TLS settings once, at start (and for `--check-config`), so that a bad one stops the
 * server with one line that names it and the cause: a certificate file without its key, a key that is not the
 * certificate's or that is encrypted, a cipher list OpenSSL does not know, a CA file with no certificate in
 * it or set without asking for client certificates, client certificates asked for without a CA file, a TLS
 * setting given without a certificate, or the PROXY protocol (plain HTTP only) with one. Returns what to warn
 * about in a certificate that loads but that clients refuse: the server's own outside its validity period (a
 * renewal put in place without a HUP, or a clock off).
 */
export function checkTls(cfg: Config, now = Date.now()): string[] {
  return loadTls(cfg, now).warnings;
}

/** checkTls, and what it checked: the material the workers are to serve (null for plain HTTP). */
export function loadTls(cfg: Config, now = Date.now()): { warnings: string[]; material: TlsMaterial | null } {
  if (!cfg.certfile) {
    for (const [key, flag] of HTTPS_ONLY) {
      if (cfg[key]) throw new ConfigError(`${key} (${flag}) is set without certfile (--certfile); it applies to HTTPS only: set certfile too, or drop it`);
    }
    if (cfg.certReqs !== 'none') throw new ConfigError(`certReqs (--cert-reqs) is ${JSON.stringify(cfg.certReqs)} without certfile (--certfile); client certificates need HTTPS: set certfile and keyfile too`);
    return { warnings: [], material: null };
  }
  // The PROXY header is read by the plain-HTTP connection gate (connection.ts), which TLS connections bypass.
  if (cfg.proxyProtocol !== 'off') throw new ConfigError(`proxyProtocol (--proxy-protocol) is ${JSON.stringify(cfg.proxyProtocol)} with certfile (--certfile); the PROXY protocol is read on plain HTTP listeners only: terminate TLS at the balancer and serve plain HTTP behind it, or set proxyProtocol off`);
  // Without `ca`, Node checks client certificates against its public root CAs (Mozilla's, and
  // NODE_EXTRA_CA_CERTS): any certificate a public CA issued would pass as a client's identity.
  if (cfg.certReqs !== 'none' && !cfg.caCerts) {
    throw new ConfigError(`certReqs (--cert-reqs) is ${JSON.stringify(cfg.certReqs)} without caCerts (--ca-certs): client certificates would be checked against Node's public root CAs, so any certificate a public CA issued would pass; give the CA file that signs your clients' certificates with --ca-certs`);
  }
  const o = tlsOptionsOf(cfg)!;
  const tls = lazy.tls();
  const certName = `certfile ${JSON.stringify(cfg.certfile)}`;
  const keyName = cfg.keyfile ? `keyfile ${JSON.stringify(cfg.keyfile)}` : certName;
  const keyText = String(o.key);
  // OpenSSL's own word for it ("PEM routines::no start line") names neither file: a key given for both, say.
  if (!/-----BEGIN (?:TRUSTED |X509 )?CERTIFICATE-----/.test(String(o.cert))) {
    throw new ConfigError(`${certName} (--certfile) holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  }
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(keyText)) {
    throw new ConfigError(
      cfg.keyfile
        ? `${keyName} (--keyfile) holds no PEM private key (-----BEGIN PRIVATE KEY-----)`
        : `${certName} (--certfile) holds no private key: give the key file with --keyfile`,
    );
  }
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(keyText)) {
    throw new ConfigError(`${keyName} is encrypted with a passphrase, which tunicorn cannot ask for: give it a decrypted copy (openssl pkey -in KEY -out KEY.plain), readable by the server's user only`);
  }
  try {
    tls.createSecureContext({ cert: o.cert, key: o.key });
  } catch (err) {
    const m = (err as Error).message;
    if (/key values mismatch/i.test(m)) {
      // OpenSSL matches the key against the first certificate only: a chain written intermediates first.
      const later = pemCertificates(String(o.cert)).slice(1).some((cert) => {
        try {
          tls.createSecureContext({ cert, key: o.key });
          return true;
        } catch {
          return false;
        }
      });
      if (later) throw new ConfigError(`${certName} (--certfile) lists its certificates in the wrong order: the one ${keyName} belongs to is not the first; put the server's own certificate first, then the intermediates`);
      throw new ConfigError(`${keyName} is not the key of ${certName} (${m})`);
    }
    throw new ConfigError(`cannot use ${certName}${cfg.keyfile ? ` with ${keyName}` : ''}: ${m}`);
  }
  if (o.ciphers) {
    try {
      tls.createSecureContext({ ciphers: o.ciphers });
    } catch (err) {
      throw new ConfigError(`invalid value for ciphers (--ciphers): ${JSON.stringify(o.ciphers)}; OpenSSL matched no cipher (${(err as Error).message}); see openssl ciphers -v`);
    }
  }
  if (o.ca) {
    if (!/-----BEGIN CERTIFICATE-----/.test(String(o.ca))) {
      throw new ConfigError(`caCerts (--ca-certs) ${JSON.stringify(cfg.caCerts)} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
    }
    try {
      tls.createSecureContext({ ca: o.ca });
    } catch (err) {
      throw new ConfigError(`cannot use caCerts (--ca-certs) ${JSON.stringify(cfg.caCerts)}: ${(err as Error).message}`);
    }
    // Node loads the CA file and asks for no certificate: whoever set it believes clients are checked.
    if (cfg.certReqs === 'none') {
      throw new ConfigError(`caCerts (--ca-certs) is set but certReqs (--cert-reqs) is "none": clients are not asked for a certificate, so no client is checked against it; set --cert-reqs required (or optional), or drop --ca-certs`);
    }
  }
  return {
    warnings: validityWarnings(certName, pemCertificates(String(o.cert))[0], now),
    material: { cert: String(o.cert), key: String(o.key), ca: o.ca ? String(o.ca) : null },
  };
}

/** A warning when the server's certificate is not valid at `now`: OpenSSL loads it, clients refuse it. */
function validityWarnings(certName: string, pem: string | undefined, now: number): string[] {
  let cert: import('node:crypto').X509Certificate;
  try {
    // No plain BEGIN CERTIFICATE block (OpenSSL also reads its TRUSTED form) or one X509Certificate cannot
    // read: OpenSSL loaded it, and there is no date to check.
    if (pem === undefined) return [];
    cert = new (lazy.crypto().X509Certificate)(pem);
  } catch {
    return [];
  }
  const day = (t: string) => new Date(Date.parse(t)).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  if (Date.parse(cert.validTo) < now) return [`${certName} (--certfile) expired on ${day(cert.validTo)}: clients refuse it; put the renewed certificate in place and send HUP`];
  if (Date.parse(cert.validFrom) > now) return [`${certName} (--certfile) is not valid before ${day(cert.validFrom)}: clients refuse it until then (is this machine's clock right?)`];
  return [];
}
