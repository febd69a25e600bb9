/**
 * Odd credentials through the real drivers, the real Secrets API and a real
 * Temporal history: a NUL byte, a trailing newline and bytes that are not
 * UTF-8 in a Secret, a password an IPMI tool echoes, and `user:password@`
 * inside a BMC address. Each must fail with a message that says what to
 * fix, and none of the values may appear in an error, a log line or a
 * history. Every value is registered, so the end-of-run secret scan looks
 * for it in every log and history of the run as well.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { CoreV1Api } from '@kubernetes/client-node';
import pino from 'pino';
import { createBmcActivities } from '../../activities/bmc/activities';
import { SCRUBBED } from '../../activities/bmc/scrub';
import { kubeBmcCredentialsReader, staticBmcCredentialsReader } from '../../activities/k8s/bmc-credentials';
import { redactBmcAddress } from '../../api/bmc-address-redaction';
import { FAILURE, NON_RETRYABLE_FAILURES } from '../../api/errors';
import { startIpmiSim, type IpmiSim } from '../../lab/bmc/ipmi-sim';
import { activityWorkflowsPath } from '../helpers/activity-workflow';
import { labWorkDir, startRedfishLab, type RedfishLab } from '../helpers/bmc-lab';
import { kubeTestContext, sharedEnv, temporalTestContext, type KubeTestContext, type TemporalTestContext } from '../helpers/env';
import { secretsIn } from '../helpers/secret-scan';
import { registerTestSecret } from '../helpers/secrets';

const USER = 'admin';
const GOOD = 'hyg-good-pw-31';
const tag = Date.now().toString(36);
const NUL_PW = Buffer.from(`hyg-nul-${tag}\0after-nul-${tag}`);
const NEWLINE_PW = Buffer.from(`hyg-newline-${tag}\n`);
const BYTES_PW = Buffer.concat([Buffer.from(`hyg-bytes-${tag}`), Buffer.from([0xff, 0xfe, 0x80]), Buffer.from('-tail')]);
const ADDRESS_PW = `hyg-addr/p?w#${tag}`;
/** Not registered: the negative control puts it into a history on purpose. */
const CONTROL_PW = `hyg-control-${Date.now()}`;
const ALL = [NUL_PW, NEWLINE_PW, BYTES_PW, ADDRESS_PW, GOOD];

/** Everything a test gets back: the error's message and stack, and the lines the activities logged. */
const collect = (err: Error | undefined, logFile: string) => `${err?.message}\n${err?.stack}\n${readFileSync(logFile, 'utf8')}`;

