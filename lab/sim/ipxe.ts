/**
 * The part of iPXE a simulated server needs: it runs the scripts Ironflow
 * serves (or any script of the same shape, e.g. Ironic's retry loops) the way
 * iPXE does, line by line, with labels, `goto`, `||` / `&&`, variables, and
 * the image commands. Fetching and booting are the caller's (./firmware.ts):
 * this file only decides what happens next.
 *
 * Semantics kept from iPXE: a command that fails makes the rest of its line
 * after `||` run (and skips what follows `&&`); a failed command with no `||`
 * ends the script with that failure; `exit [n]` ends the script (0 = success);
 * `chain <url>` fetches a script and runs it, and fails when it exits
 * non-zero; `boot` hands over to the loaded kernel; `sanboot` boots a disk.
 * Unknown commands fail, as a command missing from an iPXE build does.
 */

export interface IpxeHost {
  /** Fetches a script (chain). Throws on failure. */
  fetchScript(url: string): Promise<string>;
  /** Loads a kernel with its command line (kernel/imgexec). Throws on failure. */
  loadKernel(url: string, args: string): Promise<void>;
  /** Loads an initrd (initrd/module/imgfetch). Throws on failure. */
  loadInitrd(url: string): Promise<void>;
  sleep(ms: number): Promise<void>;
  echo?(text: string): void;
  /** Variables iPXE knows about this machine: mac, platform, buildarch... */
  vars: Record<string, string>;
  /** Power off while the script runs: stop at the next command. */
  signal?: AbortSignal;
}

export type IpxeOutcome =
  /** `boot` with a kernel loaded: the kernel runs now. */
  | { kind: 'boot' }
  /** `sanboot` of a local disk. */
  | { kind: 'sanboot' }
  /** The script ended (exit, end of script, or a failed command); `code` 0 = success. */
  | { kind: 'exit'; code: number; reason: string };

/** A script can loop (retry loops): beyond this many commands it is stopped, as a watchdog would. */
const MAX_STEPS = 5_000;
const MAX_CHAIN_DEPTH = 8;

/** ${name} and ${name:type} expansion; unknown variables expand to '' as in iPXE. */
function expand(text: string, vars: Record<string, string>): string {
  return text.replace(/\$\{([A-Za-z0-9_.-]+)(?::([a-z]+))?\}/g, (_, name: string, type: string | undefined) => {
    const v = vars[name] ?? '';
    if (name === 'mac' && type === 'hexhyp') return v.replace(/:/g, '-');
    if (name === 'mac' && type === 'hexraw') return v.replace(/:/g, '');
    return v;
  });
}

const varName = (word: string | undefined) => (word ?? '').split(':')[0]!;

/** Splits `a || b && c` into commands and the operators between them (iPXE has no quoting beyond words). */
function splitLine(line: string): { cmds: string[]; ops: Array<'||' | '&&'> } {
  const cmds: string[] = [];
  const ops: Array<'||' | '&&'> = [];
  let rest = line;
  for (;;) {
    const m = /\s(\|\||&&)(\s|$)/.exec(rest);
    if (!m) {
      cmds.push(rest.trim());
      return { cmds, ops };
    }
    cmds.push(rest.slice(0, m.index).trim());
    ops.push(m[1] as '||' | '&&');
    rest = rest.slice(m.index + m[0].length);
  }
}

/** Drops `--name value` / `--flag` options; returns the options and the positional words. */
function options(words: string[]): { opts: Record<string, string>; args: string[] } {
  // Options (--timeout, --autofree, --name ...) change nothing in the lab; they are parsed off the words.
  const opts: Record<string, string> = {};
  const args: string[] = [];
  const valued = new Set(['--timeout', '--name', '--drive', '--filename', '--extra']);
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (args.length === 0 && w.startsWith('--')) {
      const [k, v] = w.split('=', 2) as [string, string | undefined];
      if (v !== undefined) opts[k] = v;
      else if (valued.has(k) && i + 1 < words.length) opts[k] = words[++i]!;
      else opts[k] = '';
    } else if (args.length === 0 && /^-[a-z]$/.test(w)) {
      opts[w] = '';
    } else args.push(w);
  }
  return { opts, args };
}

type Step = { status: 'ok' } | { status: 'fail'; reason: string } | { status: 'goto'; label: string } | { status: 'end'; outcome: IpxeOutcome };

