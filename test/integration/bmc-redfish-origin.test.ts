/**
 * The Redfish transport stays on the origin of spec.bmc.address. A copy of
 * DMTF's public rackmount mockup, served by the real `sushy-static`, has its
 * links rewritten to another origin on loopback, where a listener counts
 * every TCP connection: the credentials must never get there (zero), and
 * each refused link must fail with an error that says what happened.
 */
import { cpSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { createBmcActivities } from '../../activities/bmc/activities';
import { parseBmcAddress } from '../../activities/bmc/address';
import { connectBmc } from '../../activities/bmc/driver';
import type { IronflowBmcDriver } from '../../activities/bmc/types';
import { staticBmcCredentialsReader } from '../../activities/k8s/bmc-credentials';
import { FAILURE } from '../../api/errors';
import { startSushyStatic } from '../../lab/bmc/sushy';
import { labWorkDir, redfishMockupDir, silentLog } from '../helpers/bmc-lab';
import { registerTestSecret } from '../helpers/secrets';

const MOCKUP = redfishMockupDir();
const USER = 'admin';
const PASSWORD = 'origin-pw-7Hq2vX';
const secretRef = { namespace: 'metal3', name: 'rackmount-bmc' };
const credentials = staticBmcCredentialsReader({ 'metal3/rackmount-bmc': { username: USER, password: PASSWORD } });

beforeAll(() => registerTestSecret(PASSWORD));

/** An HTTP server on another loopback port that would answer anything, and counts every connection made to it. */
async function startElsewhere(): Promise<{ origin: string; connections(): number; stop(): Promise<void> }> {
  let connections = 0;
  const server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json', 'x-auth-token': 'stolen' }).end('{}'));
  server.on('connection', () => (connections += 1));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    origin: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    connections: () => connections,
    stop: () => new Promise((r) => server.close(() => r())),
  };
}

/** Copies the mockup into `dir` with every `/redfish/v1...` link made absolute on `origin`; `keep` files stay as they were. */
function rewrittenMockup(dir: string, origin: string, keep: (relPath: string) => boolean = () => false): number {
  cpSync(MOCKUP, dir, { recursive: true });
  let links = 0;
  const walk = (d: string) => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (f === 'index.json' && !keep(p.slice(dir.length + 1))) {
        const text = readFileSync(p, 'utf8').replace(/"(\/redfish\/v1[^"]*)"/g, (_m, path: string) => {
          links += 1;
          return JSON.stringify(`${origin}${path}`);
        });
        writeFileSync(p, text);
      }
    }
  };
  walk(dir);
  return links;
}

type DriverCall = [string, (d: IronflowBmcDriver) => Promise<unknown>];
const EVERY_CALL: DriverCall[] = [
  ['getPowerState', (d) => d.getPowerState()],
  ['getIdentity', (d) => d.getIdentity()],
  ['getInventory', (d) => d.getInventory()],
  ['setPowerState(off)', (d) => d.setPowerState('off')],
  ['softPowerOff', (d) => d.softPowerOff()],
  ['reset', (d) => d.reset()],
  ['setNextBoot(pxe)', (d) => d.setNextBoot('pxe')],
  ['getNextBoot', (d) => d.getNextBoot()],
];