describe('no credential value leaves the BMC drivers, whatever its bytes or wherever it was put', () => {
  let kube: KubeTestContext;
  let sim: IpmiSim;
  let lab: RedfishLab;
  let dir: string;
  let logFile: string;
  let log: pino.Logger;
  let ipmitoolRuns: string;
  let countingIpmitool: string;

  beforeAll(async () => {
    registerTestSecret(...ALL);
    kube = await kubeTestContext('bmc-hygiene');
    dir = labWorkDir('bmc-hygiene');
    logFile = join(sharedEnv().stateDir, 'logs', `bmc-secret-hygiene-${tag}.log`);
    log = pino({ level: 'debug' }, pino.destination({ dest: logFile, sync: true }));
    sim = await startIpmiSim({ name: 'hygiene-ipmi', workDir: join(dir, 'ipmi'), username: USER, password: GOOD });
    lab = await startRedfishLab({ label: 'bmc-hygiene', username: USER, password: GOOD, systems: [{ name: 'hygiene-rf' }] });
    ipmitoolRuns = join(dir, 'ipmitool-runs.txt');
    writeFileSync(ipmitoolRuns, '');
    countingIpmitool = join(dir, 'ipmitool-counting');
    writeFileSync(countingIpmitool, `#!/bin/sh\necho "$*" >> ${ipmitoolRuns}\nexec ipmitool "$@"\n`, { mode: 0o755 });
    const core = kube.kc.makeApiClient(CoreV1Api);
    const secret = (name: string, password: Buffer | string) =>
      core.createNamespacedSecret({ namespace: kube.namespace, body: { metadata: { name }, data: { username: Buffer.from(USER).toString('base64'), password: Buffer.from(password).toString('base64') } } });
    await secret('nul-pw', NUL_PW);
    await secret('newline-pw', NEWLINE_PW);
    await secret('bytes-pw', BYTES_PW);
    await secret('good', GOOD);
  }, 60_000);

  afterAll(async () => {
    await sim?.stop();
    await lab?.stop();
    await kube?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  const acts = (over: Partial<Parameters<typeof createBmcActivities>[0]> = {}) =>
    createBmcActivities({ credentials: kubeBmcCredentialsReader(kube.kc), log, ipmitool: countingIpmitool, pollIntervalMs: 100, verifyTimeoutMs: 5_000, ...over });
  const input = (address: string, credentialsName: string) => ({ host: { namespace: kube.namespace, name: 'hygiene' }, bmc: { address, credentialsName } });
  const ipmiRuns = () => readFileSync(ipmitoolRuns, 'utf8').split('\n').filter(Boolean).length;

  it.each([
    ['nul-pw', 'contains a control character (such as a NUL byte)'],
    ['newline-pw', 'contains a line break (a trailing newline from `echo`?'],
    ['bytes-pw', 'is not valid UTF-8'],
  ])('a Secret whose password %s is refused before any BMC is asked, naming the key and not the value (IPMI and Redfish)', async (name, why) => {
    const ipmiBefore = ipmiRuns();
    const redfishBefore = lab.proxy.stats().requests;
    for (const address of [sim.address, lab.addressOf('hygiene-rf')]) {
      const err = (await acts().bmcCheckAccess(input(address, name)).catch((e: Error) => e)) as Error & { type?: string; nonRetryable?: boolean };
      expect(err).toMatchObject({ type: FAILURE.BmcCredentialsMissing, nonRetryable: true });
      expect(err.message).toBe(`BMC credentials Secret ${kube.namespace}/${name} has a "password" that ${why}${why.endsWith('?') ? ' use `echo -n`, or `kubectl create secret generic --from-literal`)' : ''}: fix that key in the Secret`);
      expect(await secretsIn(collect(err, logFile), ALL)).toEqual([]);
    }
    expect(ipmiRuns()).toBe(ipmiBefore);
    expect(lab.proxy.stats().requests).toBe(redfishBefore);
  });

  it('a NUL byte that gets past the Secret check (another credentials reader) is refused by the IPMI driver before ipmitool runs, and rejected by the Redfish BMC, without echo', async () => {
    const nul = NUL_PW.toString('utf8');
    const direct = acts({ credentials: staticBmcCredentialsReader({ [`${kube.namespace}/raw`]: { username: USER, password: nul } }) });
    const before = ipmiRuns();
    const ipmiErr = (await direct.bmcCheckAccess(input(sim.address, 'raw')).catch((e: Error) => e)) as Error & { type?: string };
    expect(ipmiErr).toMatchObject({ type: FAILURE.BmcCredentialsMissing, nonRetryable: true });
    expect(ipmiErr.message).toBe(`BMC 127.0.0.1:${sim.port}: the credentials in Secret ${kube.namespace}/raw cannot be used ("password" contains a NUL byte, which IPMI cannot carry); fix that key in the Secret`);
    expect(ipmiRuns()).toBe(before);

    const rfErr = (await direct.bmcCheckAccess(input(lab.addressOf('hygiene-rf'), 'raw')).catch((e: Error) => e)) as Error & { type?: string };
    expect(rfErr).toMatchObject({ type: FAILURE.BmcCredentialsRejected, nonRetryable: true });
    expect(await secretsIn(collect(ipmiErr, logFile) + collect(rfErr, logFile), ALL)).toEqual([]);
  });

  it("scrubs the password out of ipmitool's own output before it becomes a message", async () => {
    const echoing = join(dir, 'ipmitool-echoing');
    // Runs the real ipmitool, then prints the password it was given as its last line and fails.
    writeFileSync(echoing, '#!/bin/sh\nipmitool "$@"\necho "debug: IPMI_PASSWORD=$IPMI_PASSWORD" >&2\nexit 1\n', { mode: 0o755 });
    const err = (await acts({ ipmitool: echoing }).bmcCheckAccess(input(sim.address, 'good')).catch((e: Error) => e)) as Error & { type?: string };
    expect(err).toMatchObject({ type: FAILURE.BmcBusy });
    expect(err.message).toContain(`ipmitool power status failed: debug: IPMI_PASSWORD=${SCRUBBED}`);
    expect(await secretsIn(collect(err, logFile), ALL)).toEqual([]);
  });

  it('an address with user:password@ is refused without quoting them, and no request reaches the BMC it names', async () => {
    const ipmiBefore = ipmiRuns();
    const redfishBefore = lab.proxy.stats().requests;
    const rf = new URL(lab.addressOf('hygiene-rf').replace('redfish+http', 'http'));
    for (const address of [`ipmi://${USER}:${ADDRESS_PW}@127.0.0.1:${sim.port}`, `redfish+http://${USER}:${ADDRESS_PW}@${rf.host}${rf.pathname}`]) {
      const err = (await acts().bmcCheckAccess(input(address, 'good')).catch((e: Error) => e)) as Error & { type?: string };
      expect(err).toMatchObject({ type: FAILURE.BmcAddressInvalid, nonRetryable: true });
      expect(err.message).toContain(`"${redactBmcAddress(address)}" contains "@"`);
      expect(await secretsIn(collect(err, logFile), ALL)).toEqual([]);
    }
    expect(ipmiRuns()).toBe(ipmiBefore);
    expect(lab.proxy.stats().requests).toBe(redfishBefore);
    // The same activities work with the good Secret (the refusals above were not a broken setup).
    expect(await acts().bmcCheckAccess(input(sim.address, 'good'))).toMatchObject({ poweredOn: false });
    expect(await acts().bmcCheckAccess(input(lab.addressOf('hygiene-rf'), 'good'))).toMatchObject({ poweredOn: false });
  }, 30_000);

  describe('through a real Temporal worker: the failures recorded in history are clean', () => {
    let ctx: TemporalTestContext;
    beforeAll(async () => {
      ctx = await temporalTestContext('bmc-hygiene');
    });
    afterAll(async () => ctx?.close());

    const run = async (workflowId: string, activityInput: ReturnType<typeof input>) => {
      const worker = await Worker.create({ connection: ctx.nativeConnection, namespace: ctx.namespace, taskQueue: ctx.taskQueue, workflowsPath: activityWorkflowsPath(), activities: acts() });
      const err = await worker.runUntil(
        ctx.client.workflow
          .execute('runActivityWith', {
            taskQueue: ctx.taskQueue,
            workflowId,
            args: ['bmcCheckAccess', activityInput, { retry: { initialInterval: '100ms', maximumAttempts: 2, nonRetryableErrorTypes: NON_RETRYABLE_FAILURES } }],
          })
          .catch((e: unknown) => e),
      );
      expect(err).toBeInstanceOf(WorkflowFailedError);
      return { cause: (err as WorkflowFailedError).cause?.cause as Error & { type?: string }, history: await ctx.client.workflow.getHandle(workflowId).fetchHistory() };
    };

    it('a NUL-byte password Secret fails registration once (non-retryable) with the clean message, and the history holds none of the values', async () => {
      const { cause, history } = await run(`hyg-nul-${ctx.taskQueue}`, input(sim.address, 'nul-pw'));
      expect(cause).toMatchObject({ type: FAILURE.BmcCredentialsMissing, message: `BMC credentials Secret ${kube.namespace}/nul-pw has a "password" that contains a control character (such as a NUL byte): fix that key in the Secret` });
      expect(await secretsIn(history, ALL)).toEqual([]);
    });

    it('an address with credentials, redacted before it enters history (as the bridge does with redactBmcAddress), is still refused; unredacted, the history would hold it (negative control)', async () => {
      const redacted = await run(`hyg-addr-${ctx.taskQueue}`, input(redactBmcAddress(`ipmi://${USER}:${CONTROL_PW}@127.0.0.1:${sim.port}`), 'good'));
      expect(redacted.cause).toMatchObject({ type: FAILURE.BmcAddressInvalid, message: expect.stringContaining(`"ipmi://REDACTED@127.0.0.1:${sim.port}" contains "@"`) });
      expect(await secretsIn(redacted.history, [CONTROL_PW])).toEqual([]);

      const raw = await run(`hyg-addr-raw-${ctx.taskQueue}`, input(`ipmi://${USER}:${CONTROL_PW}@127.0.0.1:${sim.port}`, 'good'));
      // The failure itself stays clean; the workflow's own input is what carries it.
      expect(raw.cause.message).not.toContain(CONTROL_PW);
      expect(await secretsIn(raw.history, [CONTROL_PW])).toEqual([expect.stringMatching(/^secret #0/)]);
    });
  });
});
