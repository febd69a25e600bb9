import { createHash } from 'node:crypto';
import { AgentTokenStore } from '../../activities/agent/tokens';

const A = { namespace: 'ns', name: 'a' };
const B = { namespace: 'ns', name: 'b' };

const issue = (s: AgentTokenStore, h: typeof A, boot: string) => {
  const r = s.issue(h, boot);
  if (!r.ok) throw new Error(r.reason);
  return r.token;
};

describe('AgentTokenStore', () => {
  it('issues 32 random bytes once per boot and keeps only their SHA-256', () => {
    const s = new AgentTokenStore();
    s.prepareBoot(A, 'boot-1');
    const token = issue(s, A, 'boot-1');
    expect(Buffer.from(token, 'base64url')).toHaveLength(32);
    expect(s.issue(A, 'boot-1')).toMatchObject({ ok: false, status: 409 });
    // The store holds the hash, never the token itself.
    const inside = JSON.stringify([...(s as unknown as { known: Map<string, unknown> }).known.keys()]);
    expect(inside).not.toContain(token);
    expect(inside).toContain(createHash('sha256').update(token).digest('hex'));
  });

  it.each([
    ['no token', undefined, 401, /no agent token/],
    ['an unknown token', 'garbage', 401, /unknown agent token/],
  ])('refuses %s with %i', (_l, token, status, reason) => {
    const s = new AgentTokenStore();
    s.prepareBoot(A, 'boot-1');
    issue(s, A, 'boot-1');
    const v = s.verify(A, token);
    expect(v).toMatchObject({ ok: false, status });
    expect(v.ok ? '' : v.reason).toMatch(reason);
  });

  it("refuses another host's token and an old boot's token with 403", () => {
    const s = new AgentTokenStore();
    s.prepareBoot(A, 'a-1');
    s.prepareBoot(B, 'b-1');
    const ta = issue(s, A, 'a-1');
    const tb = issue(s, B, 'b-1');
    expect(s.verify(A, ta)).toEqual({ ok: true, bootId: 'a-1' });
    expect(s.verify(A, tb)).toMatchObject({ ok: false, status: 403 });
    s.prepareBoot(A, 'a-2');
    expect(s.verify(A, ta)).toMatchObject({ ok: false, status: 403, reason: expect.stringContaining('boot a-1') });
    expect(s.issue(A, 'a-1')).toMatchObject({ ok: false, status: 403 });
    const ta2 = issue(s, A, 'a-2');
    expect(s.verify(A, ta2)).toEqual({ ok: true, bootId: 'a-2' });
  });

  it('a retried prepareBoot of the same boot keeps the issued token valid', () => {
    const s = new AgentTokenStore();
    s.prepareBoot(A, 'a-1');
    const t = issue(s, A, 'a-1');
    s.prepareBoot(A, 'a-1');
    expect(s.verify(A, t)).toEqual({ ok: true, bootId: 'a-1' });
  });
});
