/**
 * BMC activities on a real Temporal server and real emulators: they keep
 * heartbeating while a slow but healthy BMC answers (so a short heartbeat
 * timeout never fires), a soft power off is tried before the hard one, and
 * a BMC that is down fails fast and retryably.
 */
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ActivityFailure, TimeoutFailure, WorkflowFailedError } from '@temporalio/client';
import { TimeoutType } from '@temporalio/common';
import { Worker } from '@temporalio/worker';
import { createBmcActivities } from '../../activities/bmc/activities';
import { staticBmcCredentialsReader } from '../../activities/k8s/bmc-credentials';
import { FAILURE } from '../../api/errors';
import { startIpmiSim, type IpmiSim } from '../../lab/bmc/ipmi-sim';
import { freeLoopbackPort } from '../../lab/bmc/child';
import { activityWorkflowsPath } from '../helpers/activity-workflow';
import { labWorkDir, silentLog, startRedfishLab, type RedfishLab } from '../helpers/bmc-lab';
import { temporalTestContext, type TemporalTestContext } from '../helpers/env';
import { registerTestSecret } from '../helpers/secrets';

const NS = 'metal3';
const USER = 'admin';
const PASSWORD = 'power-hb-pw-1';
const credentials = staticBmcCredentialsReader({ [`${NS}/bmc`]: { username: USER, password: PASSWORD } });
const input = (address: string) => ({ host: { namespace: NS, name: 'server-hb' }, bmc: { address, credentialsName: 'bmc' } });

beforeAll(() => registerTestSecret(PASSWORD));

