import { inspect } from 'node:util';
import type { BmcCredentials } from '../../api/bmc';

/** Removes credential values from text that is about to become a message, a log line or a result. */
export type Scrub = (text: string) => string;

/** What replaces a credential in text. */
export const SCRUBBED = '[redacted]';

/** Values shorter than this are removed only where they stand alone (a 2-letter username must not eat "credentials"). */
const MIN_SUBSTRING = 4;

/**
 * Every spelling under which a value read from a Secret can reappear in text
 * written by someone else: as is; JSON-escaped (pino, Redfish bodies);
 * percent-encoded (URLs); as Node's `util.inspect` prints it (the errors Node
 * raises for a bad argument or environment value quote it that way); and each
 * piece between control characters, since C tools such as ipmitool stop at a
 * NUL and line-oriented output splits at a newline.
 *
 * Example: `pa\0ss-word\n` → `pa\0ss-word\n`, `pa\u0000ss-word\n`,
 * `pa%00ss-word%0A`, `pa\x00ss-word\n`, `ss-word` (and `pa`, too short alone).
 */
export function secretSpellings(value: string): string[] {
  const out = new Set<string>([value, JSON.stringify(value).slice(1, -1), encodeURIComponent(value), inspect(value).slice(1, -1)]);
  for (const piece of value.split(/[\x00-\x1f\x7f]+/)) out.add(piece);
  out.delete('');
  return [...out];
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * A scrubber for one set of credentials: the username, the password, the
 * pair as `user:password`, and the HTTP Basic header value built from it,
 * each in every spelling of {@link secretSpellings}. Longest first, so a
 * fragment never leaves the rest of a longer match behind.
 */
export function credentialScrubber(c: BmcCredentials): Scrub {
  const pair = `${c.username}:${c.password}`;
  const spellings = new Set<string>([
    ...secretSpellings(c.password),
    ...secretSpellings(c.username),
    ...secretSpellings(pair),
    Buffer.from(pair).toString('base64'),
  ]);
  const long = [...spellings].filter((s) => s.length >= MIN_SUBSTRING).sort((a, b) => b.length - a.length);
  const short = [...spellings].filter((s) => s.length < MIN_SUBSTRING);
  const pattern = [
    ...long.map(escapeRegExp),
    // Alone = not inside a word: "ro" is removed from "user ro denied", not from "error".
    ...short.map((s) => `(?<![A-Za-z0-9])${escapeRegExp(s)}(?![A-Za-z0-9])`),
  ].join('|');
  if (!pattern) return (text) => text;
  const re = new RegExp(pattern, 'g');
  return (text) => text.replace(re, SCRUBBED);
}

/** Applies `scrub` to every string inside a JSON-plain value (results that came from a BMC). */
export function scrubDeep<T>(value: T, scrub: Scrub): T {
  if (typeof value === 'string') return scrub(value) as T;
  if (Array.isArray(value)) return value.map((v) => scrubDeep(v, scrub) as unknown) as T;
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, scrubDeep(v, scrub)])) as T;
  }
  return value;
}
