import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** Shorter tokens could be guessed by anything on the machine that can reach the codec port. */
export const MIN_CODEC_TOKEN_LENGTH = 16;

/**
 * The bearer token the codec server asks for. A configured token
 * (--codec-token / IRONFLOW_CODEC_TOKEN) wins; otherwise the embedded plane
 * makes one on first start and keeps it in `file` (mode 0600), so
 * `--codec-auth "Bearer $(cat <file>)"` keeps working across restarts.
 */
export function loadCodecToken(configured: string | undefined, file: string): { token: string; source: 'configured' | 'generated' | 'file' } {
  if (configured !== undefined) {
    if (configured.length < MIN_CODEC_TOKEN_LENGTH || /\s/.test(configured)) {
      throw new Error(`the codec token (--codec-token / IRONFLOW_CODEC_TOKEN) must be at least ${MIN_CODEC_TOKEN_LENGTH} characters without spaces (openssl rand -hex 32)`);
    }
    return { token: configured, source: 'configured' };
  }
  if (existsSync(file)) {
    // A token another user could read is no token: tighten what an older plane (or a copy) left.
    if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
    const token = readFileSync(file, 'utf8').trim();
    if (token.length < MIN_CODEC_TOKEN_LENGTH) throw new Error(`codec token file ${file} holds no usable token: delete it and restart to make a new one`);
    return { token, source: 'file' };
  }
  mkdirSync(dirname(file), { recursive: true });
  const token = randomBytes(32).toString('base64url');
  writeFileSync(file, `${token}\n`, { mode: 0o600, flag: 'wx' });
  return { token, source: 'generated' };
}
