import { type ChildProcess, execFile, type SpawnOptions, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { promisify } from 'node:util';
import { AfterlifeClusterError } from './cluster-error.ts';
import { isAlive, killGroup } from './process.ts';

const run = promisify(execFile);

/**
 * The pod network: addresses exist only on veth links this project creates. The root-namespace
 * end of every link carries POD_GATEWAY_IP; each namespace gets one /32 from POD_CIDR.
 */
export const POD_CIDR = '10.213.0.0/16';
export const POD_GATEWAY_IP = '10.213.0.1';
const NETNS_PREFIX = 'afterlife-';

export class NetnsError extends AfterlifeClusterError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('NETNS_FAILED', message, options);
  }
}

async function ip(args: readonly string[]): Promise<string> {
  try {
    const { stdout } = await run('ip', args);
    return stdout;
  } catch (error) {
    const detail = (error as { stderr?: string }).stderr?.trim() ?? String(error);
    throw new NetnsError(`ip ${args.join(' ')} failed: ${detail} (network namespaces need root and iproute2)`, {
      cause: error,
    });
  }
}

/**
 * Makes every address in `cidr` that has no more specific route unreachable, so traffic to a
 * namespace that is gone (or to a fake kwok pod IP) fails here instead of leaving the machine
 * through the default route.
 */
export async function fenceCidr(cidr: string): Promise<void> {
  const existing = await ip(['route', 'show', 'type', 'unreachable', cidr]).catch(() => '');
  if (existing.includes(cidr.split('/')[0] ?? cidr)) return;
  await ip(['route', 'replace', 'unreachable', cidr]);
}

/** A test host: its own network namespace, reachable from the root namespace at `ip`. */
export interface NetnsHost {
  readonly name: string;
  readonly ip: string;
  /** The root namespace's address as seen from inside (route target). */
  readonly gatewayIp: string;
  /** Starts a process inside the namespace, in its own process group. */
  spawn(command: string, args: readonly string[], options?: SpawnOptions): ChildProcess;
  /** Kills its processes and removes the namespace and its veth pair. Idempotent. */
  destroy(): Promise<void>;
}

function randomPodIp(): string {
  // 10.213.1.0 – 10.213.254.254; .0.x is left for the gateway.
  const bytes = randomBytes(2);
  const third = 1 + ((bytes[0] ?? 0) % 254);
  const fourth = 1 + ((bytes[1] ?? 0) % 254);
  return `10.213.${third}.${fourth}`;
}

/** Creates a network namespace with a veth pair and a pod address routed from the root namespace. */
export async function createNetnsHost(options: { label?: string } = {}): Promise<NetnsHost> {
  await fenceCidr(POD_CIDR);
  const id = randomBytes(4).toString('hex');
  const name = `${NETNS_PREFIX}${process.pid}-${options.label ? `${options.label}-` : ''}${id}`;
  const hostLink = `alh${id}`;
  const podLink = `alp${id}`;
  await ip(['netns', 'add', name]);
  const children = new Set<ChildProcess>();
  let destroyed = false;
  const destroy = async (): Promise<void> => {
    if (destroyed) return;
    destroyed = true;
    for (const child of children) if (child.pid !== undefined) killGroup(child.pid, 'SIGKILL');
    await killNetnsProcesses(name);
    await ip(['netns', 'del', name]).catch(() => undefined);
    // Deleting the namespace deletes the pod end, and with it the host end; be sure anyway.
    await ip(['link', 'del', hostLink]).catch(() => undefined);
  };
  try {
    await ip(['link', 'add', hostLink, 'type', 'veth', 'peer', 'name', podLink, 'netns', name]);
    await ip(['addr', 'add', `${POD_GATEWAY_IP}/32`, 'dev', hostLink]);
    await ip(['link', 'set', hostLink, 'up']);
    await ip(['-n', name, 'link', 'set', podLink, 'name', 'eth0']);
    await ip(['-n', name, 'link', 'set', 'lo', 'up']);
    await ip(['-n', name, 'link', 'set', 'eth0', 'up']);
    await ip(['-n', name, 'route', 'add', `${POD_GATEWAY_IP}/32`, 'dev', 'eth0']);
    await ip(['-n', name, 'route', 'add', 'default', 'via', POD_GATEWAY_IP, 'dev', 'eth0']);
    let podIp = '';
    for (let attempt = 0; attempt < 20 && podIp === ''; attempt++) {
      const candidate = randomPodIp();
      try {
        await ip(['route', 'add', `${candidate}/32`, 'dev', hostLink, 'src', POD_GATEWAY_IP]);
        podIp = candidate;
      } catch {
        // Another namespace owns that address; draw again.
      }
    }
    if (podIp === '') throw new NetnsError(`no free pod address in ${POD_CIDR} after 20 tries`);
    await ip(['-n', name, 'addr', 'add', `${podIp}/32`, 'dev', 'eth0']);
    return {
      name,
      ip: podIp,
      gatewayIp: POD_GATEWAY_IP,
      spawn(command, args, spawnOptions = {}) {
        const child = spawn('ip', ['netns', 'exec', name, command, ...args], { ...spawnOptions, detached: true });
        children.add(child);
        child.once('exit', () => children.delete(child));
        return child;
      },
      destroy,
    };
  } catch (error) {
    await destroy();
    throw error;
  }
}

async function killNetnsProcesses(name: string): Promise<void> {
  const pids = (await ip(['netns', 'pids', name]).catch(() => ''))
    .split('\n')
    .map((line) => Number(line.trim()))
    .filter((pid) => Number.isInteger(pid) && pid > 0);
  for (const pid of pids) killGroup(pid, 'SIGKILL');
}

/** Removes namespaces (and their processes) left by processes that died without cleaning up. */
export async function reapOrphanNetns(): Promise<string[]> {
  if (!existsSync('/run/netns')) return [];
  const reaped: string[] = [];
  for (const name of readdirSync('/run/netns')) {
    if (!name.startsWith(NETNS_PREFIX)) continue;
    const owner = Number(name.slice(NETNS_PREFIX.length).split('-')[0]);
    if (Number.isInteger(owner) && owner > 0 && isAlive(owner)) continue;
    await killNetnsProcesses(name);
    await ip(['netns', 'del', name]).catch(() => undefined);
    reaped.push(name);
  }
  return reaped;
}

/**
 * `ip netns add` turns /run/netns into a bind mount (and creates it) and leaves it so. Once no
 * named namespace is left, undo that, so a finished run leaves the host's mounts as they were.
 */
export async function releaseNetnsDir(dir = '/run/netns'): Promise<void> {
  if (!existsSync(dir) || readdirSync(dir).length > 0) return;
  const mounted = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .some((line) => line.split(' ')[1] === dir);
  if (mounted) await run('umount', [dir]).catch(() => undefined);
  try {
    rmdirSync(dir);
  } catch {
    // Still mounted or in use: leave it.
  }
}
