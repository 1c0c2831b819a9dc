/**
 * A TCP/unix-socket bridge, run as its own process: `node socket-bridge.js FROM=TO... [-- CMD...]`
 * with FROM/TO `unix:/path` or `tcp:host:port`. Knative's processes listen on fixed ports (8080
 * probes, 8008 pprof, 8443 webhook) on every interface, so each runs in its own network namespace
 * with only loopback; this bridge carries the API server and the webhook across through unix
 * sockets in the state directory. With `-- CMD`, it starts the command once every listener is up
 * and ends with it. Standalone on purpose (node built-ins only): it runs inside those namespaces.
 */
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import net from 'node:net';

type Address = { path: string } | { host: string; port: number };

function parseAddress(text: string): Address {
  if (text.startsWith('unix:')) return { path: text.slice('unix:'.length) };
  const at = text.lastIndexOf(':');
  return { host: text.slice('tcp:'.length, at), port: Number(text.slice(at + 1)) };
}

function say(line: string): void {
  process.stderr.write(`${line}\n`);
}

function runCommand(command: readonly string[]): void {
  const [file, ...args] = command;
  if (file === undefined) return;
  const child = spawn(file, args, { stdio: 'inherit' });
  // Knative drains for many seconds after SIGTERM; a dev cluster stops within two.
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      child.kill(signal);
      setTimeout(() => child.kill('SIGKILL'), 2000).unref();
    });
  }
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}

const argv = process.argv.slice(2);
const separator = argv.indexOf('--');
const pairs = separator < 0 ? argv : argv.slice(0, separator);
const command = separator < 0 ? [] : argv.slice(separator + 1);
let pending = pairs.length;
for (const pair of pairs) {
  const [from = '', to = ''] = pair.split('=');
  const listen = parseAddress(from);
  const target = parseAddress(to);
  if ('path' in listen) rmSync(listen.path, { force: true });
  const server = net.createServer((socket) => {
    const upstream = net.connect(target);
    socket.on('error', () => upstream.destroy());
    upstream.on('error', () => socket.destroy());
    socket.pipe(upstream).pipe(socket);
  });
  server.on('error', (error) => {
    say(`bridge ${pair}: ${error.message}`);
    process.exit(1);
  });
  server.listen(listen, () => {
    pending--;
    if (pending === 0) {
      say(`bridge ready: ${pairs.join(' ')}`);
      runCommand(command);
    }
  });
}
if (pairs.length === 0) runCommand(command);
