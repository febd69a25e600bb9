// The orchestration floor (LAB.md "What one host cycle costs"): a workflow
// shaped like a Metal3 host cycle with no-op activities and no decisions:
// 12 BMC-style calls, 3 agent waits answered by a signal, 8 status writes.
import { condition, defineSignal, proxyActivities, setHandler } from '@temporalio/workflow';

const acts = proxyActivities<{ noop(step: string): Promise<void> }>({ startToCloseTimeout: '1 minute' });
export const floorAgentReport = defineSignal<[string]>('floorAgentReport');
export const floorNext = defineSignal('floorNext');

export async function hostCycleFloor(): Promise<number> {
  const reports: string[] = [];
  let nexts = 0;
  setHandler(floorAgentReport, (r) => void reports.push(r));
  setHandler(floorNext, () => void nexts++);
  const agent = async (step: string) => {
    await acts.noop(`agent:${step}`);
    await condition(() => reports.includes(step));
  };
  await acts.noop('bmc:check');
  await acts.noop('status:inspecting');
  for (const s of ['pxe', 'power']) await acts.noop(`bmc:${s}`);
  await agent('inspect');
  await acts.noop('bmc:off');
  await acts.noop('status:available');
  await condition(() => nexts >= 1);
  await acts.noop('status:provisioning');
  for (const s of ['pxe', 'power']) await acts.noop(`bmc:${s}`);
  await agent('deploy');
  for (const s of ['disk', 'reboot']) await acts.noop(`bmc:${s}`);
  await acts.noop('status:provisioned');
  await condition(() => nexts >= 2);
  await acts.noop('status:deprovisioning');
  for (const s of ['pxe', 'power']) await acts.noop(`bmc:${s}`);
  await agent('erase');
  await acts.noop('bmc:off');
  await acts.noop('status:available');
  await condition(() => nexts >= 3);
  await acts.noop('status:deleting');
  await acts.noop('bmc:off2');
  await acts.noop('status:released');
  return reports.length;
}
