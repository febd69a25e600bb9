/**
 * The provisioning services of a plane (workers/provisioning.ts: session
 * store, PXE HTTP server with the agent API, report relay) in a process of
 * their own, built from dist/ (`npm run build`), so a test can kill -9 them
 * and start them again on the same state dir and port. Reports go to real
 * Temporal. The session activities are called over stdin/stdout, one JSON
 * line each way: {"id":1,"op":"startAgentSession","input":{...}} ->
 * {"id":1,"result":...} or {"id":1,"error":"..."}.
 *
 *   node agent-plane-child.js '{"stateDir":..,"filesDir":..,"httpPort":0,"temporalAddress":..,"namespace":..}'
 *
 * Plain JavaScript on purpose: it runs the compiled product exactly as
 * `npm start` does, with no test compiler in between.
 */
const { join } = require('node:path');
const readline = require('node:readline');
const { Client, Connection } = require('@temporalio/client');
const pino = require('pino');

const root = join(__dirname, '..', '..');
const { startProvisioning } = require(join(root, 'dist', 'workers', 'provisioning.js'));
const { createSessionActivities } = require(join(root, 'dist', 'activities', 'agent', 'session-activities.js'));

(async () => {
  const cfg = JSON.parse(process.argv[2]);
  const connection = await Connection.connect({ address: cfg.temporalAddress });
  const client = new Client({ connection, namespace: cfg.namespace });
  const log = pino({ level: 'info' }, pino.destination(2));
  const noUserData = async () => {
    throw new Error('no user data in this test');
  };
  const plane = await startProvisioning({
    stateDir: cfg.stateDir, filesDir: cfg.filesDir, bindHost: '127.0.0.1', httpPort: cfg.httpPort, tftpPort: 0,
    client, log, pollIntervalSeconds: 0.2, userData: noUserData,
  });
  const activities = createSessionActivities({ sessions: plane.sessions, images: plane.activityDeps.images, userData: noUserData, log });
  process.stdout.write(`${JSON.stringify({ ready: true, url: plane.httpUrl })}\n`);
  for await (const line of readline.createInterface({ input: process.stdin })) {
    const { id, op, input } = JSON.parse(line);
    try {
      const result = op === 'pendingDeliveries' ? plane.sessions.pendingDeliveries() : await activities[op](input);
      process.stdout.write(`${JSON.stringify({ id, result: result ?? null })}\n`);
    } catch (err) {
      process.stdout.write(`${JSON.stringify({ id, error: err.message })}\n`);
    }
  }
})().catch((err) => {
  process.stderr.write(`agent plane child failed: ${err.stack}\n`);
  process.exit(1);
});
