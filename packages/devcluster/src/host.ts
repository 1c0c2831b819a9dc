import { execFile } from 'node:child_process';
import { type Dirent, existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { AfterlifeClusterError } from './cluster-error.ts';
import { cacheDir } from './paths.ts';
import { isAlive } from './process.ts';

const run = promisify(execFile);

/**
 * Machine-wide kernel settings a real node changes: kubelet's container manager sets the first
 * six at start-up (setupKernelTunables), and routing between node bridges needs ip_forward.
 * They are global, not per namespace, so the first node on the machine records the originals
 * and the last one to stop puts them back.
 */
export const NODE_SYSCTLS = [
  'vm/overcommit_memory',
  'vm/panic_on_oom',
  'kernel/panic',
  'kernel/panic_on_oops',
  'kernel/keys/root_maxkeys',
  'kernel/keys/root_maxbytes',
  'net/ipv4/ip_forward',
] as const;

interface Ledger {
  /** sysctl path (below /proc/sys) → value before the first node started. */
  readonly originals: Record<string, string>;
  /** Node directory → pid of the process that owns it. */
  readonly holders: Record<string, number>;
}

function hostDir(): string {
  return join(cacheDir(), 'host');
}

export function readSysctl(key: string): string {
  return readFileSync(join('/proc/sys', key), 'utf8').trim();
}

export function writeSysctl(key: string, value: string): void {
  writeFileSync(join('/proc/sys', key), `${value}\n`);
}

/** A lock directory shared by every process on the machine (mkdir is atomic); stale owners are broken. */
async function withHostLock<T>(work: () => Promise<T>): Promise<T> {
  const dir = hostDir();
  await mkdir(dir, { recursive: true });
  const lock = join(dir, 'lock');
  for (let attempt = 0; ; attempt++) {
    try {
      await mkdir(lock);
      await writeFile(join(lock, 'pid'), String(process.pid));
      break;
    } catch {
      const owner = Number(await readFile(join(lock, 'pid'), 'utf8').catch(() => ''));
      if (Number.isFinite(owner) && owner > 0 && !isAlive(owner)) await rm(lock, { recursive: true, force: true });
      if (attempt > 600) throw new AfterlifeClusterError('HOST_LOCKED', `${lock} stayed locked for 60 s`);
      await sleep(100);
    }
  }
  try {
    return await work();
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}

async function readLedger(): Promise<Ledger> {
  try {
    return JSON.parse(await readFile(join(hostDir(), 'ledger.json'), 'utf8')) as Ledger;
  } catch {
    return { originals: {}, holders: {} };
  }
}

async function writeLedger(ledger: Ledger): Promise<void> {
  const file = join(hostDir(), 'ledger.json');
  if (Object.keys(ledger.holders).length === 0) await rm(file, { force: true });
  else await writeFile(file, `${JSON.stringify(ledger, null, 2)}\n`);
}

function liveHolders(holders: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(holders).filter(([dir, pid]) => isAlive(pid) && existsSync(dir)));
}

/**
 * Registers a node before it changes the machine; runs `work` under the machine-wide lock so
 * two clusters allocating subnets or recording originals never interleave.
 */
export async function acquireHost<T>(holder: string, work: () => Promise<T>): Promise<T> {
  return withHostLock(async () => {
    const ledger = await readLedger();
    const holders = liveHolders(ledger.holders);
    // With no live holder the machine is as found, unless a dead owner never restored it: then
    // its recorded originals are still the true ones.
    const originals =
      Object.keys(holders).length > 0 || Object.keys(ledger.originals).length > 0
        ? ledger.originals
        : Object.fromEntries(NODE_SYSCTLS.map((key) => [key, readSysctl(key)]));
    await writeLedger({ originals, holders: { ...holders, [holder]: process.pid } });
    return work();
  });
}

/** Unregisters a node; the last one restores every recorded sysctl. */
export async function releaseHost(holder: string): Promise<void> {
  await withHostLock(async () => {
    const ledger = await readLedger();
    const { [holder]: _gone, ...rest } = ledger.holders;
    const holders = liveHolders(rest);
    if (Object.keys(holders).length === 0) {
      for (const [key, value] of Object.entries(ledger.originals)) {
        try {
          if (readSysctl(key) !== value) writeSysctl(key, value);
        } catch {
          // A key this kernel lacks was never changed either.
        }
      }
    }
    await writeLedger({ originals: ledger.originals, holders });
  });
}

/** Every cgroup v1/v2 hierarchy mounted under /sys/fs/cgroup. */
function cgroupHierarchies(): string[] {
  const root = '/sys/fs/cgroup';
  if (existsSync(join(root, 'cgroup.controllers'))) return [root];
  return readdirSync(root)
    .map((name) => join(root, name))
    .filter((dir) => existsSync(join(dir, 'cgroup.procs')));
}

/** Subdirectories of `dir` and `dir` itself, deepest first; a directory removed meanwhile is skipped. */
function walk(dir: string): string[] {
  let entries: Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (error) {
    if (isNotFound(error)) return [];
    throw error;
  }
  const out: string[] = [];
  for (const entry of entries) {
    if (entry.isDirectory()) out.push(...walk(join(dir, entry.name)));
  }
  out.push(dir);
  return out;
}

function isNotFound(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

/**
 * Creates a cgroup (and its parents) in every hierarchy, as kubelet's cgroupfs driver wants its
 * `cgroupRoot` to exist; v1 cpuset directories get their parent's cpus and mems, or no task could join.
 */
export function createCgroup(relative: string): void {
  for (const hierarchy of cgroupHierarchies()) {
    let dir = hierarchy;
    for (const part of relative.split('/').filter(Boolean)) {
      const parent = dir;
      dir = join(dir, part);
      if (existsSync(dir)) continue;
      mkdirSync(dir);
      for (const file of ['cpuset.cpus', 'cpuset.mems']) {
        if (existsSync(join(dir, file))) writeFileSync(join(dir, file), readFileSync(join(parent, file)));
      }
    }
  }
}

/** Pids in a cgroup subtree, in every hierarchy (`hierarchies` for tests). */
export function cgroupPids(relative: string, hierarchies = cgroupHierarchies()): number[] {
  const pids = new Set<number>();
  for (const hierarchy of hierarchies) {
    for (const dir of walk(join(hierarchy, relative))) {
      let procs: string;
      try {
        procs = readFileSync(join(dir, 'cgroup.procs'), 'utf8');
      } catch (error) {
        // runc and kubelet remove container cgroups while we walk: a vanished one has no pids.
        if (isNotFound(error)) continue;
        throw error;
      }
      for (const line of procs.split('\n')) {
        const pid = Number(line);
        if (pid > 0) pids.add(pid);
      }
    }
  }
  return [...pids];
}

/** SIGKILLs everything in a cgroup subtree and removes its directories (deepest first). */
export async function destroyCgroupTree(relative: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pids = cgroupPids(relative);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    let left = 0;
    for (const hierarchy of cgroupHierarchies()) {
      for (const dir of walk(join(hierarchy, relative))) {
        try {
          rmdirSync(dir);
        } catch (error) {
          if (!isNotFound(error)) left++;
        }
      }
    }
    if (left === 0) return;
    if (Date.now() > deadline) {
      throw new AfterlifeClusterError(
        'TEARDOWN_FAILED',
        `cgroup ${relative} could not be removed (${left} directories busy; pids ${cgroupPids(relative).join(', ')})`,
      );
    }
    await sleep(100);
  }
}

/** Paths of mounts at or below `dir` in this mount namespace, deepest first. */
export function mountsBelow(dir: string): string[] {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((line) => (line.split(' ')[1] ?? '').replace(/\\040/g, ' '))
    .filter((path) => path === dir || path.startsWith(prefix))
    .sort((a, b) => b.length - a.length);
}

/** Lazily unmounts everything below `dir` (a node whose mount namespace outlived it). */
export async function unmountBelow(dir: string): Promise<void> {
  for (const path of mountsBelow(dir)) await run('umount', ['-l', path]).catch(() => undefined);
}

/** Who programs Service routing on this machine (kube-proxy's chains, the Service-range routes). */
interface ServiceRoutingClaim {
  /** The cluster's state directory. */
  readonly holder: string;
  /** The starter while it starts, then kube-proxy: the claim lives as long as this pid. */
  readonly pid: number;
}

const SERVICE_ROUTING_FILE = 'service-routing.json';

async function readServiceRouting(): Promise<ServiceRoutingClaim | undefined> {
  try {
    const claim = JSON.parse(await readFile(join(hostDir(), SERVICE_ROUTING_FILE), 'utf8')) as ServiceRoutingClaim;
    return existsSync(claim.holder) && isAlive(claim.pid) ? claim : undefined;
  } catch {
    return undefined;
  }
}

/**
 * One cluster at a time may run cluster services: kube-proxy's iptables chains and the routes
 * for the Service range are machine-wide, so a second cluster's would replace (and its teardown
 * remove) the first one's. Returns the live holder's directory when another cluster has it.
 */
export async function claimServiceRouting(holder: string, pid = process.pid): Promise<string | undefined> {
  return withHostLock(async () => {
    const current = await readServiceRouting();
    if (current && current.holder !== holder) return current.holder;
    await writeFile(join(hostDir(), SERVICE_ROUTING_FILE), JSON.stringify({ holder, pid }));
    return undefined;
  });
}

/** True when `holder` has the claim (teardown undoes kube-proxy's changes only then). */
export async function holdsServiceRouting(holder: string): Promise<boolean> {
  try {
    const claim = JSON.parse(await readFile(join(hostDir(), SERVICE_ROUTING_FILE), 'utf8')) as ServiceRoutingClaim;
    return claim.holder === holder;
  } catch {
    return false;
  }
}

export async function releaseServiceRouting(holder: string): Promise<void> {
  await withHostLock(async () => {
    if (await holdsServiceRouting(holder)) await rm(join(hostDir(), SERVICE_ROUTING_FILE), { force: true });
  });
}