describe('Redfish transport stays on the BMC origin (sushy-static + rewritten DMTF mockup)', () => {
  let elsewhere: Awaited<ReturnType<typeof startElsewhere>>;
  const dirs: string[] = [];
  const stops: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    elsewhere = await startElsewhere();
  });
  afterAll(async () => {
    for (const s of stops) await s();
    await elsewhere?.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  const serve = async (label: string, keep?: (rel: string) => boolean) => {
    const work = labWorkDir(label);
    dirs.push(work);
    const mockDir = join(work, 'mockup');
    const links = rewrittenMockup(mockDir, elsewhere.origin, keep);
    const mock = await startSushyStatic({ mockupDir: mockDir, workDir: work });
    stops.push(mock.stop);
    return { address: `redfish+http://127.0.0.1:${mock.port}`, port: mock.port, links };
  };
  const driverFor = (address: string) => connectBmc({ endpoint: parseBmcAddress(address), credentials: { username: USER, password: PASSWORD }, secretRef });

  it('with every link rewritten (the SessionService too), refuses each call before sending the credentials anywhere', async () => {
    const { address, port, links } = await serve('origin-all');
    expect(links).toBeGreaterThan(500);
    for (const [name, call] of EVERY_CALL) {
      const d = driverFor(address);
      const err = (await call(d).then(() => undefined, (e: Error) => e)) as (Error & { type?: string; nonRetryable?: boolean }) | undefined;
      await d.close();
      expect({ name, type: err?.type, nonRetryable: err?.nonRetryable }).toEqual({ name, type: FAILURE.BmcUnsupported, nonRetryable: true });
      expect(err!.message).toContain(`BMC 127.0.0.1:${port} linked its SessionService (Links.Sessions) to ${elsewhere.origin}/redfish/v1/SessionService/Sessions`);
      expect(err!.message).toContain(`which is not on http://127.0.0.1:${port}`);
      expect(err!.message).toContain('sent nothing there');
      expect(err!.message).not.toContain(PASSWORD);
    }
    expect(elsewhere.connections()).toBe(0);
  }, 60_000);

  it('with a same-origin SessionService, registration works, and every link to the other origin is refused (zero connections there)', async () => {
    // The service root keeps its own links; every other resource links elsewhere.
    const { address, port } = await serve('origin-links', (rel) => rel === 'index.json');
    const acts = createBmcActivities({ credentials, log: silentLog, pollIntervalMs: 100, verifyTimeoutMs: 2_000 });
    const input = { host: { namespace: 'metal3', name: 'rackmount' }, bmc: { address, credentialsName: 'rackmount-bmc' } };

    // Registration reads the system by the path it builds itself, and no link: it works.
    expect(await acts.bmcCheckAccess(input)).toEqual({ poweredOn: true, manufacturer: 'Contoso', model: '3500', serialNumber: '437XR1138R2' });
    expect((await (async () => { const d = driverFor(address); try { return await d.getNextBoot(); } finally { await d.close(); } })())).toEqual({ target: 'pxe', persistent: false });

    const refused: Record<string, string> = {};
    for (const [name, call] of EVERY_CALL.filter(([n]) => !['getPowerState', 'getIdentity', 'getNextBoot'].includes(n))) {
      const d = driverFor(address);
      const err = (await call(d).then(() => undefined, (e: Error) => e)) as (Error & { type?: string }) | undefined;
      await d.close();
      expect({ name, type: err?.type }).toEqual({ name, type: FAILURE.BmcUnsupported });
      expect(err!.message).toContain(`which is not on http://127.0.0.1:${port}`);
      refused[name] = err!.message.replace(/^BMC \S+ linked /, '').replace(/, which.*$/, '');
    }
    // Each refusal names the link it would have followed.
    expect(refused).toEqual({
      getInventory: `a resource to ${elsewhere.origin}/redfish/v1/Systems/437XR1138R2/EthernetInterfaces`,
      'setPowerState(off)': expect.stringContaining('/redfish/v1/Systems/437XR1138R2/Actions/ComputerSystem.Reset'),
      softPowerOff: expect.stringContaining('/redfish/v1/Systems/437XR1138R2/Actions/ComputerSystem.Reset'),
      reset: expect.stringContaining('/redfish/v1/Systems/437XR1138R2/Actions/ComputerSystem.Reset'),
      'setNextBoot(pxe)': `a resource to ${elsewhere.origin}/redfish/v1/Systems/437XR1138R2`,
    });
    // Through the activity: the inventory walk fails with the same clear, non-retryable error.
    await expect(acts.bmcGetInventory(input)).rejects.toMatchObject({ type: FAILURE.BmcUnsupported, nonRetryable: true, message: expect.stringContaining('EthernetInterfaces') });
    expect(elsewhere.connections()).toBe(0);
  }, 60_000);

  describe('headers that point elsewhere (a front that answers like a hostile BMC, over the untouched mockup)', () => {
    let front: Server;
    let frontPort: number;
    let mode: 'session-location' | 'redirect-away' | 'redirect-home' = 'session-location';
    const frontSeen: string[] = [];

    beforeAll(async () => {
      const work = labWorkDir('origin-front');
      dirs.push(work);
      const mock = await startSushyStatic({ mockupDir: MOCKUP, workDir: work });
      stops.push(mock.stop);
      const forward = (req: IncomingMessage, res: ServerResponse, path = req.url ?? '/') => {
        const up = httpRequest({ host: '127.0.0.1', port: mock.port, path, method: req.method, headers: { ...req.headers, host: `127.0.0.1:${mock.port}` } }, (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
        });
        req.pipe(up);
      };
      front = createServer((req, res) => {
        frontSeen.push(`${req.method} ${req.url}`);
        const path = (req.url ?? '').split('?')[0];
        if (mode === 'session-location' && req.method === 'POST' && path === '/redfish/v1/SessionService/Sessions') {
          req.resume();
          return void res.writeHead(201, { 'x-auth-token': 'tok-123456', location: `${elsewhere.origin}/redfish/v1/SessionService/Sessions/1`, 'content-type': 'application/json' }).end('{}');
        }
        if (mode === 'redirect-away' && path === '/redfish/v1/Systems/437XR1138R2') {
          return void res.writeHead(307, { location: `${elsewhere.origin}/redfish/v1/Systems/437XR1138R2` }).end();
        }
        if (mode === 'redirect-home' && path === '/redfish/v1/Systems/437XR1138R2') {
          return void res.writeHead(301, { location: '/moved/redfish/v1/Systems/437XR1138R2' }).end();
        }
        forward(req, res, (req.url ?? '/').replace(/^\/moved/, ''));
      });
      await new Promise<void>((r) => front.listen(0, '127.0.0.1', () => r()));
      frontPort = (front.address() as { port: number }).port;
      stops.push(() => new Promise((r) => front.close(() => r())));
    }, 30_000);

    it('refuses a session whose Location header is on another origin, so the token is never sent there (not even to end it)', async () => {
      mode = 'session-location';
      const d = driverFor(`redfish+http://127.0.0.1:${frontPort}`);
      const err = (await d.getPowerState().catch((e: Error) => e)) as Error & { type?: string };
      await d.close();
      expect(err).toMatchObject({ type: FAILURE.BmcUnsupported, nonRetryable: true });
      expect(err.message).toContain(`linked the session it created (Location) to ${elsewhere.origin}/redfish/v1/SessionService/Sessions/1`);
      expect(elsewhere.connections()).toBe(0);
    });

    it('follows a redirect on its own origin, and refuses one to another origin', async () => {
      mode = 'redirect-home';
      const home = driverFor(`redfish+http://127.0.0.1:${frontPort}`);
      try {
        expect(await home.getPowerState()).toBe('on');
      } finally {
        await home.close();
      }
      expect(frontSeen).toContain('GET /moved/redfish/v1/Systems/437XR1138R2');

      mode = 'redirect-away';
      const away = driverFor(`redfish+http://127.0.0.1:${frontPort}`);
      const err = (await away.getPowerState().catch((e: Error) => e)) as Error & { type?: string };
      await away.close();
      expect(err).toMatchObject({ type: FAILURE.BmcUnsupported, nonRetryable: true });
      expect(err.message).toContain(`linked GET /redfish/v1/Systems/437XR1138R2 (HTTP 307 redirect) to ${elsewhere.origin}/redfish/v1/Systems/437XR1138R2`);
      expect(elsewhere.connections()).toBe(0);
    });
  });

  it('counts a connection when something does reach the other origin (negative control of the counter)', async () => {
    const before = elsewhere.connections();
    await fetch(`${elsewhere.origin}/redfish/v1`).then((r) => r.arrayBuffer());
    expect(elsewhere.connections()).toBe(before + 1);
  });
});
