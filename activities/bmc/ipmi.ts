import { execFile } from 'node:child_process';
import type { BmcCredentials, BmcEndpoint, BmcIdentity, BmcInventory, BootTarget, PowerState } from '../../api/bmc';
import type { BmcFailures } from './errors';
import type { RequestLimiter } from './redfish-transport';
import type { IronflowBmcDriver } from './types';

export interface IpmiDriverOptions {
  credentials: BmcCredentials;
  /** Limit for one ipmitool run. */
  timeoutMs: number;
  limit: RequestLimiter;
  /** The ipmitool binary (default: `ipmitool` from PATH). */
  ipmitool?: string;
}

/** IPMI 2.0 (RMCP+) limits: user names up to 16 bytes, passwords up to 20 (ipmitool refuses longer ones). */
export const IPMI_MAX_USERNAME_BYTES = 16;
export const IPMI_MAX_PASSWORD_BYTES = 20;

/**
 * Why these credentials cannot be used over IPMI, naming the key and the
 * rule (never the value), or undefined when they can. A NUL byte cannot
 * travel in the IPMI_PASSWORD environment variable (Node refuses it, with
 * an error that would quote the value) nor in a C string.
 */
export function ipmiCredentialsProblem(c: BmcCredentials): string | undefined {
  for (const [key, value, max] of [['username', c.username, IPMI_MAX_USERNAME_BYTES], ['password', c.password, IPMI_MAX_PASSWORD_BYTES]] as const) {
    if (value.includes('\0')) return `"${key}" contains a NUL byte, which IPMI cannot carry`;
    const bytes = Buffer.byteLength(value, 'utf8');
    if (bytes > max) return `"${key}" is ${bytes} bytes long; IPMI 2.0 allows at most ${max}`;
  }
  return undefined;
}

/** What `ipmitool -v` prints when the BMC refuses the user or the password (RAKP 2 of RMCP+). */
const CREDENTIALS_REJECTED = /RAKP 2 HMAC is invalid|unauthorized name|RAKP \d message indicates an error|invalid user name|Authentication type .* not supported|insufficient privilege/i;

/**
 * BmcDriver over IPMI 2.0 (RMCP+), by running ipmitool, the tool Ironic and
 * Metal3 use. The password travels in the IPMI_PASSWORD environment variable
 * (`-E`), never on argv where `ps` would show it. `-C 3` picks the cipher
 * suite ipmi_sim and most BMCs offer; without it ipmitool first tries suite
 * 17 and stalls ~10 s per call (measured with ipmitool 1.8.19).
 */
export class IpmiDriver implements IronflowBmcDriver {
  /** ipmi_sim and many BMCs drop the persistent bit of boot flags: read-backs cannot confirm it. */
  readonly reportsBootPersistence = false;

  constructor(
    readonly endpoint: BmcEndpoint,
    private readonly failures: BmcFailures,
    private readonly o: IpmiDriverOptions,
  ) {}

  async getPowerState(): Promise<PowerState> {
    const out = await this.run(['power', 'status']);
    // "Chassis Power is on"
    const m = /Chassis Power is (on|off)/i.exec(out);
    if (!m) throw this.failures.protocol(`unexpected "power status" output: ${out.trim().slice(0, 120)}`);
    return m[1]!.toLowerCase() as PowerState;
  }

  async setPowerState(state: PowerState): Promise<void> {
    await this.run(['power', state]);
  }

  async softPowerOff(): Promise<void> {
    await this.run(['power', 'soft']);
  }

  async reset(): Promise<void> {
    await this.run(['power', 'reset']);
  }

  async setNextBoot(target: BootTarget, opts: { persistent?: boolean } = {}): Promise<void> {
    await this.run(['chassis', 'bootdev', target === 'pxe' ? 'pxe' : 'disk', ...(opts.persistent ? ['options=persistent'] : [])]);
  }

  async getNextBoot(): Promise<{ target: BootTarget | 'none' | 'other'; persistent: boolean }> {
    // Boot flags are system boot option parameter 5 (IPMI 2.0 §28.13). The
    // "valid" bit is not checked: ipmi_sim never sets it, and Ironic's
    // ipmitool driver reads the device selector the same way.
    const out = await this.run(['chassis', 'bootparam', 'get', '5']);
    const persistent = /Options apply to all future boots/i.test(out);
    const selector = /Boot Device Selector\s*:\s*(.+)/i.exec(out)?.[1]?.trim() ?? '';
    if (/PXE/i.test(selector)) return { target: 'pxe', persistent };
    if (/Hard-Drive/i.test(selector)) return { target: 'disk', persistent };
    if (/No override/i.test(selector) || !selector) return { target: 'none', persistent };
    return { target: 'other', persistent };
  }

