/**
 * Payload encryption for everything Ironflow stores in Temporal (inputs,
 * results, signals, failures' details): AES-256-GCM, a fresh 12-byte IV per
 * payload, the key id in the metadata so keys can rotate (old ids still
 * decrypt). This is the second wall: secrets never enter payloads in the
 * first place (README.md, "Payload encryption").
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';

export const ENCODING = 'binary/encrypted';
const METADATA_ENCODING_KEY = 'encoding';
const METADATA_KEY_ID = 'encryption-key-id';

export interface CodecKey {
  id: string;
  /** 32 bytes. */
  key: Buffer;
}

const enc = (s: string) => Buffer.from(s, 'utf8');

export interface AesGcmCodecOptions {
  /**
   * What decode does with a payload that is not encrypted. 'refuse' (the
   * default; workers and the plane's client): it fails, so a signal, update
   * or start sent by a client without the codec cannot reach workflow code
   * (the workflow task fails with {@link PlaintextPayloadRefused}'s message
   * and is retried, visibly, until an operator resets the run past it).
   * 'pass' (the codec server the Web UI and CLI call): it is shown as it is.
   */
  plaintext?: 'refuse' | 'pass';
}

/**
 * Thrown by decode for a payload that is not encrypted. Its message names
 * the encoding only, never the payload, and says how to send it properly.
 */
export class PlaintextPayloadRefused extends Error {
  override readonly name = 'PlaintextPayloadRefused';
  constructor(encoding: string) {
    super(
      `refused a payload that is not encrypted (encoding "${encoding}"): payload encryption is on (IRONFLOW_CODEC_KEYS or the plane's codec key), ` +
        'so everything sent to these workflows must be encrypted; send it with a client that uses the Ironflow codec, or with ' +
        '`temporal ... --codec-endpoint <the plane\'s codec server> --codec-auth "Bearer <codec token>"`',
    );
  }
}

export class AesGcmPayloadCodec implements PayloadCodec {
  private readonly byId: Map<string, Buffer>;
  private readonly plaintext: 'refuse' | 'pass';

  /** `keys[0]` encrypts; every key decrypts payloads carrying its id. */
  constructor(
    private readonly keys: CodecKey[],
    options: AesGcmCodecOptions = {},
  ) {
    this.plaintext = options.plaintext ?? 'refuse';
    if (keys.length === 0) throw new Error('AesGcmPayloadCodec needs at least one key');
    for (const k of keys) if (k.key.length !== 32) throw new Error(`codec key ${k.id} must be 32 bytes (got ${k.key.length})`);
    this.byId = new Map(keys.map((k) => [k.id, k.key]));
  }

  /** The same keys, passing plaintext payloads through: for the codec server that shows histories to operators. */
  showingPlaintext(): AesGcmPayloadCodec {
    return new AesGcmPayloadCodec(this.keys, { plaintext: 'pass' });
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    const { id, key } = this.keys[0]!;
    return payloads.map((p) => {
      const plain = temporal.api.common.v1.Payload.encode(p).finish();
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      const body = Buffer.concat([cipher.update(plain), cipher.final()]);
      return {
        metadata: { [METADATA_ENCODING_KEY]: enc(ENCODING), [METADATA_KEY_ID]: enc(id) },
        data: Buffer.concat([iv, body, cipher.getAuthTag()]),
      };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => {
      const encoding = Buffer.from(p.metadata?.[METADATA_ENCODING_KEY] ?? []).toString();
      if (encoding !== ENCODING) {
        if (this.plaintext === 'pass') return p;
        throw new PlaintextPayloadRefused(encoding || 'none');
      }
      const keyId = Buffer.from(p.metadata?.[METADATA_KEY_ID] ?? []).toString();
      const key = this.byId.get(keyId);
      if (!key) throw new Error(`payload encrypted with key id "${keyId}", which this process does not have: add it to IRONFLOW_CODEC_KEYS`);
      const data = Buffer.from(p.data ?? []);
      const iv = data.subarray(0, 12);
      const tag = data.subarray(data.length - 16);
      const decipher = createDecipheriv('aes-256-gcm', key, iv);
      decipher.setAuthTag(tag);
      const plain = Buffer.concat([decipher.update(data.subarray(12, data.length - 16)), decipher.final()]);
      return temporal.api.common.v1.Payload.decode(plain);
    });
  }
}

/**
 * Keys from IRONFLOW_CODEC_KEYS ("id1:base64key,id2:base64key", first one
 * encrypts), else a key generated once into `keyFile` (the embedded plane's
 * default; the file is 0600 and git-ignored).
 */
export function loadCodecKeys(env: NodeJS.ProcessEnv, keyFile: string): CodecKey[] {
  const spec = env.IRONFLOW_CODEC_KEYS;
  if (spec) {
    return spec.split(',').map((part) => {
      const [id, b64] = part.split(':');
      const key = Buffer.from(b64 ?? '', 'base64');
      if (!id || key.length !== 32) throw new Error('IRONFLOW_CODEC_KEYS must be "keyId:<base64 of 32 random bytes>[,...]" (openssl rand -base64 32)');
      return { id, key };
    });
  }
  if (!existsSync(keyFile)) {
    mkdirSync(dirname(keyFile), { recursive: true });
    writeFileSync(keyFile, JSON.stringify({ id: `local-${randomBytes(3).toString('hex')}`, key: randomBytes(32).toString('base64') }), { mode: 0o600 });
  }
  const { id, key } = JSON.parse(readFileSync(keyFile, 'utf8')) as { id: string; key: string };
  return [{ id, key: Buffer.from(key, 'base64') }];
}
