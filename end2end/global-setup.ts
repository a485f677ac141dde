// Starts the real `flowtrail serve` on a free port with a fresh data directory, waits until it
// answers, creates an API key and a viewer, and hands URL, credentials and key to the tests via
// env. The server's own retention sweeper is left for an hour: tests sweep with the CLI.
import { spawn, execFileSync, ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, openSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(__dirname, '..');
export const binary = join(root, 'target', 'debug', 'flowtrail');

function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.unref();
    server.on('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => ok(port));
    });
  });
}

async function waitUntilReady(url: string, child: ChildProcess, deadlineMs: number) {
  const start = Date.now();
  while (Date.now() - start < deadlineMs) {
    if (child.exitCode !== null) throw new Error(`flowtrail exited with ${child.exitCode}`);
    try {
      const response = await fetch(`${url}/readyz`);
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`flowtrail did not become ready at ${url}`);
}

export default async function globalSetup() {
  const dataDir = mkdtempSync(join(tmpdir(), 'flowtrail-e2e-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const email = 'e2e-admin@flowtrail.test';
  const password = 'e2e-password-123';
  const log = openSync(join(dataDir, 'server.log'), 'a');
  const server = spawn(
    binary,
    [
      'serve',
      '--addr', `127.0.0.1:${port}`,
      '--data-dir', dataDir,
      '--site-root', join(root, 'target', 'site'),
      '--retention-interval-seconds', '3600',
    ],
    {
      // No OTLP/gRPC listener: the fixed port 4317 may be taken on a CI machine.
      env: { ...process.env, FLOWTRAIL_ADMIN_EMAIL: email, FLOWTRAIL_ADMIN_PASSWORD: password, RUST_LOG: 'info', FLOWTRAIL_OTLP_GRPC_ADDR: '0' },
      stdio: ['ignore', log, log],
    },
  );
  await waitUntilReady(url, server, 30_000);
  const key = execFileSync(binary, ['admin', 'create-api-key', '--data-dir', dataDir, '--team', 'default', '--name', 'e2e'])
    .toString()
    .trim();
  // A viewer of the same team: reads flows, may not pin nor open the admin pages.
  const viewerEmail = 'e2e-viewer@flowtrail.test';
  const viewerPassword = 'e2e-viewer-password';
  execFileSync(
    binary,
    ['admin', 'create-user', '--data-dir', dataDir, '--email', viewerEmail, '--password-stdin', '--team', 'default', '--role', 'viewer'],
    { input: `${viewerPassword}\n` },
  );
  process.env.FLOWTRAIL_E2E_VIEWER_EMAIL = viewerEmail;
  process.env.FLOWTRAIL_E2E_VIEWER_PASSWORD = viewerPassword;
  process.env.FLOWTRAIL_E2E_URL = url;
  process.env.FLOWTRAIL_E2E_EMAIL = email;
  process.env.FLOWTRAIL_E2E_PASSWORD = password;
  process.env.FLOWTRAIL_E2E_KEY = key;
  process.env.FLOWTRAIL_E2E_DATA = dataDir;
  return async () => {
    server.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    if (!process.env.FLOWTRAIL_E2E_KEEP) rmSync(dataDir, { recursive: true, force: true });
  };
}
