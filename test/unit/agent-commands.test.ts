import type { AgentCommand } from '../../api/agent';
import { createAgentActivities } from '../../activities/agent/activities';
import { AgentCommandStore } from '../../activities/agent/commands';
import { AgentTokenStore } from '../../activities/agent/tokens';

const A = { namespace: 'ns', name: 'a' };
const deploy: AgentCommand = {
  id: 'd1', type: 'deploy', imageUrl: 'http://img/x.raw', checksum: 'a'.repeat(64), checksumType: 'sha256', hasUserData: true,
};

describe('AgentCommandStore', () => {
  it('keeps a command pending until finished, then remembers its id', () => {
    const c = new AgentCommandStore();
    expect(c.set(A, 'b1', { id: 'i1', type: 'inspect' })).toBe('accepted');
    expect(c.set(A, 'b1', { id: 'i1', type: 'inspect' })).toBe('duplicate');
    expect(c.set(A, 'b1', { id: 'e1', type: 'erase', mode: 'full' })).toBe('busy');
    expect(c.pending(A, 'b1')).toEqual({ id: 'i1', type: 'inspect' });
    expect(c.pending(A, 'b0')).toBeUndefined();
    c.finish(A, 'b1', 'other');
    expect(c.pending(A, 'b1')?.id).toBe('i1');
    c.finish(A, 'b1', 'i1');
    expect(c.pending(A, 'b1')).toBeUndefined();
    expect(c.isFinished(A, 'b1', 'i1')).toBe(true);
    expect(c.set(A, 'b1', { id: 'i1', type: 'inspect' })).toBe('duplicate');
  });

  it('a new boot drops the old boot’s command and user data; the snapshot is JSON-plain without user data', () => {
    const c = new AgentCommandStore();
    c.set(A, 'b1', deploy, Buffer.from('secret-ud'));
    expect(c.pendingUserData(A, 'b1')?.toString()).toBe('secret-ud');
    expect(JSON.stringify(c.snapshot())).not.toContain('secret-ud');
    c.set(A, 'b2', { id: 'i2', type: 'inspect' });
    expect(c.pending(A, 'b1')).toBeUndefined();
    expect(c.pendingUserData(A, 'b2')).toBeUndefined();
  });
});

describe('sendAgentCommand', () => {
  const setup = () => {
    const commands = new AgentCommandStore();
    const reads: string[] = [];
    const lines: string[] = [];
    const acts = createAgentActivities({
      commands, tokens: new AgentTokenStore(),
      userData: async (ns, name) => { reads.push(`${ns}/${name}`); return Buffer.from('#cloud-config\npassword: hunter2\n'); },
      log: { info: (msg, f) => lines.push(`${msg} ${JSON.stringify(f)}`) },
    });
    return { commands, reads, lines, acts };
  };

  it('resolves user data from the Secret inside the activity and never returns or logs it', async () => {
    const { commands, reads, lines, acts } = setup();
    const out = await acts.sendAgentCommand({ host: A, bootId: 'b1', command: deploy, userData: { namespace: 'ns', name: 'ud' } });
    expect(out).toBeUndefined();
    expect(reads).toEqual(['ns/ud']);
    expect(commands.pendingUserData(A, 'b1')?.toString()).toContain('hunter2');
    expect(JSON.stringify([out, lines])).not.toContain('hunter2');
  });

  it('is idempotent by command id, and a different command while one is pending is a retryable failure', async () => {
    const { acts, lines } = setup();
    const input = { host: A, bootId: 'b1', command: { id: 'e1', type: 'erase', mode: 'metadata' } as AgentCommand };
    await acts.sendAgentCommand(input);
    await acts.sendAgentCommand(input);
    expect(lines.map((l) => JSON.parse(l.slice(l.indexOf('{'))).result)).toEqual(['accepted', 'duplicate']);
    await expect(acts.sendAgentCommand({ ...input, command: { id: 'e2', type: 'inspect' } })).rejects.toMatchObject({
      type: 'AgentTimeout', nonRetryable: false, message: expect.stringContaining('has not finished command e1'),
    });
  });

  it('refuses a deploy that has user data but names no Secret (non-retryable)', async () => {
    const { acts } = setup();
    await expect(acts.sendAgentCommand({ host: A, bootId: 'b1', command: deploy })).rejects.toMatchObject({ nonRetryable: true });
  });
});
