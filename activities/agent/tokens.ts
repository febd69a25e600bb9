/**
 * Per-boot agent tokens (api/agent.ts): 32 random bytes issued ONCE per boot
 * at lookup, stored only as a SHA-256 hash, compared in constant time.
 * Preparing a new boot invalidates the previous one's token, so a stale agent
 * of an older boot is refused (403) rather than mistaken for the new one.
 *
 * In memory, in the process that serves the agent API (the provisioning HTTP
 * server and the activities that prepare boots must share one instance).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { HostRef } from '../../api/host';

export type TokenVerdict =
  | { ok: true; bootId: string }
  | { ok: false; status: 401 | 403; reason: string };

export type IssueResult =
  | { ok: true; token: string }
  | { ok: false; status: 403 | 409; reason: string };

interface BootEntry {
  bootId: string;
  /** SHA-256 of the token, absent until lookup issued it. */
  hash?: Buffer;
}

const key = (h: HostRef) => `${h.namespace}/${h.name}`;
const sha256 = (token: string) => createHash('sha256').update(token, 'utf8').digest();

/** How many retired token hashes are remembered, to answer 403 instead of 401. */
const RETIRED_LIMIT = 4096;

export class AgentTokenStore {
  private readonly current = new Map<string, BootEntry>();
  /** hex(hash) -> whose token it was; tokens of other hosts and old boots. */
  private readonly known = new Map<string, { host: string; bootId: string }>();

  /** A new boot of `host` was prepared: the old token (if any) stops working now. */
  prepareBoot(host: HostRef, bootId: string): void {
    const k = key(host);
    const old = this.current.get(k);
    if (old?.bootId === bootId) return; // prepareBoot retried by Temporal: keep the issued token
    this.current.set(k, { bootId });
  }

  /** The boot currently prepared for `host`, if any. */
  currentBoot(host: HostRef): string | undefined {
    return this.current.get(key(host))?.bootId;
  }

  /** Issues the token for `bootId`; only once per boot (a second lookup gets 409). */
  issue(host: HostRef, bootId: string): IssueResult {
    const entry = this.current.get(key(host));
    if (!entry || entry.bootId !== bootId) {
      return { ok: false, status: 403, reason: `boot ${bootId} is not the boot prepared for ${key(host)}` };
    }
    if (entry.hash) return { ok: false, status: 409, reason: `a token was already issued for boot ${bootId} of ${key(host)}` };
    const token = randomBytes(32).toString('base64url');
    entry.hash = sha256(token);
    // Oldest first: only the 403-vs-401 distinction is lost for very old tokens.
    if (this.known.size >= RETIRED_LIMIT) this.known.delete(this.known.keys().next().value!);
    this.known.set(entry.hash.toString('hex'), { host: key(host), bootId });
    return { ok: true, token };
  }

  /** Checks the header value of a call about `host`. Never logs or returns the token. */
  verify(host: HostRef, token: string | undefined): TokenVerdict {
    if (!token) return { ok: false, status: 401, reason: 'no agent token (header x-ironflow-agent-token)' };
    const hash = sha256(token);
    const entry = this.current.get(key(host));
    if (entry?.hash && timingSafeEqual(hash, entry.hash)) return { ok: true, bootId: entry.bootId };
    // Map lookup by the hash of a 256-bit secret leaks nothing usable.
    const owner = this.known.get(hash.toString('hex'));
    if (!owner) return { ok: false, status: 401, reason: 'unknown agent token' };
    if (owner.host !== key(host)) return { ok: false, status: 403, reason: `the token belongs to another host, not ${key(host)}` };
    return { ok: false, status: 403, reason: `the token belongs to boot ${owner.bootId}, not the current boot of ${key(host)}` };
  }
}
