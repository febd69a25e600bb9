/**
 * The object's status is the durable record: a new run of a host workflow
 * (after an operator's Terminate, a reset, a lost Temporal database) adopts
 * the host from its recorded status and never reboots, re-inspects or
 * re-images it; nothing a step does fails the run. Real Temporal server,
 * in-memory hardware (test/helpers/fake-host-activities.ts).
 */
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { HOST_MESSAGES, type HostStatus } from '../../api/host';
import { temporalTestContext, type TemporalTestContext } from '../helpers/env';
import { SAMPLE_HARDWARE } from '../helpers/fake-host-activities';
import { IMAGE, observation, withHostWorkflow } from '../helpers/host-workflow-harness';

/** Calls that touch the machine: power, reset, boot device, agent sessions. */
const HARDWARE_CALLS = /^(bmcSetPower|bmcReboot|bmcSetNextBoot|startAgentSession)/;

describe('hostLifecycle adopts from the recorded status (real Temporal, activities stubbed)', () => {
  let ctx: TemporalTestContext;
  beforeAll(async () => {
    ctx = await temporalTestContext('adopt');
  });
  afterAll(async () => ctx?.close());

  it('a terminated provisioned host is adopted by the new run: power read, nothing rebooted, nothing written', async () => {
    await withHostWorkflow(ctx, observation({ image: IMAGE, online: true }), async (run) => {
      await run.waitForState('provisioned');
      const deploysBefore = run.world.commands.filter((c) => c.type === 'deploy').length;
      const callsBefore = run.world.calls.length;
      await run.terminateAndRestart();
      await run.waitFor((s) => s.provisioning.state === 'provisioned' && (s.waitingFor ?? '').includes('nothing to do'), 'adopted and resting');
      const after = run.world.calls.slice(callsBefore);
      expect(after).toEqual(['bmcCheckAccess', 'claimBootMac']);
      expect(after.filter((c) => HARDWARE_CALLS.test(c))).toEqual([]);
      expect(run.world.commands.filter((c) => c.type === 'deploy')).toHaveLength(deploysBefore);
      expect(run.world.poweredOn).toBe(true);
    });
  });

  it('the same with nothing but the object to go on (a lost Temporal database): status as written, spec as applied', async () => {
    await withHostWorkflow(ctx, observation({ image: IMAGE, online: true }), async (run) => {
      const provisioned = await run.waitForState('provisioned');
      const callsBefore = run.world.calls.length;
      // The bridge knows nothing but the object: status as written, spec as applied.
      await run.terminateAndRestart(JSON.parse(JSON.stringify(provisioned)) as HostStatus);
      await run.waitFor((s) => (s.waitingFor ?? '').includes('nothing to do'), 'resting');
      expect(run.world.calls.slice(callsBefore).filter((c) => HARDWARE_CALLS.test(c))).toEqual([]);
      expect((await run.status()).provisioning.image).toEqual(IMAGE);
    });
  });

  it('an available host keeps its hardware details and is not inspected again', async () => {
    await withHostWorkflow(ctx, observation(), async (run) => {
      await run.waitForState('available');
      await run.terminateAndRestart();
      const s = await run.waitFor((st) => (st.waitingFor ?? '').includes('nothing to do'), 'resting');
      expect(s.provisioning.state).toBe('available');
      expect(s.hardware).toEqual(SAMPLE_HARDWARE);
      expect(run.world.commands.filter((c) => c.type === 'inspect')).toHaveLength(1);
    });
  });

  it('a run terminated while the agent writes the image waits for that same agent: the image is written once', async () => {
    await withHostWorkflow(ctx, observation(), async (run) => {
      await run.waitForState('available');
      run.world.knobs.agentSilent = true;
      await run.observe(observation({ image: IMAGE }));
      await run.waitFor((s) => (s.waitingFor ?? '').startsWith('agent deploy'), 'deploy under way');
      await run.terminateAndRestart();
      await run.waitFor((s) => (s.waitingFor ?? '').startsWith('agent deploy'), 'the new run waits for the running deploy');
      // The agent of that boot now finishes and reports (the plane's session store keeps its report).
      const session = run.world.sessions.at(-1)!;
      session.state = 'finished';
      session.report = { commandId: session.commandId, type: 'deploy', status: 'ok', data: { rootDevice: 'vda', bytesWritten: 1024, checksumType: 'sha256', checksum: IMAGE.checksum, userDataWritten: false } };
      await run.handle.signal(HOST_MESSAGES.agentReport, { bootId: session.bootId, report: session.report, receivedAt: new Date().toISOString() });
      await run.waitForState('provisioned');
      expect(run.world.commands.filter((c) => c.type === 'deploy')).toHaveLength(1);
      expect(run.world.calls.filter((c) => c === 'startAgentSession:deploy')).toHaveLength(1);
    });
  });

  it('a run that starts after the agent already reported takes the report from the session store', async () => {
    await withHostWorkflow(ctx, observation(), async (run) => {
      await run.waitForState('available');
      run.world.knobs.agentSilent = true;
      await run.observe(observation({ image: IMAGE }));
      await run.waitFor((s) => (s.waitingFor ?? '').startsWith('agent deploy'), 'deploy under way');
      await run.client.workflow.getHandle(run.handle.workflowId).terminate('plane gone');
      // The report arrives while no run exists: the plane keeps it with the session.
      const session = run.world.sessions.at(-1)!;
      session.state = 'finished';
      session.report = { commandId: session.commandId, type: 'deploy', status: 'ok', data: { rootDevice: 'vda', bytesWritten: 1024, checksumType: 'sha256', checksum: IMAGE.checksum, userDataWritten: false } };
      await run.terminateAndRestart();
      await run.waitForState('provisioned');
      expect(run.world.calls.filter((c) => c === 'startAgentSession:deploy')).toHaveLength(1);
    });
  });

  it('a failed status write (Kubernetes API down) does not fail the run: it is retried and the host goes on', async () => {
    await withHostWorkflow(
      ctx,
      observation(),
      async (run) => {
        const s = await run.waitForState('available');
        expect(s.hardware).toEqual(SAMPLE_HARDWARE);
        const desc = await run.client.workflow.getHandle(run.handle.workflowId).describe();
        expect(desc.status.name).toBe('RUNNING');
        expect(run.world.knobs.statusWriteFailures).toBe(0);
      },
      (w) => (w.knobs.statusWriteFailures = 3),
    );
  });

  it('a BMC that answers with another machine\'s serial stops adoption with an error that says so', async () => {
    await withHostWorkflow(ctx, observation({ image: IMAGE, online: true }), async (run) => {
      await run.waitForState('provisioned');
      const recorded = { ...run.world.lastStatus()!, hardware: { ...SAMPLE_HARDWARE, system: { ...SAMPLE_HARDWARE.system, serialNumber: 'SN-1' } } };
      run.world.bmcSerial = 'SN-OTHER';
      const callsBefore = run.world.calls.length;
      await run.terminateAndRestart(recorded);
      const s = await run.waitFor((st) => st.errorType === 'provisioned registration error', 'provisioned registration error');
      expect(s.errorMessage).toContain('reports system serial SN-OTHER, but this host was inspected as SN-1');
      expect(s.provisioning.state).toBe('provisioned');
      expect(run.world.calls.slice(callsBefore).filter((c) => HARDWARE_CALLS.test(c))).toEqual([]);
      expect(run.world.events.at(-1)).toMatchObject({ type: 'Warning', reason: 'ProvisionedRegistrationError' });
    });
  });

  it('a host whose credentials Secret is gone is let go after a bounded number of attempts when deleted, with a Warning', async () => {
    await withHostWorkflow(ctx, observation(), async (run) => {
      await run.waitForState('available');
      run.world.knobs.credentialsMissing = true;
      await run.observe(observation({}, { deleting: true }));
      // Three attempts with a backoff capped at 30 s while deleting; retryNow skips the waits.
      const deadline = Date.now() + 30_000;
      let done = false;
      void run.handle.result().then(() => (done = true), () => (done = true));
      while (!done && Date.now() < deadline) {
        await run.handle.signal(HOST_MESSAGES.retryNow, { by: 'test' }).catch(() => undefined);
        await new Promise((r) => setTimeout(r, 200));
      }
      const final = await run.handle.result();
      expect(final.provisioning.state).toBe('deleting');
      expect(run.world.released).toBe(1);
      const warning = run.world.events.find((e) => e.reason === 'DeleteIncomplete');
      expect(warning?.type).toBe('Warning');
      expect(warning?.message).toContain('let go after 3 failed attempts while deleting');
      expect(warning?.message).toContain('the server was NOT powered off');
    });
  });

  it('refuses an erase approval when nothing waits for one', async () => {
    await withHostWorkflow(ctx, observation(), async (run) => {
      await run.waitForState('available');
      const err = await run.handle.executeUpdate(HOST_MESSAGES.approveErase, { args: [{ approver: 'alice' }] }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
      expect(String((err as Error & { cause?: Error }).cause?.message)).toContain('nothing waits for an erase approval on this host (state available)');
    });
  });

  it('emits Kubernetes events for transitions and errors, as BMO does', async () => {
    await withHostWorkflow(ctx, observation(), async (run) => {
      await run.waitForState('available');
      // The query shows a transition as it is committed; its status write (with the event) lands just after.
      for (let i = 0; i < 100 && run.world.events.length < 2; i++) await new Promise((r) => setTimeout(r, 50));
      expect(run.world.events.map((e) => e.reason)).toEqual(['InspectionStarted', 'Available']);
      expect(run.world.events[0]).toMatchObject({ type: 'Normal', message: 'registering -> inspecting: registered; hardware not yet inspected' });
    });
  });
});
