import type { ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { errorMessage, hasCode, type Logger } from '@afterlife/core';
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import type { WasmNodeConfig } from './config.ts';
import type { ModuleStore, StoredModule } from './module-store.ts';
import type { PodNetwork, PodNetworkFactory } from './network.ts';
import { NotWasmImageError } from './oci.ts';
import { childNodeFlags, PACKAGE_ROOT, siblingModule } from './paths.ts';

/** What a PodRunner needs from the node agent (API writes, metrics). */
export interface PodRunnerContext {
  readonly config: Readonly<WasmNodeConfig>;
  readonly logger: Logger;
  readonly store: ModuleStore;
  readonly networks: PodNetworkFactory;
  patchStatus(pod: V1Pod, status: object): Promise<void>;
  deletePod(pod: V1Pod): Promise<void>;
  event(pod: V1Pod, type: 'Normal' | 'Warning', reason: string, message: string): void;
  onReady(pod: V1Pod, boundToReadySeconds: number): void;
  onRestart(pod: V1Pod, container: string): void;
  onContainerCount(delta: number): void;
}

type ContainerState =
  | { waiting: { reason: string; message?: string } }
  | { running: { startedAt: string } }
  | { terminated: Terminated };

interface Terminated {
  exitCode: number;
  signal?: number;
  reason: string;
  message?: string;
  startedAt: string;
  finishedAt: string;
  containerID: string;
}

interface Container {
  readonly spec: V1Container;
  kind: 'wasm' | 'sidecar' | 'unknown';
  module: StoredModule | undefined;
  port: number;
  state: ContainerState;
  lastTerminated: Terminated | undefined;
  ready: boolean;
  started: boolean;
  restartCount: number;
  backoffMs: number;
  child: ChildProcess | undefined;
  startedAtMs: number;
  startedAt: string;
  containerId: string;
  timer: NodeJS.Timeout | undefined;
  probeFailures: number;
}

const now = (): string => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

interface Condition {
  status: 'True' | 'False';
  lastTransitionTime: string;
}

/**
 * One pod on this node, from bound to deleted: pull, sandbox (netns), one pod host process per
 * Wasm container, readiness probing, restarts with back-off, termination with a grace period.
 * Its status is always computed whole from this object and written with a merge patch.
 */
export class PodRunner {
  #pod: V1Pod;
  readonly #ctx: PodRunnerContext;
  readonly #log: Logger;
  readonly #containers: Container[];
  readonly #observedAt = performance.now();
  readonly #startTime = now();
  readonly #conditions = new Map<string, Condition>();
  #network: PodNetwork | undefined;
  #phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed' = 'Pending';
  #readyRecorded = false;
  #stopping: Promise<void> | undefined;
  #stopped = false;
  #syncing: Promise<void> | undefined;
  #dirty = false;

  constructor(pod: V1Pod, ctx: PodRunnerContext) {
    this.#pod = pod;
    this.#ctx = ctx;
    this.#log = ctx.logger.child({ pod: `${pod.metadata?.namespace}/${pod.metadata?.name}` });
    this.#containers = (pod.spec?.containers ?? []).map((spec) => ({
      spec,
      kind: 'unknown',
      module: undefined,
      port: containerPort(spec, ctx.config.defaultPort),
      state: { waiting: { reason: 'ContainerCreating' } },
      lastTerminated: undefined,
      ready: false,
      started: false,
      restartCount: 0,
      backoffMs: ctx.config.restartBackoffMs,
      child: undefined,
      startedAtMs: 0,
      startedAt: '',
      containerId: '',
      timer: undefined,
      probeFailures: 0,
    }));
  }

  get uid(): string {
    return this.#pod.metadata?.uid ?? '';
  }

  get key(): string {
    return `${this.#pod.metadata?.namespace}/${this.#pod.metadata?.name}`;
  }

  /** PIDs of the running pod host processes (one per running Wasm container). */
  get pids(): number[] {
    return this.#containers.flatMap((container) => (container.child?.pid === undefined ? [] : [container.child.pid]));
  }

  get podIp(): string | undefined {
    return this.#network?.ip;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  update(pod: V1Pod): void {
    this.#pod = pod;
  }

  /** Runs the pod; resolves once every container has been started (or has failed to). */
  async start(): Promise<void> {
    this.#setCondition('PodScheduled', true);
    this.#setCondition('Initialized', true);
    this.#sync();
    for (const container of this.#containers) {
      if (this.#stopping) return;
      await this.#classify(container);
    }
    const wasm = this.#containers.filter((container) => container.kind === 'wasm');
    if (wasm.length === 0) return;
    try {
      this.#network = await this.#ctx.networks(`wasm`);
    } catch (error) {
      this.#ctx.event(
        this.#pod,
        'Warning',
        'FailedCreatePodSandBox',
        `creating the pod network failed: ${errorMessage(error)}`,
      );
      for (const container of wasm)
        container.state = { waiting: { reason: 'ContainerCreating', message: errorMessage(error) } };
      this.#sync();
      return;
    }
    if (this.#stopping) {
      await this.#network.destroy();
      return;
    }
    this.#setCondition('PodReadyToStartContainers', true);
    for (const container of this.#containers) {
      if (container.kind === 'sidecar') {
        container.state = { running: { startedAt: now() } };
        container.started = true;
        container.ready = true;
      }
    }
    for (const container of wasm) this.#launch(container);
    this.#sync();
  }

  async #classify(container: Container): Promise<void> {
    const image = container.spec.image ?? '';
    try {
      container.module = await this.#ctx.store.pull(image, container.spec.imagePullPolicy);
      container.kind = 'wasm';
      this.#ctx.event(
        this.#pod,
        'Normal',
        'Pulled',
        `Pulled Wasm module ${container.module.moduleDigest} from ${image} (variant ${container.module.variant}) in ${Math.round(container.module.pullMs)}ms`,
      );
      return;
    } catch (error) {
      const notWasm = error instanceof NotWasmImageError || hasCode(error, 'REGISTRY_NOT_ALLOWED');
      const hasWasmSibling = await this.#anyOtherWasm(container);
      if (notWasm && hasWasmSibling) {
        container.kind = 'sidecar';
        this.#ctx.event(
          this.#pod,
          'Normal',
          'SidecarNotRun',
          `container ${container.spec.name} (${image}) is not Wasm; crun's compat-smart would run it natively, which this local Wasm node does not do: it is reported running but not run`,
        );
        return;
      }
      const reason = notWasm ? 'NotWasmImage' : hasCode(error, 'MODULE_INVALID') ? 'InvalidModule' : 'Failed';
      const waiting = notWasm || reason === 'InvalidModule' ? 'CreateContainerError' : 'ErrImagePull';
      const message = `container ${container.spec.name}: ${errorMessage(error)}`;
      this.#log.warn({ container: container.spec.name, reason }, message);
      this.#ctx.event(this.#pod, 'Warning', reason, message);
      container.state = { waiting: { reason: waiting, message: errorMessage(error) } };
      this.#sync();
    }
  }

  /** True when another container of this pod has a Wasm image (so a non-Wasm one is a sidecar). */
  async #anyOtherWasm(self: Container): Promise<boolean> {
    for (const other of this.#containers) {
      if (other === self) continue;
      if (other.kind === 'wasm') return true;
      if (other.kind !== 'unknown') continue;
      try {
        await this.#ctx.store.pull(other.spec.image ?? '', other.spec.imagePullPolicy);
        return true;
      } catch {
        // not Wasm either
      }
    }
    return false;
  }

  #launch(container: Container): void {
    const network = this.#network;
    const module = container.module;
    if (network === undefined || module === undefined || this.#stopping) return;
    const meta = this.#pod.metadata ?? {};
    const logDir = join(
      this.#ctx.config.stateDir,
      'logs',
      `${meta.namespace}_${meta.name}_${meta.uid}`,
      container.spec.name,
    );
    mkdirSync(logDir, { recursive: true });
    const logFile = join(logDir, `${container.restartCount}.log`);
    const logFd = openSync(logFile, 'a');
    const argv = [
      ...(container.spec.command ?? module.entrypoint.slice(0, 1)),
      ...(container.spec.args ?? module.entrypoint.slice(1)),
    ];
    const env = this.#containerEnv(container, module);
    const child = network.spawn(
      process.execPath,
      [...childNodeFlags(), '--disable-warning=ExperimentalWarning', siblingModule('pod-host-main')],
      {
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          AFTERLIFE_WASM_POD_MODULE: module.path,
          AFTERLIFE_WASM_POD_PORT: String(container.port),
          AFTERLIFE_WASM_POD_CONCURRENCY: String(this.#ctx.config.concurrency),
          AFTERLIFE_WASM_POD_ARGS: JSON.stringify(argv),
          AFTERLIFE_WASM_POD_ENV: JSON.stringify(env),
        },
        stdio: ['ignore', logFd, logFd],
        cwd: PACKAGE_ROOT,
      },
    );
    closeSync(logFd);
    container.child = child;
    container.startedAtMs = performance.now();
    container.startedAt = now();
    container.containerId = `wasm://${this.uid}/${container.spec.name}/${container.restartCount}`;
    container.state = { running: { startedAt: container.startedAt } };
    container.started = true;
    container.ready = false;
    container.probeFailures = 0;
    this.#ctx.onContainerCount(1);
    this.#ctx.event(
      this.#pod,
      'Normal',
      'Started',
      `Started Wasm container ${container.spec.name} (pod host pid ${child.pid}, ${network.ip}:${container.port})`,
    );
    child.once('exit', (code, signal) => {
      this.#ctx.onContainerCount(-1);
      this.#onExit(container, child, code, signal, logFile);
    });
    this.#scheduleProbe(container, this.#ctx.config.startupProbeIntervalMs);
    this.#sync();
  }

  #containerEnv(container: Container, module: StoredModule): Record<string, string> {
    const env: Record<string, string> = {};
    for (const entry of module.env) {
      const equals = entry.indexOf('=');
      if (equals > 0) env[entry.slice(0, equals)] = entry.slice(equals + 1);
    }
    const meta = this.#pod.metadata ?? {};
    const fields: Record<string, string | undefined> = {
      'metadata.name': meta.name,
      'metadata.namespace': meta.namespace,
      'metadata.uid': meta.uid,
      'spec.nodeName': this.#pod.spec?.nodeName,
      'spec.serviceAccountName': this.#pod.spec?.serviceAccountName,
      'status.podIP': this.#network?.ip,
      'status.hostIP': this.#ctx.config.nodeAddress,
    };
    for (const variable of container.spec.env ?? []) {
      if (variable.value !== undefined) env[variable.name] = variable.value;
      else if (variable.valueFrom?.fieldRef) {
        const value = fields[variable.valueFrom.fieldRef.fieldPath];
        if (value !== undefined) env[variable.name] = value;
      } else {
        this.#log.warn({ variable: variable.name }, 'env valueFrom other than fieldRef is not resolved by wasm-node');
      }
    }
    env.PORT ??= String(container.port);
    return env;
  }

  #scheduleProbe(container: Container, delayMs: number): void {
    clearTimeout(container.timer);
    container.timer = setTimeout(() => void this.#probe(container), delayMs);
  }

  async #probe(container: Container): Promise<void> {
    const child = container.child;
    const network = this.#network;
    if (child === undefined || network === undefined || this.#stopping || child.exitCode !== null) return;
    const probe = container.spec.readinessProbe;
    const path = probe?.httpGet?.path ?? this.#ctx.config.readinessPath;
    const portSpec = probe?.httpGet?.port;
    const port = typeof portSpec === 'number' ? portSpec : container.port;
    let ok = false;
    try {
      const response = await fetch(`http://${network.ip}:${port}${path}`, {
        signal: AbortSignal.timeout((probe?.timeoutSeconds ?? 1) * 1000),
      });
      await response.arrayBuffer();
      ok = response.status >= 200 && response.status < 400;
    } catch {
      ok = false;
    }
    if (container.child !== child || this.#stopping) return;
    const period = (probe?.periodSeconds ?? 10) * 1000;
    if (ok) {
      container.probeFailures = 0;
      if (!container.ready) {
        container.ready = true;
        this.#log.debug({ container: container.spec.name }, 'container ready');
        this.#sync();
      }
      this.#scheduleProbe(container, period);
      return;
    }
    if (!container.ready) {
      this.#scheduleProbe(container, this.#ctx.config.startupProbeIntervalMs);
      return;
    }
    container.probeFailures += 1;
    if (container.probeFailures >= (probe?.failureThreshold ?? 3)) {
      container.ready = false;
      this.#ctx.event(
        this.#pod,
        'Warning',
        'Unhealthy',
        `Readiness probe failed: GET ${path} on ${network.ip}:${port}`,
      );
      this.#sync();
    }
    this.#scheduleProbe(container, period);
  }

  #onExit(
    container: Container,
    child: ChildProcess,
    code: number | null,
    signal: NodeJS.Signals | null,
    logFile: string,
  ): void {
    if (container.child !== child) return;
    container.child = undefined;
    clearTimeout(container.timer);
    const signalNumber = signal === null ? undefined : constants.signals[signal];
    const exitCode = code ?? 128 + (signalNumber ?? 9);
    const ranMs = performance.now() - container.startedAtMs;
    const terminated: Terminated = {
      exitCode,
      ...(signalNumber === undefined ? {} : { signal: signalNumber }),
      reason: exitCode === 0 ? 'Completed' : 'Error',
      startedAt: container.startedAt,
      finishedAt: now(),
      containerID: container.containerId,
    };
    const message = lastLines(logFile);
    if (message !== '' && exitCode !== 0) terminated.message = message;
    container.state = { terminated };
    container.ready = false;
    if (this.#stopping) {
      this.#sync();
      return;
    }
    this.#log.warn({ container: container.spec.name, exitCode, signal, ranMs: Math.round(ranMs) }, 'container exited');
    const policy = this.#pod.spec?.restartPolicy ?? 'Always';
    const restart = policy === 'Always' || (policy === 'OnFailure' && exitCode !== 0);
    if (!restart) {
      const wasm = this.#containers.filter((c) => c.kind === 'wasm');
      if (wasm.every((c) => 'terminated' in c.state)) {
        this.#phase = wasm.every((c) => 'terminated' in c.state && c.state.terminated.exitCode === 0)
          ? 'Succeeded'
          : 'Failed';
        void this.#network?.destroy();
      }
      this.#sync();
      return;
    }
    if (ranMs > 2 * this.#ctx.config.restartBackoffMaxMs) container.backoffMs = this.#ctx.config.restartBackoffMs;
    const delay = container.backoffMs;
    container.backoffMs = Math.min(Math.max(delay * 2, 1), this.#ctx.config.restartBackoffMaxMs);
    container.lastTerminated = terminated;
    container.state = {
      waiting: {
        reason: 'CrashLoopBackOff',
        message: `back-off ${formatSeconds(delay)} restarting failed container=${container.spec.name} pod=${this.#pod.metadata?.name}`,
      },
    };
    this.#ctx.event(
      this.#pod,
      'Warning',
      'BackOff',
      `Wasm container ${container.spec.name} exited with code ${exitCode}; restarting in ${formatSeconds(delay)}`,
    );
    this.#sync();
    container.timer = setTimeout(() => {
      if (this.#stopping) return;
      container.restartCount += 1;
      this.#ctx.onRestart(this.#pod, container.spec.name);
      this.#launch(container);
    }, delay);
  }

  /** Stops every container within the grace period, removes the sandbox, then (if asked) deletes the pod. */
  stop(gracePeriodMs: number, options: { deletePod: boolean }): Promise<void> {
    this.#stopping ??= (async () => {
      const running = this.#containers.filter((container) => container.child !== undefined);
      for (const container of this.#containers) clearTimeout(container.timer);
      for (const container of running) {
        this.#ctx.event(this.#pod, 'Normal', 'Killing', `Stopping container ${container.spec.name}`);
      }
      await Promise.all(running.map((container) => stopChild(container.child as ChildProcess, gracePeriodMs)));
      for (const container of this.#containers) {
        container.ready = false;
        if (container.kind === 'sidecar' || 'waiting' in container.state) {
          container.state = {
            terminated: {
              exitCode: 0,
              reason: 'Completed',
              startedAt: container.startedAt || now(),
              finishedAt: now(),
              containerID: container.containerId,
            },
          };
        }
      }
      await this.#network?.destroy();
      this.#stopped = true;
      if (options.deletePod) {
        await this.#flush();
        await this.#ctx.deletePod(this.#pod);
      }
    })();
    return this.#stopping;
  }

  #setCondition(type: string, value: boolean): void {
    const status = value ? 'True' : 'False';
    const current = this.#conditions.get(type);
    if (current?.status === status) return;
    this.#conditions.set(type, { status, lastTransitionTime: now() });
  }

  #status(): object {
    const wasm = this.#containers.filter((container) => container.kind === 'wasm');
    const allReady = wasm.length > 0 && this.#containers.every((container) => container.ready);
    if (this.#phase === 'Pending' || this.#phase === 'Running') {
      this.#phase = wasm.some(
        (container) => container.child !== undefined || container.restartCount > 0 || 'terminated' in container.state,
      )
        ? 'Running'
        : 'Pending';
    }
    this.#setCondition('PodReadyToStartContainers', this.#network !== undefined);
    this.#setCondition('ContainersReady', allReady);
    this.#setCondition('Ready', allReady);
    if (allReady && !this.#readyRecorded) {
      this.#readyRecorded = true;
      this.#ctx.onReady(this.#pod, (performance.now() - this.#observedAt) / 1000);
    }
    const scheduled = this.#pod.status?.conditions?.find((condition) => condition.type === 'PodScheduled');
    const conditions: object[] = [];
    for (const type of ['PodReadyToStartContainers', 'Initialized', 'Ready', 'ContainersReady', 'PodScheduled']) {
      const condition = this.#conditions.get(type);
      if (type === 'PodScheduled' && scheduled !== undefined) {
        conditions.push({
          type,
          status: 'True',
          lastTransitionTime: toTime(scheduled.lastTransitionTime) ?? this.#startTime,
        });
      } else if (condition !== undefined) {
        conditions.push({
          type,
          status: condition.status,
          lastProbeTime: null,
          lastTransitionTime: condition.lastTransitionTime,
          ...(condition.status === 'False' && (type === 'Ready' || type === 'ContainersReady')
            ? {
                reason: 'ContainersNotReady',
                message: `containers with unready status: [${this.#containers
                  .filter((c) => !c.ready)
                  .map((c) => c.spec.name)
                  .join(' ')}]`,
              }
            : {}),
        });
      }
    }
    const ip = this.#network?.ip;
    return {
      phase: this.#phase,
      hostIP: this.#ctx.config.nodeAddress,
      hostIPs: [{ ip: this.#ctx.config.nodeAddress }],
      ...(ip === undefined ? {} : { podIP: ip, podIPs: [{ ip }] }),
      startTime: this.#startTime,
      conditions,
      containerStatuses: this.#containers.map((container) => ({
        name: container.spec.name,
        image: container.spec.image ?? '',
        imageID: container.module
          ? `${container.module.reference.split('@')[0]?.replace(/:[^:/]+$/, '')}@${container.module.manifestDigest}`
          : '',
        ...(container.containerId === '' ? {} : { containerID: container.containerId }),
        ready: container.ready,
        started: container.started && 'running' in container.state,
        restartCount: container.restartCount,
        state: container.state,
        lastState: container.lastTerminated === undefined ? {} : { terminated: container.lastTerminated },
      })),
    };
  }

  /** Writes the status soon; concurrent calls coalesce into one patch of the latest state. */
  #sync(): void {
    if (this.#syncing !== undefined) {
      this.#dirty = true;
      return;
    }
    this.#syncing = (async () => {
      do {
        this.#dirty = false;
        try {
          await this.#ctx.patchStatus(this.#pod, this.#status());
        } catch (error) {
          if ((error as { code?: number }).code === 404) return;
          this.#log.warn({ err: errorMessage(error) }, 'pod status update failed');
        }
      } while (this.#dirty);
    })().finally(() => {
      this.#syncing = undefined;
    });
  }

  async #flush(): Promise<void> {
    this.#sync();
    while (this.#syncing !== undefined) await this.#syncing;
  }
}