  /** `mc info` and `fru print 0`: two ipmitool runs. */
  async getIdentity(): Promise<BmcIdentity> {
    const mc = await this.run(['mc', 'info']);
    // FRU 0 is optional (ipmi_sim has none unless given): a failure here is not a failure of the BMC.
    const fru = await this.run(['fru', 'print', '0']).catch(() => '');
    const manufacturer = field(fru, 'Product Manufacturer') ?? field(fru, 'Board Mfg') ?? field(mc, 'Manufacturer Name');
    const model = field(fru, 'Product Name') ?? field(fru, 'Board Product');
    const serialNumber = field(fru, 'Product Serial') ?? field(fru, 'Board Serial');
    return { ...(manufacturer ? { manufacturer } : {}), ...(model ? { model } : {}), ...(serialNumber ? { serialNumber } : {}) };
  }

  async getInventory(): Promise<BmcInventory> {
    // IPMI has no standard NIC, disk, CPU or memory inventory: inspection by the agent fills those in.
    return { ...(await this.getIdentity()), nics: [], disks: [] };
  }

  async close(): Promise<void> {
    // lanplus sessions live for one ipmitool run; nothing to end.
  }

  /**
   * One ipmitool run. Credentials that IPMI cannot carry are refused before
   * anything is spawned; everything ipmitool prints goes through the
   * failures' scrubber before it can become part of a message.
   */
  private run(args: string[]): Promise<string> {
    const problem = ipmiCredentialsProblem(this.o.credentials);
    if (problem) return Promise.reject(this.failures.credentialsUnusable(problem));
    const { host, port } = this.endpoint;
    const argv = [
      '-v', // prints the RAKP reason that tells a bad password from a dead BMC
      '-I', 'lanplus', '-C', '3',
      '-N', '1', '-R', '2', // 2 retries: a silent BMC is unreachable after ~6 s (measured), a lost UDP packet costs ~2 s
      '-H', host, '-p', String(port),
      '-U', this.o.credentials.username,
      '-E',
      ...args,
    ];
    return this.o.limit(
      () =>
        new Promise<string>((resolve, reject) => {
          execFile(
            this.o.ipmitool ?? 'ipmitool',
            argv,
            {
              timeout: this.o.timeoutMs,
              killSignal: 'SIGKILL',
              env: { PATH: process.env.PATH ?? '/usr/bin:/bin', IPMI_PASSWORD: this.o.credentials.password },
            },
            (err, stdout, stderr) => {
              if (!err) return resolve(stdout);
              const all = `${stdout}\n${stderr}`;
              const cmd = `ipmitool ${args.join(' ')}`;
              if ((err as { code?: unknown }).code === 'ENOENT') return reject(this.failures.unsupported(`IPMI from this worker: ipmitool is not installed`));
              if ((err as { killed?: boolean }).killed) return reject(this.failures.unreachable(`${cmd}: no answer within ${this.o.timeoutMs} ms`));
              if (CREDENTIALS_REJECTED.test(all)) return reject(this.failures.credentialsRejected('IPMI RAKP authentication failed'));
              if (/Unable to establish|No response|Get Channel Authentication Capabilities|Error issuing/i.test(all)) {
                return reject(this.failures.unreachable(`${cmd}: no RMCP+ session`));
              }
              if (/Node busy|Out of space|Command response could not be provided|timeout/i.test(all)) {
                return reject(this.failures.busy(`${cmd}: ${lastLine(all)}`));
              }
              reject(this.failures.protocol(`${cmd} failed: ${lastLine(all)}`));
            },
          );
        }),
    );
  }
}

/** `Key   : value` lines of ipmitool output. */
function field(text: string, key: string): string | undefined {
  const m = new RegExp(`^\\s*${key}\\s*:\\s*(.+)$`, 'mi').exec(text);
  const v = m?.[1]?.trim();
  return v && !/^Unknown/i.test(v) ? v : undefined;
}

function lastLine(text: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  return (lines[lines.length - 1] ?? 'no output').slice(0, 200);
}