describe('BMC activities: heartbeats, soft power off, unreachable BMCs', () => {
  let dir: string;
  let sim: IpmiSim;
  const events = () => readFileSync(sim.eventsFile, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { event: string; power: number });

  beforeAll(async () => {
    dir = labWorkDir('bmc-power-hb');
    sim = await startIpmiSim({ name: 'server-hb', workDir: join(dir, 'ipmi'), username: USER, password: PASSWORD });
  }, 30_000);
  afterAll(async () => {
    await sim?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** An ipmitool that runs the real one after `delay` seconds, and optionally swallows `power soft` (an OS that ignores ACPI). */
  const ipmitool = (name: string, o: { delay?: number; ignoreSoft?: boolean }) => {
    const file = join(dir, name);
    writeFileSync(
      file,
      [
        '#!/bin/sh',
        o.delay ? `sleep ${o.delay}` : '',
        o.ignoreSoft ? 'case "$*" in *"power soft"*) echo "Chassis Power Control: Soft"; exit 0 ;; esac' : '',
        'exec ipmitool "$@"',
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
    return file;
  };

  describe('through a real Temporal worker with a 2 s heartbeat timeout', () => {
    let ctx: TemporalTestContext;
    beforeAll(async () => {
      ctx = await temporalTestContext('bmc-heartbeat');
    });
    afterAll(async () => ctx?.close());

    const register = async (heartbeatIntervalMs: number, id: string) => {
      // Every ipmitool run takes 1.5 s: registration (power status, mc info, fru print) takes about 4.5 s.
      const acts = createBmcActivities({ credentials, log: silentLog, heartbeatIntervalMs, ipmitool: ipmitool('ipmitool-slow', { delay: 1.5 }) });
      const worker = await Worker.create({ connection: ctx.nativeConnection, namespace: ctx.namespace, taskQueue: `${ctx.taskQueue}-${id}`, workflowsPath: activityWorkflowsPath(), activities: acts });
      const started = Date.now();
      const result = await worker.runUntil(
        ctx.client.workflow
          .execute('runActivityWith', {
            taskQueue: `${ctx.taskQueue}-${id}`,
            workflowId: `bmc-hb-${id}-${ctx.taskQueue}`,
            args: ['bmcCheckAccess', input(sim.address), { startToCloseTimeout: '60s', heartbeatTimeout: '2s', retry: { maximumAttempts: 1 } }],
          })
          .catch((e: unknown) => e),
      );
      return { result, ms: Date.now() - started };
    };

    it('registration on a BMC that takes 1.5 s per call completes: the activity heartbeats while it waits', async () => {
      const { result, ms } = await register(500, 'beating');
      // ipmi_sim has no FRU here: the make comes from `mc info`.
      expect(result).toEqual({ poweredOn: false, manufacturer: 'MontaVista Software, Inc.' });
      expect(ms).toBeGreaterThan(4_000);
    }, 30_000);

    it('negative control: with heartbeats too far apart, the same call is killed by the 2 s heartbeat timeout', async () => {
      const { result } = await register(60_000, 'silent');
      expect(result).toBeInstanceOf(WorkflowFailedError);
      const activity = (result as WorkflowFailedError).cause;
      expect(activity).toBeInstanceOf(ActivityFailure);
      expect((activity as ActivityFailure).cause).toBeInstanceOf(TimeoutFailure);
      expect(((activity as ActivityFailure).cause as TimeoutFailure).timeoutType).toBe(TimeoutType.HEARTBEAT);
    }, 30_000);
  });

  describe('soft power off (IPMI chassis power soft on ipmi_sim)', () => {
    const acts = (tool: string) => createBmcActivities({ credentials, log: silentLog, pollIntervalMs: 100, verifyTimeoutMs: 5_000, ipmitool: tool });

    it('shuts the server down softly when it reacts, with no hard power action', async () => {
      const a = acts('ipmitool');
      await a.bmcSetPower({ ...input(sim.address), state: 'on' });
      const before = events().length;
      expect(await a.bmcSetPower({ ...input(sim.address), state: 'off', soft: true, softTimeoutSeconds: 10 })).toMatchObject({ poweredOn: false, changed: true, method: 'soft' });
      expect(sim.state().power).toBe('off');
      expect(events().slice(before).map((e) => e.event)).toEqual(['shutdown']);
    }, 30_000);

    it('forces it off after the soft timeout when the OS ignores the soft off, and says so', async () => {
      const a = acts(ipmitool('ipmitool-ignores-soft', { ignoreSoft: true }));
      await a.bmcSetPower({ ...input(sim.address), state: 'on' });
      const before = events().length;
      const started = Date.now();
      const r = await a.bmcSetPower({ ...input(sim.address), state: 'off', soft: true, softTimeoutSeconds: 1.5 });
      expect(Date.now() - started).toBeGreaterThanOrEqual(1_500);
      expect(r).toMatchObject({ poweredOn: false, changed: true, method: 'hard', softOffFallback: 'the server did not shut down within 1.5 s of a soft power off' });
      expect(events().slice(before).map((e) => `${e.event}:${e.power}`)).toEqual(['power:0']);
    }, 30_000);
  });

  describe('soft power off (Redfish GracefulShutdown on sushy-tools)', () => {
    let lab: RedfishLab;
    beforeAll(async () => {
      lab = await startRedfishLab({ label: 'bmc-soft-rf', username: USER, password: PASSWORD, systems: [{ name: 'soft', powerState: 'On' }] });
    }, 30_000);
    afterAll(async () => lab?.stop());

    it('sends GracefulShutdown and waits for the server to read off (sushy applies it after 1-11 s)', async () => {
      const a = createBmcActivities({ credentials, log: silentLog, pollIntervalMs: 250, verifyTimeoutMs: 20_000 });
      const r = await a.bmcSetPower({ ...input(lab.addressOf('soft')), state: 'off', soft: true, softTimeoutSeconds: 20 });
      expect(r).toMatchObject({ poweredOn: false, changed: true, method: 'soft' });
      console.log(`Redfish GracefulShutdown on sushy read back off after ${r.verifiedAfterMs} ms`);
    }, 40_000);
  });

  describe('a BMC that is down fails fast, as BmcUnreachable (retryable)', () => {
    let silent: TcpServer;
    let silentPort: number;
    const sockets: Socket[] = [];
    beforeAll(async () => {
      // Accepts connections and never answers: a BMC whose web server hangs.
      silent = createTcpServer((s) => sockets.push(s));
      await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
      silentPort = (silent.address() as { port: number }).port;
    });
    afterAll(async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    });

    it.each([
      ['Redfish, nothing listening', async () => `redfish+http://127.0.0.1:${await freeLoopbackPort()}/redfish/v1/Systems/1`, {}, 'connection refused', 1_000],
      ['Redfish, a web server that never answers (request timeout 3 s)', async () => `redfish+http://127.0.0.1:${silentPort}/redfish/v1/Systems/1`, { requestTimeoutMs: 3_000 }, 'no answer within 3000 ms', 4_500],
      // ipmitool -N 1 -R 2: three tries of about 2 s each.
    ['IPMI, nothing answering on the UDP port', async () => `ipmi://127.0.0.1:${await freeLoopbackPort('udp')}`, {}, 'no RMCP+ session', 8_000],
    ] as const)('%s', async (_what, address, over, detail, limitMs) => {
      const a = createBmcActivities({ credentials, log: silentLog, ...over });
      const started = Date.now();
      const err = (await a.bmcCheckAccess(input(await address())).catch((e: Error) => e)) as Error & { type?: string; nonRetryable?: boolean };
      const ms = Date.now() - started;
      expect(err).toMatchObject({ type: FAILURE.BmcUnreachable, nonRetryable: false });
      expect(err.message).toContain(detail);
      expect(err.message).toContain('is unreachable');
      expect(ms).toBeLessThan(limitMs);
      console.log(`${_what}: BmcUnreachable after ${ms} ms`);
    }, 20_000);
  });
});
