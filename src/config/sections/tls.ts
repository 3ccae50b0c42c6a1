import { choiceSetting, listSetting, stringSetting, type Setting } from '../setting.js';

const section = 'TLS and HTTP/2';

export const CERT_REQS = ['none', 'optional', 'required'] as const;
export type CertReqs = (typeof CERT_REQS)[number];

/** Accepts other spellings of a choice (Gunicorn's numbers for ssl.CERT_*). */
function withAliases<T extends string>(s: Setting<T>, aliases: Record<string, T>): Setting<T> {
  const alias = (v: unknown): unknown => (typeof v === 'number' || typeof v === 'string' ? (aliases[String(v).trim()] ?? v) : v);
  return { ...s, fromCli: (raw) => s.fromCli([String(alias(raw[raw.length - 1]))]), fromConfig: (v) => s.fromConfig(alias(v)) };
}

export const tls = {
  certfile: stringSetting<string | null>({
    key: 'certfile',
    gunicorn: 'certfile',
    section,
    flags: ['--certfile'],
    metavar: 'FILE',
    default: null,
    short: 'The PEM certificate (chain); with keyfile, every bind serves HTTPS.',
    doc:
      'The certificate and key are loaded and checked once by the master at start: a missing, unreadable ' +
      'or mismatched pair stops the server with one line that says which. A relative path is read from the ' +
      'directory the server runs in, after `chdir`, as Gunicorn reads it. A reload (HUP) checks the files the ' +
      'same way and refuses them if they are bad; otherwise the new workers serve the new certificate (a ' +
      'renewed one), while the old ones finish with the old. The workers serve what the master read and ' +
      'checked, never the files as they are when a worker starts: one started later (after a crash, at ' +
      '`max_requests`, by TTIN) serves the same pair, even once the files changed. The file may hold the chain after the ' +
      'server\'s own certificate (certbot\'s fullchain.pem); a chain in the wrong order is refused by name. ' +
      'A certificate past its end date is loaded with a warning (clients refuse it). HTTP/2 is offered by ' +
      'ALPN (see `http_protocols`).',
  }),
  keyfile: stringSetting<string | null>({
    key: 'keyfile',
    gunicorn: 'keyfile',
    section,
    flags: ['--keyfile'],
    metavar: 'FILE',
    default: null,
    short: 'The PEM private key of certfile.',
    doc: 'Required when certfile is set (unless certfile holds the key too).',
  }),
  caCerts: stringSetting<string | null>({
    key: 'caCerts',
    gunicorn: 'ca_certs',
    section,
    flags: ['--ca-certs'],
    metavar: 'FILE',
    default: null,
    short: 'PEM CA certificates that client certificates are checked against.',
    doc:
      'Used with `cert_reqs` optional or required, which need it: without it Node would check client ' +
      'certificates against its public root CAs, and any certificate a public CA issued would pass, so ' +
      '`cert_reqs` without `ca_certs` stops the server at start (Gunicorn used the system\'s CAs; give ' +
      '`/etc/ssl/certs/ca-certificates.crt` for that). Set with `cert_reqs` none, it would check no one: ' +
      'that stops the server too.',
  }),
  certReqs: withAliases(
    choiceSetting({
      key: 'certReqs',
      gunicorn: 'cert_reqs',
      section,
      flags: ['--cert-reqs'],
      metavar: 'MODE',
      choices: CERT_REQS,
      default: 'none' as CertReqs,
      short: 'Client certificates: none (not asked), optional (checked if sent), required.',
      doc:
        'Gunicorn\'s 0, 1 and 2 are accepted too. With `required`, a client without a valid certificate fails ' +
        'the handshake. With `optional`, a client may send none, but one that sends a certificate that does ' +
        'not verify against `ca_certs` is closed once the handshake is done, as under Gunicorn (Python\'s ' +
        'CERT_OPTIONAL); `debug` logs why. The app reads the result on the TLS socket: ' +
        '`req.socket.authorized` (true only for a verified certificate) and `req.socket.getPeerCertificate()` ' +
        '(`{}` when none was sent), over HTTP/1.1 and HTTP/2; a Fetch handler through ' +
        '`incomingMessage(request).socket`.',
    }),
    { 0: 'none', 1: 'optional', 2: 'required' },
  ),
  ciphers: stringSetting<string | null>({
    key: 'ciphers',
    gunicorn: 'ciphers',
    section,
    flags: ['--ciphers'],
    metavar: 'CIPHERS',
    default: null,
    defaultDoc: 'Node\'s default list',
    short: 'The TLS cipher list, in OpenSSL\'s format.',
    doc: 'An invalid list stops the server at start.',
  }),
  httpProtocols: listSetting({
    key: 'httpProtocols',
    gunicorn: 'http_protocols',
    section,
    flags: ['--http-protocols'],
    metavar: 'LIST',
    commaSeparated: true,
    default: ['h2', 'h1'],
    check: (list) => {
      const bad = list.find((p) => p !== 'h1' && p !== 'h2');
      if (bad) return `"${bad}" is not a protocol: expected h1 and/or h2`;
      if (list.length !== new Set(list).size) return 'names a protocol twice';
      if (!list.includes('h1')) return 'must include h1';
      return undefined;
    },
    short: 'The HTTP versions offered over TLS, in order of preference: h2, h1.',
    doc:
      'With `h2` (the default) a TLS listener offers HTTP/2 by ALPN and falls back to HTTP/1.1 for clients ' +
      'that do not ask for it. Every app shape is served over both. The order is the server\'s preference, ' +
      'as in Gunicorn: with `h2,h1` (the default) a client that offers both gets HTTP/2, with `h1,h2` it gets ' +
      'HTTP/1.1, and only a client that offers nothing else gets HTTP/2. Cleartext HTTP/2 (h2c, from a peer in ' +
      '`forwarded_allow_ips`) is on whenever `h2` is listed.'
  }),
};
