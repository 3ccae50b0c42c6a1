/** Self-signed certificates for the TLS tests, made with the openssl CLI in a temporary directory. */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { scratchDir } from './scratch.js';

export interface CertFiles {
  dir: string;
  cert: string;
  key: string;
}

/** A key and a self-signed certificate for `cn` (also a subjectAltName of localhost and 127.0.0.1). */
export function selfSigned(cn = 'localhost', dir = scratchDir('tunicorn-tls-'), name = 'server'): CertFiles {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${cn}`,
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', key, '-out', cert,
  ], { stdio: 'ignore' });
  return { dir, cert, key };
}

/** A key and a self-signed certificate for `cn` that expired a day ago (OpenSSL takes a negative -days). */
export function expired(cn: string, dir: string, name: string): CertFiles {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  execFileSync('openssl', ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${cn}`, '-keyout', key, '-out', csr], { stdio: 'ignore' });
  execFileSync('openssl', ['x509', '-req', '-in', csr, '-signkey', key, '-days', '-1', '-out', cert], { stdio: 'ignore' });
  return { dir, cert, key };
}
