import { createServer, type Server } from 'node:http';
import { rmSync } from 'node:fs';
import { WorkflowFailedError } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { createBmcActivities } from '../../activities/bmc/activities';
import { parseBmcAddress } from '../../activities/bmc/address';
import { connectBmc } from '../../activities/bmc/driver';
import type { RedfishDriver } from '../../activities/bmc/redfish';
import { staticBmcCredentialsReader } from '../../activities/k8s/bmc-credentials';
import { FAILURE, NON_RETRYABLE_FAILURES } from '../../api/errors';
import { startSushy, startSushyFleet, startSushyStatic, SUSHY_SYSTEMS_PER_PROCESS, type SushyEmulator } from '../../lab/bmc/sushy';
import { labWorkDir, Latencies, redfishMockupDir, retryingActivityWorkflowsPath, silentLog, startRedfishLab, type RedfishLab } from '../helpers/bmc-lab';
import { temporalTestContext, type TemporalTestContext } from '../helpers/env';
import { registerTestSecret } from '../helpers/secrets';

const NS = 'metal3';
const USER = 'admin';
const PASSWORD = 'lab-password-1';
const credentials = staticBmcCredentialsReader({
  [`${NS}/good-bmc`]: { username: USER, password: PASSWORD },
  [`${NS}/bad-bmc`]: { username: USER, password: 'wrong-password' },
});
const secretRef = { namespace: NS, name: 'good-bmc' };
const latencies = new Latencies();
const MOCKUP = redfishMockupDir();

/** Retry policy of BMC activities, as the host workflow should use it (short intervals for the test). */
const RETRY = { initialInterval: '100ms', backoffCoefficient: 2, maximumInterval: '1s', maximumAttempts: 10, nonRetryableErrorTypes: NON_RETRYABLE_FAILURES };

beforeAll(() => registerTestSecret(PASSWORD));

