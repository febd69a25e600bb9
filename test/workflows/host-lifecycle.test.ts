import { WorkflowUpdateFailedError } from '@temporalio/client';
import { HOST_MESSAGES, type HostStatus } from '../../api/host';
import { temporalTestContext, type TemporalTestContext } from '../helpers/env';
import { SAMPLE_HARDWARE } from '../helpers/fake-host-activities';
import { IMAGE, observation, withHostWorkflow } from '../helpers/host-workflow-harness';

describe('hostLifecycle on the real Temporal server (activities stubbed)', () => {
  let ctx: TemporalTestContext;
  beforeAll(async () => {
    ctx = await temporalTestContext('host');
  });
  afterAll(async () => ctx?.close());

  it('takes a host through the whole Metal3 cycle and releases it on delete', async () => {
    await withHostWorkflow(ctx, observation(), async (run) => {
      const available = await run.waitForState('available');
      expect(available.hardware).toEqual(SAMPLE_HARDWARE);
      expect(available.poweredOn).toBe(false);
      // Inspection booted the agent over PXE, once.
      expect(run.world.calls).toEqual(expect.arrayContaining(['bmcCheckAccess', 'claimBootMac', 'startAgentSession:inspect', 'bmcSetNextBoot:pxe', 'bmcSetPower:on']));
      expect(run.world.calls.filter((c) => c === 'startAgentSession:inspect')).toHaveLength(1);

      await run.observe(observation({ image: IMAGE, online: true, consumerRef: { name: 'machine-1', kind: 'Metal3Machine' } }));
      const provisioned = await run.waitForState('provisioned');
      expect(provisioned.provisioning.image?.url).toBe(IMAGE.url);
      expect(provisioned.poweredOn).toBe(true);
      expect(run.world.nextBoot).toEqual({ target: 'disk', persistent: true });

      await run.observe(observation({ online: true }));
      const back = await run.waitFor((s) => s.provisioning.state === 'available' && (s.erase?.length ?? 0) > 0, 'available after deprovisioning');
      expect(back.erase?.[0]).toMatchObject({ disk: 'vda', serialNumber: 'DISK-A1', mode: 'metadata', result: 'ok', verified: true });
      expect(run.world.commands.map((c) => c.type)).toEqual(['inspect', 'deploy', 'erase']);

      await run.observe(observation({ online: true }, { deleting: true }));
      const final = await run.handle.result();
      expect(final.provisioning.state).toBe('deleting');
      expect(run.world.poweredOn).toBe(false);
      expect(run.world.released).toBe(1);
      // Every transition was written to the object's status, in order.
      const states = run.world.statuses.map((s) => s.provisioning.state).filter((s, i, a) => s !== a[i - 1]);
      expect(states).toEqual(['registering', 'inspecting', 'available', 'provisioning', 'provisioned', 'deprovisioning', 'available', 'powering off before delete', 'deleting']);
    });
  });

  it('enters registration error while the Secret is missing and recovers on retryNow', async () => {
    await withHostWorkflow(
      ctx,
      observation(),
      async (run) => {
        const failed = await run.waitFor((s) => s.errorType === 'registration error', 'registration error');
        expect(failed.provisioning.state).toBe('registering');
        expect(failed.errorCount).toBe(1);
        expect(failed.operationalStatus).toBe('error');
        expect(failed.errorMessage).toContain('bmc-secret');
        run.world.knobs.credentialsMissing = false;
        await run.handle.signal(HOST_MESSAGES.retryNow, { by: 'test' });
        const ok = await run.waitForState('available');
        expect(ok.errorType).toBeUndefined();
        expect(ok.errorCount).toBe(0);
      },
      (w) => (w.knobs.credentialsMissing = true),
    );
  });

  it('enters inspection error when the agent fails and recovers on a spec change', async () => {
    await withHostWorkflow(
      ctx,
      observation(),
      async (run) => {
        const failed = await run.waitFor((s) => s.errorType === 'inspection error', 'inspection error');
        expect(failed.errorMessage).toContain('lshw crashed');
        // Any spec change retries at once, without waiting out the backoff.
        await run.observe(observation({ online: false }));
        await run.waitForState('available');
      },
      (w) => (w.knobs.agentFails.inspect = { message: 'lshw crashed' }),
    );
  });

  it('enters provisioning error when the written image does not read back with the checksum', async () => {
    await withHostWorkflow(ctx, observation(), async (run) => {
      await run.waitForState('available');
      run.world.knobs.deployedChecksum = 'b'.repeat(64);
      await run.observe(observation({ image: IMAGE }));
      const failed = await run.waitFor((s) => s.errorType === 'provisioning error', 'provisioning error');
      expect(failed.errorMessage).toContain('reads back as sha256');
      run.world.knobs.deployedChecksum = undefined;
      await run.handle.signal(HOST_MESSAGES.retryNow, { by: 'test' });
      await run.waitForState('provisioned');
    });
  });

  it('refuses an md5 image checksum with a message that says what to use', async () => {
    await withHostWorkflow(ctx, observation(), async (run) => {
      await run.waitForState('available');
      await run.observe(observation({ image: { url: IMAGE.url, checksum: 'c'.repeat(32), checksumType: 'md5' } }));
      const failed = await run.waitFor((s) => s.errorType === 'provisioning error', 'provisioning error');
      expect(failed.errorMessage).toContain('use sha256 or sha512');
      expect(run.world.commands.map((c) => c.type)).not.toContain('deploy');
    });
  });

  it('enters power management error when a power action never takes effect, then recovers', async () => {
    await withHostWorkflow(ctx, observation(), async (run) => {
      await run.waitForState('available');
      run.world.knobs.powerFailures = 1;
      await run.observe(observation({ online: true }));
      const failed = await run.waitFor((s) => s.errorType === 'power management error', 'power management error');
      expect(failed.provisioning.state).toBe('available');
      await run.handle.signal(HOST_MESSAGES.retryNow, { by: 'test' });
      const on = await run.waitFor((s) => s.poweredOn && s.errorType === undefined, 'powered on without error');
      expect(on.provisioning.state).toBe('available');
    });
  });

  it('enters deprovisioning error when erase fails without a disk fault, and retries', async () => {
    await withHostWorkflow(ctx, observation({ image: IMAGE }), async (run) => {
      await run.waitForState('provisioned');
      run.world.knobs.agentFails.erase = { message: 'agent lost its network' };
      await run.observe(observation({}));
      const failed = await run.waitFor((s) => s.errorType === 'deprovisioning error', 'deprovisioning error');
      expect(failed.provisioning.state).toBe('deprovisioning');
      await run.handle.signal(HOST_MESSAGES.retryNow, { by: 'test' });
      await run.waitForState('available');
    });
  });

  it('puts a host whose disk fails erase into maintenance, never back in the pool', async () => {
    await withHostWorkflow(ctx, observation({ image: IMAGE }), async (run) => {
      await run.waitForState('provisioned');
      run.world.knobs.agentFails.erase = { message: 'I/O error at sector 2048', failedDisk: 'vda' };
      await run.observe(observation({ automatedCleaningMode: 'full' }));
      const m = await run.waitForState('maintenance');
      expect(m.errorMessage).toContain('disk vda failed during erase');
      expect(m.erase?.at(-1)).toMatchObject({ disk: 'vda', result: 'failed', mode: 'full' });
      expect(run.world.poweredOn).toBe(false);
      // Asking for an image again does not take it out of maintenance.
      await run.observe(observation({ image: IMAGE }));
      await new Promise((r) => setTimeout(r, 500));
      expect((await run.status()).provisioning.state).toBe('maintenance');
      // Deletion is still honoured.
      await run.observe(observation({}, { deleting: true }));
      expect((await run.handle.result()).provisioning.state).toBe('deleting');
    });
  });

  it('skips inspection for externally provisioned hosts and honours online there', async () => {
    await withHostWorkflow(ctx, observation({ externallyProvisioned: true, online: true }), async (run) => {
      const s = await run.waitFor((st) => st.provisioning.state === 'externally provisioned' && st.poweredOn, 'externally provisioned and on');
      expect(s.hardware).toBeUndefined();
      expect(run.world.commands).toHaveLength(0);
      await run.observe(observation({ externallyProvisioned: true, online: false }));
      await run.waitFor((st) => !st.poweredOn, 'powered off');
    });
  });

  it('does nothing while paused, and lets a detached host go without touching it', async () => {
    await withHostWorkflow(ctx, observation({}, { paused: true }), async (run) => {
      const held = await run.waitFor((s) => (s.waitingFor ?? '').includes('paused'), 'paused');
      expect(held.provisioning.state).toBe('registering');
      expect(run.world.calls).toEqual([]);
      await run.observe(observation({ online: true }));
      await run.waitForState('available');
      const callsBefore = run.world.calls.length;
      await run.observe(observation({ online: true }, { detached: true }));
      await run.waitFor((s) => s.operationalStatus === 'detached', 'detached');
      await run.observe(observation({ online: true }, { detached: true, deleting: true }));
      await run.handle.result();
      // Detaching drops the host's boot entries and tokens; deleting it then releases it: no BMC call.
      expect(run.world.calls.slice(callsBefore)).toEqual(['forgetHostBoot', 'forgetHostBoot', 'releaseHost']);
      expect(run.world.events.map((e) => e.reason)).toEqual(expect.arrayContaining(['Detached', 'Deleted']));
    });
  });

  it('waits for an approval before erasing precious data, and records the approver', async () => {
    await withHostWorkflow(ctx, observation({ image: IMAGE }, { preciousData: true }), async (run) => {
      await run.waitForState('provisioned');
      await run.observe(observation({}, { preciousData: true }));
      const waiting = await run.waitFor((s) => s.operationalStatus === 'delayed', 'waiting for approval');
      expect(waiting.waitingFor).toContain('approveErase');
      expect(run.world.commands.map((c) => c.type)).not.toContain('erase');
      await expect(run.handle.executeUpdate(HOST_MESSAGES.approveErase, { args: [{ approver: ' ' }] })).rejects.toBeInstanceOf(WorkflowUpdateFailedError);
      const approval = await run.handle.executeUpdate<{ approver: string }, [{ approver: string; reason: string }]>(HOST_MESSAGES.approveErase, { args: [{ approver: 'alice@dc1', reason: 'RMA' }] });
      expect(approval.approver).toBe('alice@dc1');
      const done = await run.waitForState('available');
      expect(done.lastApproval).toMatchObject({ action: 'erase', approver: 'alice@dc1' });
      expect(run.world.commands.map((c) => c.type)).toContain('erase');
    });
  });

  it('ignores an observation older than the one it holds', async () => {
    const older = observation({ online: true });
    const newer = observation({ online: false });
    await withHostWorkflow(ctx, newer, async (run) => {
      await run.waitForState('available');
      const powerOnsBefore = run.world.calls.filter((c) => c === 'bmcSetPower:on').length;
      await run.observe(older);
      // A newer observation after it proves the older one was processed (signals are ordered).
      await run.observe(observation({ online: false }));
      await new Promise((r) => setTimeout(r, 300));
      expect((await run.status()).poweredOn).toBe(false);
      expect(run.world.calls.filter((c) => c === 'bmcSetPower:on')).toHaveLength(powerOnsBefore);
    });
  });

  it('abandons a deploy when the host is deleted mid-way, erases it, then releases it', async () => {
    await withHostWorkflow(ctx, observation(), async (run) => {
      await run.waitForState('available');
      run.world.knobs.agentSilent = true;
      await run.observe(observation({ image: IMAGE }));
      await run.waitFor((s) => (s.waitingFor ?? '').startsWith('agent deploy'), 'deploy under way');
      run.world.knobs.agentSilent = false;
      await run.observe(observation({ image: IMAGE }, { deleting: true }));
      const final = await run.handle.result();
      expect(final.provisioning.state).toBe('deleting');
      expect(final.errorType).toBeUndefined();
      expect(run.world.commands.map((c) => c.type)).toEqual(['inspect', 'deploy', 'erase']);
      expect(run.world.poweredOn).toBe(false);
      expect(run.world.released).toBe(1);
    });
  });

  it('continues as new while resting once its history is long, carrying status and spec', async () => {
    await withHostWorkflow(
      ctx,
      observation(),
      async (run) => {
        const before = await run.waitForState('available');
        // The run signal-with-start began (it may already have continued as new by now).
        const firstRun = (run.handle as typeof run.handle & { signaledRunId: string }).signaledRunId;
        // Each observation is a signal plus a workflow task: a few push the history past the limit.
        for (let i = 0; i < 10; i++) await run.observe(observation({ online: false }));
        const deadline = Date.now() + 15_000;
        let runId = firstRun;
        while (runId === firstRun && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 100));
          runId = (await run.client.workflow.getHandle(run.handle.workflowId).describe()).runId;
        }
        if (runId === firstRun) {
          const d = await run.client.workflow.getHandle(run.handle.workflowId).describe();
          throw new Error(`no continue-as-new: historyLength ${d.historyLength}, status ${JSON.stringify(await run.status())}`);
        }
        expect(runId).not.toBe(firstRun);
        const after = await run.client.workflow.getHandle(run.handle.workflowId).query<HostStatus>(HOST_MESSAGES.status);
        expect(after.provisioning.state).toBe('available');
        expect(after.hardware).toEqual(before.hardware);
        // The new run still acts on signals.
        await run.client.workflow.getHandle(run.handle.workflowId).signal(HOST_MESSAGES.observed, observation({ image: IMAGE }));
        await run.waitFor((s) => s.provisioning.state === 'provisioned', 'provisioned after continue-as-new');
      },
      undefined,
      { historyLimit: 25 },
    );
  });
});
