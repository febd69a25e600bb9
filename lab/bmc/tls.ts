import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A self-signed certificate for a loopback IP, made with openssl, as a lab
 * BMC would have out of the box. Its PEM is also the CA bundle that trusts it.
 */
export function selfSignedCert(dir: string, ip = '127.0.0.1'): { certFile: string; keyFile: string; certPem: string } {
  mkdirSync(dir, { recursive: true });
  const certFile = join(dir, 'bmc.crt');
  const keyFile = join(dir, 'bmc.key');
  execFileSync(
    'openssl',
    // SAN IP: Node checks the IP against subjectAltName, not the CN.
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '7', '-subj', `/CN=ironflow-lab-bmc ${ip}`,
      '-addext', `subjectAltName=IP:${ip}`, '-keyout', keyFile, '-out', certFile],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  return { certFile, keyFile, certPem: readFileSync(certFile, 'utf8') };
}