describe('Redfish driver and BMC activities against sushy-tools', () => {
  let lab: RedfishLab;
  const notifications: Array<{ name?: string; power_state?: string; boot_device?: string }> = [];
  let notifier: Server;
  let notifierUrl: string;

  beforeAll(async () => {
    notifier = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c)).on('end', () => {
        notifications.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as (typeof notifications)[number]);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => notifier.listen(0, '127.0.0.1', () => r()));
    notifierUrl = `http://127.0.0.1:${(notifier.address() as { port: number }).port}/notify`;
    lab = await startRedfishLab({
      label: 'bmc-redfish',
      username: USER,
      password: PASSWORD,
      systems: ['power', 'boot', 'storm', 'denied', 'lost', 'stuck', 'slow', 'retry401'].map((name) => ({ name, nics: [{ mac: '52:54:00:00:00:01' }] })),
    });
    // The lab's notifier is per sushy process: re-run one with it for the notification check.
  }, 60_000);

  afterAll(async () => {
    await lab?.stop();
    await new Promise<void>((r) => notifier.close(() => r()));
    console.log(`Redfish latencies on this machine:\n${latencies.summary()}`);
  });

  const hostInput = (address: string, credentialsName = 'good-bmc') => ({ host: { namespace: NS, name: 'server-01' }, bmc: { address, credentialsName } });
  const activities = (over: Partial<Parameters<typeof createBmcActivities>[0]> = {}) =>
    createBmcActivities({ credentials, log: silentLog, pollIntervalMs: 250, verifyTimeoutMs: 20_000, ...over });

  it('powers a server on and off, each verified by an independent read at the emulator', async () => {
    const acts = activities();
    const address = lab.addressOf('power');
    const on = await latencies.time('bmcSetPower on (incl. sushy 1-11 s delay)', () => acts.bmcSetPower({ ...hostInput(address), state: 'on' }));
    expect(on).toMatchObject({ poweredOn: true, changed: true });
    const direct = connectBmc({ endpoint: parseBmcAddress(lab.directAddressOf('power')), credentials: { username: USER, password: PASSWORD }, secretRef });
    try {
      expect(await latencies.time('Redfish GET system, Basic, direct', () => direct.getPowerState())).toBe('on');
      // Again: already on, so nothing is sent.
      expect(await acts.bmcSetPower({ ...hostInput(address), state: 'on' })).toMatchObject({ changed: false });
      const off = await acts.bmcSetPower({ ...hostInput(address), state: 'off' });
      expect(off).toMatchObject({ poweredOn: false, changed: true });
      for (let i = 0; i < 5; i++) await latencies.time('Redfish GET system, Basic, direct', () => direct.getPowerState());
      expect(await direct.getPowerState()).toBe('off');
    } finally {
      await direct.close();
    }
    expect(lab.proxy.stats().openSessions).toBe(0);
  }, 60_000);

  it('sets the next boot device to PXE and back to disk, read back each time', async () => {
    const acts = activities();
    const address = lab.addressOf('boot');
    expect(await acts.bmcSetNextBoot({ ...hostInput(address), target: 'pxe', persistent: false })).toEqual({ target: 'pxe', persistent: false, verified: true });
    const d = connectBmc({ endpoint: parseBmcAddress(lab.directAddressOf('boot')), credentials: { username: USER, password: PASSWORD }, secretRef });
    try {
      expect((await d.getNextBoot()).target).toBe('pxe');
      expect(await acts.bmcSetNextBoot({ ...hostInput(address), target: 'disk', persistent: true })).toMatchObject({ target: 'disk', verified: true });
      expect(await d.getNextBoot()).toEqual({ target: 'disk', persistent: true });
    } finally {
      await d.close();
    }
  }, 30_000);

  it('reads inventory from a vendor-shaped Redfish mockup (sushy-static), falling back to Basic when the login returns no token', async () => {
    const dir = labWorkDir('bmc-mockup');
    const mock = await startSushyStatic({ mockupDir: MOCKUP, workDir: dir });
    try {
      const d = connectBmc({ endpoint: parseBmcAddress(`redfish+http://127.0.0.1:${mock.port}`), credentials: { username: USER, password: PASSWORD }, secretRef });
      try {
        const inv = await latencies.time('getInventory on mockup (system + 4 NICs + storage)', () => d.getInventory());
        expect(inv).toMatchObject({
          manufacturer: 'Contoso',
          model: '3500',
          serialNumber: '437XR1138R2',
          biosVersion: 'P79 v1.45 (12/06/2017)',
          cpu: { count: 2, cores: 8 },
          memoryMiB: 96 * 1024,
        });
        expect(inv.nics.map((n) => n.mac)).toEqual(expect.arrayContaining(['12:44:6a:3b:04:11']));
        expect(inv.disks).toEqual([
          expect.objectContaining({ name: 'SATA Bay 1', sizeBytes: 8_000_000_000_000, model: '3000GT8' }),
          expect.objectContaining({ name: 'SATA Bay 2', sizeBytes: 4_000_000_000_000 }),
        ]);
        expect(await d.getNextBoot()).toEqual({ target: 'pxe', persistent: false });
        // The mockup links a SessionService, but its login answers 204 without a token.
        expect((d as RedfishDriver).authKind).toBe('basic');
        for (let i = 0; i < 5; i++) await latencies.time('Redfish GET system, mockup', () => d.getPowerState());
      } finally {
        await d.close();
      }
    } finally {
      await mock.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 40_000);

  it('uses one Redfish session per driver and deletes it on close, also after failures', async () => {
    const before = lab.proxy.stats();
    const d = connectBmc({ endpoint: parseBmcAddress(lab.addressOf('boot')), credentials: { username: USER, password: PASSWORD }, secretRef });
    for (let i = 0; i < 5; i++) await latencies.time('Redfish GET system, session, via proxy', () => d.getPowerState());
    expect((d as RedfishDriver).authKind).toBe('session');
    expect(lab.proxy.stats().openSessions).toBe(1);
    await d.close();
    const after = lab.proxy.stats();
    expect(after.sessionsCreated - before.sessionsCreated).toBe(1);
    expect(after.openSessions).toBe(0);
  });

  it('rejects a wrong password with a non-retryable error naming the BMC address and the Secret', async () => {
    const acts = activities();
    for (const address of [lab.addressOf('denied'), lab.directAddressOf('denied')]) {
      const err = (await acts.bmcCheckAccess(hostInput(address, 'bad-bmc')).catch((e: Error) => e)) as Error & { type?: string; nonRetryable?: boolean };
      const port = parseBmcAddress(address).port;
      expect(err).toMatchObject({ type: FAILURE.BmcCredentialsRejected, nonRetryable: true });
      expect(err.message).toContain(`BMC 127.0.0.1:${port} rejected credentials from Secret ${NS}/bad-bmc (HTTP 401)`);
      expect(err.message).not.toContain('wrong-password');
    }
    // The lab fault bmc-401 looks the same to the driver, even with good credentials.
    lab.setFaults('denied', [{ fault: 'bmc-401' }]);
    await expect(acts.bmcCheckAccess(hostInput(lab.addressOf('denied')))).rejects.toMatchObject({ type: FAILURE.BmcCredentialsRejected });
    lab.setFaults('denied', []);
    expect(lab.proxy.stats().openSessions).toBe(0);
  });

  it('keeps working when the BMC drops each session after one request (re-login once)', async () => {
    lab.setFaults('lost', [{ fault: 'bmc-session-lost' }]);
    const before = lab.proxy.stats().sessionsCreated;
    const r = await activities().bmcSetNextBoot({ ...hostInput(lab.addressOf('lost')), target: 'pxe', persistent: true });
    expect(r.verified).toBe(true);
    expect(lab.proxy.stats().sessionsCreated - before).toBeGreaterThan(2);
    lab.setFaults('lost', []);
  });

  it('fails with BmcActionNotApplied when a power action is accepted but never takes effect', async () => {
    lab.setFaults('stuck', [{ fault: 'power-stuck' }]);
    const acts = activities({ verifyTimeoutMs: 2_000 });
    const err = (await acts.bmcSetPower({ ...hostInput(lab.addressOf('stuck')), state: 'on' }).catch((e: Error) => e)) as Error & { type?: string };
    expect(err).toMatchObject({ type: FAILURE.BmcActionNotApplied, nonRetryable: false });
    expect(err.message).toContain('still reads the old state');
    lab.setFaults('stuck', []);
  });

  it('calls a BMC that never answers unreachable (retryable) after the request timeout', async () => {
    lab.setFaults('slow', [{ fault: 'bmc-timeout' }]);
    const acts = activities({ requestTimeoutMs: 500 });
    const started = Date.now();
    await expect(acts.bmcCheckAccess(hostInput(lab.addressOf('slow')))).rejects.toMatchObject({ type: FAILURE.BmcUnreachable, nonRetryable: false });
    expect(Date.now() - started).toBeLessThan(5_000);
    lab.setFaults('slow', []);
  });

  describe('through a real Temporal worker and the activity retry policy', () => {
    let ctx: TemporalTestContext;
    beforeAll(async () => {
      ctx = await temporalTestContext('bmc-redfish');
    });
    afterAll(async () => ctx?.close());

    it('retries a storm of 3x 503 and 2x 409 to success, and gives up at once on rejected credentials', async () => {
      lab.setFaults('storm', [{ fault: 'bmc-503', count: 3 }, { fault: 'bmc-409', count: 2 }]);
      const injectedBefore = lab.proxy.stats().injected;
      const worker = await Worker.create({
        connection: ctx.nativeConnection,
        namespace: ctx.namespace,
        taskQueue: ctx.taskQueue,
        workflowsPath: retryingActivityWorkflowsPath(),
        activities: activities(),
      });
      await worker.runUntil(async () => {
        const ok = await ctx.client.workflow.execute('runActivity', {
          taskQueue: ctx.taskQueue,
          workflowId: `bmc-storm-${ctx.taskQueue}`,
          args: ['bmcSetPower', { ...hostInput(lab.addressOf('storm')), state: 'on' }, RETRY],
        });
        expect(ok).toMatchObject({ poweredOn: true });
        const denied = ctx.client.workflow.execute('runActivity', {
          taskQueue: ctx.taskQueue,
          workflowId: `bmc-denied-${ctx.taskQueue}`,
          args: ['bmcCheckAccess', hostInput(lab.addressOf('retry401'), 'bad-bmc'), RETRY],
        });
        const err = await denied.catch((e: unknown) => e);
        expect(err).toBeInstanceOf(WorkflowFailedError);
        const cause = (err as WorkflowFailedError).cause?.cause as { type?: string; message?: string } | undefined;
        expect(cause).toMatchObject({ type: FAILURE.BmcCredentialsRejected });
        expect(cause?.message).toContain(`Secret ${NS}/bad-bmc (HTTP 401)`);
        // One attempt only: the failure is non-retryable.
        const history = await ctx.client.workflow.getHandle(`bmc-denied-${ctx.taskQueue}`).fetchHistory();
        const started = (history.events ?? []).filter((e) => e.activityTaskStartedEventAttributes);
        expect(started.map((e) => e.activityTaskStartedEventAttributes?.attempt)).toEqual([1]);
      });
      const injected = lab.proxy.stats().injected;
      expect((injected['bmc-503'] ?? 0) - (injectedBefore['bmc-503'] ?? 0)).toBe(3);
      expect((injected['bmc-409'] ?? 0) - (injectedBefore['bmc-409'] ?? 0)).toBe(2);
      expect(lab.proxy.stats().openSessions).toBe(0);
    }, 60_000);
  });

  it(`shards a fleet at ${SUSHY_SYSTEMS_PER_PROCESS} systems per sushy process, every system reachable at its own address`, async () => {
    const dir = labWorkDir('bmc-fleet');
    const names = Array.from({ length: SUSHY_SYSTEMS_PER_PROCESS + 1 }, (_, i) => `fleet-${String(i).padStart(3, '0')}`);
    const started = Date.now();
    const fleet = await startSushyFleet({ systems: names.map((name) => ({ name })), workDir: dir });
    const startMs = Date.now() - started;
    try {
      expect(fleet.shards.map((s) => Object.keys(s.systemIds).length)).toEqual([SUSHY_SYSTEMS_PER_PROCESS, 1]);
      expect(new Set(Object.values(fleet.systemIds)).size).toBe(names.length);
      for (const name of [names[0]!, names[SUSHY_SYSTEMS_PER_PROCESS - 1]!, names[SUSHY_SYSTEMS_PER_PROCESS]!]) {
        const url = new URL(fleet.urlOf(name));
        const d = connectBmc({ endpoint: parseBmcAddress(`redfish+http://${url.host}/redfish/v1/Systems/${fleet.systemIds[name]}`), credentials: { username: USER, password: PASSWORD }, secretRef });
        try {
          for (let i = 0; i < 3; i++) expect(await latencies.time(`Redfish GET system, ${SUSHY_SYSTEMS_PER_PROCESS}-system sushy, no auth`, () => d.getPowerState())).toBe('off');
        } finally {
          await d.close();
        }
      }
      console.log(`sushy fleet of ${names.length} systems (${fleet.shards.length} processes) started in ${startMs} ms`);
    } finally {
      await fleet.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  describe('TLS', () => {
    let tls: SushyEmulator;
    let dir: string;
    beforeAll(async () => {
      dir = labWorkDir('bmc-tls');
      tls = await startSushy({ systems: [{ name: 'tls' }], workDir: dir, tls: true, auth: { username: USER, password: PASSWORD }, notificationUrl: notifierUrl });
    }, 30_000);
    afterAll(async () => {
      await tls?.stop();
      rmSync(dir, { recursive: true, force: true });
    });
    const endpoint = () => parseBmcAddress(`redfish://127.0.0.1:${tls.port}/redfish/v1/Systems/${tls.systemIds.tls}`);

    it('refuses a self-signed BMC certificate by default, with an error that says how to fix it', async () => {
      const d = connectBmc({ endpoint: endpoint(), credentials: { username: USER, password: PASSWORD }, secretRef });
      const err = (await d.getPowerState().catch((e: Error) => e)) as Error & { type?: string; nonRetryable?: boolean };
      await d.close();
      expect(err).toMatchObject({ type: FAILURE.BmcUnreachable, nonRetryable: true });
      expect(err.message).toMatch(/does not verify \((DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN)\)/);
      expect(err.message).toContain('disableCertificateVerification');
    });

    it('accepts it with the CA bundle, or with disableCertificateVerification for that host', async () => {
      const withCa = connectBmc({ endpoint: endpoint(), credentials: { username: USER, password: PASSWORD }, secretRef, caBundle: tls.caPem });
      const optOut = connectBmc({ endpoint: endpoint(), credentials: { username: USER, password: PASSWORD }, secretRef, disableCertificateVerification: true });
      try {
        for (let i = 0; i < 5; i++) await latencies.time('Redfish GET system, Basic, HTTPS', () => withCa.getPowerState());
        expect(await optOut.getPowerState()).toBe('off');
      } finally {
        await withCa.close();
        await optOut.close();
      }
    });

    it("sends every power and boot change to the lab's notification URL (external_notifier)", async () => {
      const acts = activities({ caBundle: tls.caPem });
      const input = hostInput(`redfish://127.0.0.1:${tls.port}/redfish/v1/Systems/${tls.systemIds.tls}`);
      await acts.bmcSetNextBoot({ ...input, target: 'pxe', persistent: false });
      await acts.bmcSetPower({ ...input, state: 'on' });
      expect(notifications.some((n) => n.name === 'tls' && n.boot_device === 'Pxe')).toBe(true);
      expect(notifications.some((n) => n.name === 'tls' && n.power_state === 'On')).toBe(true);
    }, 30_000);
  });
});
