import type { Logger } from '@afterlife/core';
import { binaryPath, ensureComponent } from '../binaries.ts';
import { ensureNodeTools } from '../node-tools.ts';
import type { StartPlan } from './plan.ts';

/** Component name → directory of its binaries ('node' is the Afterlife node tools). */
export type ComponentDirs = Readonly<Record<string, string>>;

/** Builds (or finds in the cache) every component the plan needs, one at a time. */
export async function prepareComponents(plan: StartPlan, log: Logger | undefined): Promise<ComponentDirs> {
  const result: Record<string, string> = {};
  // One at a time: each Go build already uses every core.
  for (const component of plan.components) {
    result[component] = await ensureComponent(component, {
      onProgress: (line) => log?.info({ component }, line),
    });
  }
  if (plan.realNodes > 0) result.node = (await ensureNodeTools()).dir;
  return result;
}

/** Finds binaries in the prepared components and records each one (the state's `binaries`). */
export class BinaryResolver {
  readonly #dirs: ComponentDirs;
  readonly #resolved: Record<string, string> = {};

  constructor(dirs: ComponentDirs) {
    this.#dirs = dirs;
  }

  /** Every binary (and directory) recorded so far, in the order they were resolved. */
  get resolved(): Readonly<Record<string, string>> {
    return this.#resolved;
  }

  /** The directory of a prepared component ('' when it was not prepared). */
  dir(component: string): string {
    return this.#dirs[component] ?? '';
  }

  bin = async (component: string, name: string): Promise<string> => {
    const dir = this.#dirs[component];
    if (!dir) throw new Error(`component ${component} was not prepared`);
    const path = await binaryPath(dir, name);
    this.#resolved[name] = path;
    return path;
  };

  /** Records a path that is not a binary (a directory tests start more nodes from). */
  record(name: string, path: string): void {
    this.#resolved[name] = path;
  }
}

/** The control plane's binaries, plus the clients tests use (kubectl, etcdctl, helm). */
export interface ControlPlaneBinaries {
  readonly kubeApiServer: string;
  readonly kubeControllerManager: string;
  readonly kubeScheduler: string;
  readonly etcd: string;
  readonly kwok: string;
}

export async function controlPlaneBinaries(bins: BinaryResolver): Promise<ControlPlaneBinaries> {
  const kubeApiServer = await bins.bin('kubernetes', 'kube-apiserver');
  const kubeControllerManager = await bins.bin('kubernetes', 'kube-controller-manager');
  const kubeScheduler = await bins.bin('kubernetes', 'kube-scheduler');
  await bins.bin('kubernetes', 'kubectl');
  const etcd = await bins.bin('etcd', 'etcd');
  await bins.bin('etcd', 'etcdctl');
  const kwok = await bins.bin('kwok', 'kwok');
  await bins.bin('helm', 'helm');
  return { kubeApiServer, kubeControllerManager, kubeScheduler, etcd, kwok };
}