export async function runIpxeScript(script: string, host: IpxeHost, depth = 0): Promise<IpxeOutcome> {
  if (depth > MAX_CHAIN_DEPTH) return { kind: 'exit', code: 1, reason: `chain depth over ${MAX_CHAIN_DEPTH}` };
  const lines = script.split(/\r?\n/);
  if (!/^#!ipxe/.test(lines[0] ?? '')) return { kind: 'exit', code: 1, reason: 'not an iPXE script (no #!ipxe line)' };
  const labels = new Map<string, number>();
  lines.forEach((l, i) => {
    const m = /^:(\S+)/.exec(l.trim());
    if (m) labels.set(m[1]!, i);
  });
  let kernelLoaded = false;
  let steps = 0;
  /** The last command that failed, so an `exit 1` of a `|| goto failed` path says why. */
  let lastFailure: string | undefined;

  const exec = async (cmd: string): Promise<Step> => {
    const words = expand(cmd, host.vars).split(/\s+/).filter(Boolean);
    const [name, ...rest] = words;
    const { args } = options(rest);
    try {
      switch (name) {
        case undefined:
          return { status: 'ok' };
        case 'echo':
          host.echo?.(args.join(' '));
          return { status: 'ok' };
        case 'goto':
          return labels.has(args[0] ?? '') ? { status: 'goto', label: args[0]! } : { status: 'fail', reason: `no label ${args[0]}` };
        case 'exit': {
          const code = Number(args[0] ?? 0);
          return { status: 'end', outcome: { kind: 'exit', code, reason: code === 0 ? 'exit' : `exit ${code}${lastFailure ? ` after: ${lastFailure}` : ''}` } };
        }
        // `set name:type value`: the type (int32, string...) only changes how iPXE stores it.
        case 'set':
          host.vars[varName(args[0])] = args.slice(1).join(' ');
          return { status: 'ok' };
        case 'clear':
          delete host.vars[varName(args[0])];
          return { status: 'ok' };
        case 'inc':
          host.vars[varName(args[0])] = String(Number(host.vars[varName(args[0])] ?? 0) + Number(args[1] ?? 1));
          return { status: 'ok' };
        case 'iseq':
          return (args[0] ?? '') === (args[1] ?? '') ? { status: 'ok' } : { status: 'fail', reason: 'not equal' };
        case 'isset':
          return args.length > 0 && args[0] !== '' ? { status: 'ok' } : { status: 'fail', reason: 'not set' };
        case 'sleep':
          await host.sleep(Number(args[0] ?? 0) * 1000);
          return { status: 'ok' };
        case 'imgfree':
          kernelLoaded = false;
          return { status: 'ok' };
        case 'dhcp':
        case 'ifconf':
        case 'ifopen':
          // The simulated NIC is configured already (loopback has no DHCP server for it).
          return { status: 'ok' };
        case 'chain': {
          const script = await host.fetchScript(args[0] ?? '');
          const out = await runIpxeScript(script, host, depth + 1);
          if (out.kind !== 'exit') return { status: 'end', outcome: out };
          return out.code === 0 ? { status: 'ok' } : { status: 'fail', reason: `chained script: ${out.reason}` };
        }
        case 'kernel':
        case 'imgexec':
          await host.loadKernel(args[0] ?? '', args.slice(1).join(' '));
          kernelLoaded = true;
          return { status: 'ok' };
        case 'initrd':
        case 'module':
        case 'imgfetch':
          await host.loadInitrd(args[0] ?? '');
          return { status: 'ok' };
        case 'boot':
          return kernelLoaded ? { status: 'end', outcome: { kind: 'boot' } } : { status: 'fail', reason: 'boot: no kernel loaded' };
        case 'sanboot':
          return { status: 'end', outcome: { kind: 'sanboot' } };
        default:
          return { status: 'fail', reason: `${name}: command not supported by the lab's iPXE` };
      }
    } catch (err) {
      return { status: 'fail', reason: `${name} ${args[0] ?? ''}: ${(err as Error).message}` };
    }
  };

  let pc = 0;
  while (pc < lines.length) {
    if (host.signal?.aborted) return { kind: 'exit', code: 1, reason: 'powered off' };
    const line = lines[pc]!.trim();
    pc++;
    if (!line || line.startsWith('#') || line.startsWith(':')) continue;
    if (++steps > MAX_STEPS) return { kind: 'exit', code: 1, reason: `script ran more than ${MAX_STEPS} commands` };
    const { cmds, ops } = splitLine(line);
    let last: Step = { status: 'ok' };
    let jumped = false;
    for (let i = 0; i < cmds.length; i++) {
      if (i > 0) {
        const op = ops[i - 1]!;
        const ok = last.status === 'ok';
        if ((op === '||' && ok) || (op === '&&' && !ok)) continue;
      }
      last = await exec(cmds[i]!);
      if (last.status === 'fail') lastFailure = last.reason;
      if (last.status === 'end') return last.outcome;
      if (last.status === 'goto') {
        pc = labels.get(last.label)! + 1;
        jumped = true;
        break;
      }
    }
    // A failure nothing handled (no `||` branch ran after it) ends the script, as in iPXE.
    if (!jumped && last.status === 'fail') return { kind: 'exit', code: 1, reason: last.reason };
  }
  return { kind: 'exit', code: 0, reason: 'end of script' };
}