function toTime(value: unknown): string | undefined {
  if (value instanceof Date) return value.toISOString().replace(/\.\d+Z$/, 'Z');
  return typeof value === 'string' ? value : undefined;
}

function formatSeconds(ms: number): string {
  return ms >= 1000 ? `${Math.round(ms / 100) / 10}s` : `${ms}ms`;
}

function containerPort(spec: V1Container, fallback: number): number {
  const fromEnv = spec.env?.find((variable) => variable.name === 'PORT')?.value;
  if (fromEnv !== undefined && /^\d+$/.test(fromEnv)) return Number(fromEnv);
  return spec.ports?.[0]?.containerPort ?? fallback;
}

function lastLines(file: string): string {
  try {
    const text = readFileSync(file, 'utf8').trim();
    return text.split('\n').slice(-5).join('\n').slice(-1000);
  } catch {
    return '';
  }
}

/** SIGTERM to the process group, SIGKILL after the grace period. */
function stopChild(child: ChildProcess, gracePeriodMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return Promise.resolve();
  const pid = child.pid;
  return new Promise((resolve) => {
    const kill = setTimeout(() => {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }, gracePeriodMs);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    try {
      process.kill(-pid, 'SIGTERM');
    } catch {
      clearTimeout(kill);
      resolve();
    }
  });
}
