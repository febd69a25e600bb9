import { parsePlaneConfig } from '../../workers/config';

const ENV_KEYS = [
  'TEMPORAL_ADDRESS',
  'TEMPORAL_TLS',
  'TEMPORAL_TLS_CLIENT_CERT_PATH',
  'TEMPORAL_TLS_CLIENT_KEY_PATH',
  'TEMPORAL_TLS_SERVER_CA_CERT_PATH',
  'TEMPORAL_TLS_SERVER_NAME',
  'TEMPORAL_API_KEY',
  'IRONFLOW_CODEC_TOKEN',
];

describe('plane config: the Temporal edge options', () => {
  const saved: Record<string, string | undefined> = {};
  beforeEach(() => {
    for (const k of ENV_KEYS) {
      saved[k] = process.env[k];
      delete process.env[k];
    }
  });
  afterEach(() => {
    for (const k of ENV_KEYS) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
    jest.restoreAllMocks();
  });
  const parse = (...args: string[]) => parsePlaneConfig(['node', 'main.js', ...args]);

  it('reads TLS, mTLS and the API key from flags', () => {
    const cfg = parse('--temporal-address', 'temporal.example:7233', '--temporal-tls-cert', '/c.pem', '--temporal-tls-key', '/k.pem', '--temporal-tls-ca', '/ca.pem', '--temporal-tls-server-name', 'frontend', '--temporal-api-key', 'k-123');
    expect(cfg.temporalTls).toEqual({ tlsCertFile: '/c.pem', tlsKeyFile: '/k.pem', tlsCaFile: '/ca.pem', tlsServerName: 'frontend', apiKey: 'k-123' });
  });

  it("reads the same settings from the temporal CLI's environment variables", () => {
    Object.assign(process.env, {
      TEMPORAL_ADDRESS: 'temporal.example:7233',
      TEMPORAL_TLS: 'true',
      TEMPORAL_TLS_CLIENT_CERT_PATH: '/c.pem',
      TEMPORAL_TLS_CLIENT_KEY_PATH: '/k.pem',
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: '/ca.pem',
      TEMPORAL_TLS_SERVER_NAME: 'frontend',
      TEMPORAL_API_KEY: 'k-123',
      IRONFLOW_CODEC_TOKEN: 'codec-token-0123456789',
    });
    const cfg = parse();
    expect(cfg.temporalAddress).toBe('temporal.example:7233');
    expect(cfg.temporalTls).toEqual({ tls: true, tlsCertFile: '/c.pem', tlsKeyFile: '/k.pem', tlsCaFile: '/ca.pem', tlsServerName: 'frontend', apiKey: 'k-123' });
    expect(cfg.codecToken).toBe('codec-token-0123456789');
  });

  it('leaves TLS off by default, and for TEMPORAL_TLS=false', () => {
    expect(parse().temporalTls).toEqual({});
    process.env.TEMPORAL_TLS = 'false';
    expect(parse('--temporal-address', 'x:1').temporalTls).toEqual({});
  });

  it('ignores TEMPORAL_TLS_* left in the shell (for the temporal CLI) when the plane runs its embedded Temporal', () => {
    Object.assign(process.env, { TEMPORAL_TLS_CLIENT_CERT_PATH: '/c.pem', TEMPORAL_TLS_CLIENT_KEY_PATH: '/k.pem', TEMPORAL_API_KEY: 'k-123' });
    expect(parse().temporalTls).toEqual({});
  });

  it('refuses TLS flags without --temporal-address, saying the embedded server is plaintext', () => {
    const exit = jest.spyOn(process, 'exit').mockImplementation((code?: string | number | null) => {
      throw new Error(`exit ${code}`);
    });
    const stderr = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    expect(() => parse('--temporal-tls-cert', '/c.pem', '--temporal-tls-key', '/k.pem')).toThrow('exit 1');
    expect(exit).toHaveBeenCalledWith(1);
    expect(stderr.mock.calls.map((c) => String(c[0])).join('')).toContain('give --temporal-address (TEMPORAL_ADDRESS) too; the embedded dev server speaks plaintext on loopback');
  });
});
