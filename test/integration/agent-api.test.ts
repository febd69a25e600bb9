/**
 * The agent API on a real fastify server on loopback: forged callbacks (no
 * token, a wrong token, another host's token, an old boot's token, a second
 * lookup) are refused and change nothing: no report forwarded, no command
 * consumed, no user data served.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { AddressInfo } from 'node:net';
import { AGENT_TOKEN_HEADER, type AgentReportSignal, type LookupResponse } from '../../api/agent';
import type { HostRef } from '../../api/host';
import { agentApi, agentApiPlugin, lookupFromBootRegistry } from '../../activities/agent/api';
import { temporalReportForwarder } from '../../activities/agent/forward';
import { temporalTestContext } from '../helpers/env';
import { AgentCommandStore } from '../../activities/agent/commands';
import { AgentTokenStore } from '../../activities/agent/tokens';

const A: HostRef = { namespace: 'lab', name: 'host-a' };
const B: HostRef = { namespace: 'lab', name: 'host-b' };
const boots: Record<string, { host: HostRef; bootId: string }> = {
  '52:54:00:00:00:0a': { host: A, bootId: 'a-1' },
  '52:54:00:00:00:0b': { host: B, bootId: 'b-1' },
};

let app: FastifyInstance;
let base: string;
let tokens: AgentTokenStore;
let commands: AgentCommandStore;
let forwarded: { host: HostRef; signal: AgentReportSignal }[];

const call = async (method: string, path: string, token?: string, body?: unknown) => {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { ...(token !== undefined ? { [AGENT_TOKEN_HEADER]: token } : {}), ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, text, json: text.startsWith('{') ? (JSON.parse(text) as Record<string, unknown>) : undefined };
};
const lookup = (mac: string, bootId?: string) => call('POST', '/v1/agent/lookup', undefined, { macs: [mac], bootId });
const hostPath = (h: HostRef, what: string) => `/v1/agent/hosts/${h.namespace}/${h.name}/${what}`;
const inspectOk = (commandId: string) => ({
  commandId, type: 'inspect', status: 'ok',
  data: { cpu: { arch: 'x86_64', model: 'm', count: 2 }, memoryMiB: 1024, disks: [], nics: [{ name: 'eth0', mac: '52:54:00:00:00:0a' }], system: {} },
});

beforeEach(async () => {
  tokens = new AgentTokenStore();
  commands = new AgentCommandStore();
  forwarded = [];
  app = Fastify({ logger: false });
  await app.register(agentApiPlugin, {
    tokens, commands, pollIntervalSeconds: 1,
    lookup: (mac) => boots[mac],
    onReport: async (host, signal) => { forwarded.push({ host, signal }); },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  tokens.prepareBoot(A, 'a-1');
  tokens.prepareBoot(B, 'b-1');
});
afterEach(() => app.close());

test('lookup: unknown MAC 404, a stale boot 403, the token only once per boot (409)', async () => {
  expect((await lookup('52:54:00:99:99:99')).status).toBe(404);
  expect((await lookup('52:54:00:00:00:0a', 'a-0')).status).toBe(403);
  const first = await lookup('52-54-00-00-00-0A', 'a-1');
  expect(first.status).toBe(200);
  const body = first.json as unknown as LookupResponse;
  expect(body).toMatchObject({ namespace: 'lab', name: 'host-a', bootId: 'a-1', pollIntervalSeconds: 1 });
  expect(Buffer.from(body.token, 'base64url')).toHaveLength(32);
  const second = await lookup('52:54:00:00:00:0a', 'a-1');
  expect(second.status).toBe(409);
  expect(second.text).not.toContain(body.token);
  // The first token still works; the refused lookup did not replace it.
  expect((await call('GET', hostPath(A, 'command'), body.token)).status).toBe(200);
  expect((await call('POST', '/v1/agent/lookup', undefined, { macs: ['not-a-mac'] })).text).toContain('/macs');
});

test('forged calls get 401/403 and change nothing', async () => {
  const tokenA = ((await lookup('52:54:00:00:00:0a')).json as unknown as LookupResponse).token;
  const tokenB = ((await lookup('52:54:00:00:00:0b')).json as unknown as LookupResponse).token;
  commands.set(A, 'a-1', { id: 'c1', type: 'deploy', imageUrl: 'http://x/i', checksum: 'a'.repeat(64), checksumType: 'sha256', hasUserData: true }, Buffer.from('secret user data'));
  const forgeries: [string, string | undefined, number][] = [
    ['no token', undefined, 401],
    ['a wrong token', 'x'.repeat(43), 401],
    ["another host's token", tokenB, 403],
  ];
  for (const [label, token, status] of forgeries) {
    const r1 = await call('POST', hostPath(A, 'reports'), token, inspectOk('c1'));
    const r2 = await call('GET', hostPath(A, 'command'), token);
    const r3 = await call('GET', hostPath(A, 'user-data'), token);
    expect([label, r1.status, r2.status, r3.status]).toEqual([label, status, status, status]);
    expect(r3.text).not.toContain('secret');
  }
  // A new boot of A: the old boot's token is refused with 403.
  tokens.prepareBoot(A, 'a-2');
  commands.set(A, 'a-2', { id: 'c2', type: 'inspect' });
  expect((await call('GET', hostPath(A, 'command'), tokenA)).status).toBe(403);
  expect((await call('POST', hostPath(A, 'reports'), tokenA, inspectOk('c2'))).status).toBe(403);
  // Nothing was forwarded or consumed.
  expect(forwarded).toEqual([]);
  expect(commands.pending(A, 'a-2')).toEqual({ id: 'c2', type: 'inspect' });
});

test('reports: invalid ones are 400 naming the field; a valid one is forwarded once and finishes the command', async () => {
  const token = ((await lookup('52:54:00:00:00:0a')).json as unknown as LookupResponse).token;
  commands.set(A, 'a-1', { id: 'c1', type: 'inspect' });
  const bad = inspectOk('c1') as { data: Record<string, unknown> };
  delete bad.data.memoryMiB;
  const r = await call('POST', hostPath(A, 'reports'), token, bad);
  expect(r.status).toBe(400);
  expect(r.json?.error).toBe('report field /data/memoryMiB: must have required property \'memoryMiB\'');
  const wrongType = await call('POST', hostPath(A, 'reports'), token, { commandId: 'c1', type: 'inspect', status: 'progress', message: 'x', percent: 140 });
  expect(wrongType.json?.error).toMatch(/^report field \/percent/);
  expect((await call('POST', hostPath(A, 'reports'), token, { ...inspectOk('c9') })).status).toBe(409);
  expect(forwarded).toEqual([]);

  expect((await call('POST', hostPath(A, 'reports'), token, inspectOk('c1'))).status).toBe(204);
  expect(forwarded).toHaveLength(1);
  expect(forwarded[0]).toMatchObject({ host: A, signal: { bootId: 'a-1', report: { commandId: 'c1', status: 'ok' } } });
  expect((await call('GET', hostPath(A, 'command'), token)).json).toEqual({ command: { id: 'none', type: 'none' } });
  // A retried final report is acknowledged but not forwarded again.
  expect((await call('POST', hostPath(A, 'reports'), token, inspectOk('c1'))).status).toBe(204);
  expect(forwarded).toHaveLength(1);
});

test('user data is served with the token only while its deploy is pending', async () => {
  const token = ((await lookup('52:54:00:00:00:0a')).json as unknown as LookupResponse).token;
  expect((await call('GET', hostPath(A, 'user-data'), token)).status).toBe(404);
  commands.set(A, 'a-1', { id: 'd1', type: 'deploy', imageUrl: 'http://x/i', checksum: 'a'.repeat(64), checksumType: 'sha256', hasUserData: true }, Buffer.from('#cloud-config\n'));
  const ud = await call('GET', hostPath(A, 'user-data'), token);
  expect([ud.status, ud.text]).toEqual([200, '#cloud-config\n']);
  await call('POST', hostPath(A, 'reports'), token, { commandId: 'd1', type: 'deploy', status: 'failed', message: 'checksum mismatch' });
  expect((await call('GET', hostPath(A, 'user-data'), token)).status).toBe(404);
});

test('a report the workflow could not take (signal failed) is 503 and consumes nothing; the retry goes through', async () => {
  const token = ((await lookup('52:54:00:00:00:0a')).json as unknown as LookupResponse).token;
  commands.set(A, 'a-1', { id: 'c1', type: 'inspect' });
  const env = await temporalTestContext('agent-api');
  try {
    // The real forwarder against the real Temporal server: no host workflow runs for host-a.
    await app.close();
    app = Fastify({ logger: false });
    await app.register(agentApiPlugin, { tokens, commands, lookup: (mac) => boots[mac], onReport: temporalReportForwarder(env.client) });
    await app.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const r = await call('POST', hostPath(A, 'reports'), token, inspectOk('c1'));
    expect(r.status).toBe(503);
    expect(r.json?.error).toContain('command c1');
    expect(commands.pending(A, 'a-1')?.id).toBe('c1');
  } finally {
    await env.close();
  }
  await app.close();
  app = Fastify({ logger: false });
  await app.register(agentApi({ tokens, commands, lookup: (mac) => boots[mac], onReport: async (host, signal) => { forwarded.push({ host, signal }); } }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  // Progress does not finish the command; the final report does.
  expect((await call('POST', hostPath(A, 'reports'), token, { commandId: 'c1', type: 'inspect', status: 'progress', message: 'reading sysfs', percent: 50 })).status).toBe(204);
  expect(commands.pending(A, 'a-1')?.id).toBe('c1');
  expect((await call('POST', hostPath(A, 'reports'), token, inspectOk('c1'))).status).toBe(204);
  expect(forwarded.map((f) => f.signal.report.status)).toEqual(['progress', 'ok']);
  expect(commands.pending(A, 'a-1')).toBeUndefined();
});

test('lookupFromBootRegistry gives tokens only to MACs prepared to boot the agent', () => {
  const entries: Record<string, { host: HostRef; bootId: string; mode: string }> = {
    '52:54:00:00:00:0a': { host: A, bootId: 'a-1', mode: 'agent' },
    '52:54:00:00:00:0b': { host: B, bootId: 'b-1', mode: 'disk' },
  };
  const lookupFn = lookupFromBootRegistry({ get: (mac) => entries[mac] });
  expect(lookupFn('52:54:00:00:00:0a')).toEqual({ host: A, bootId: 'a-1' });
  expect(lookupFn('52:54:00:00:00:0b')).toBeUndefined();
});
