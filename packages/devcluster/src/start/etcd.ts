import { probeOk } from '@afterlife/core';
import type { ManagedProcess } from '../process.ts';
import { type WaitOptions, waitFor } from '../wait.ts';
import { type Launch, takePort } from './launcher.ts';

export interface EtcdPorts {
  readonly client: number;
  readonly peer: number;
}

export interface Etcd {
  readonly process: ManagedProcess;
  /** Client URL (`http://127.0.0.1:PORT`) for kube-apiserver. */
  readonly url: string;
  readonly ports: Readonly<Record<string, number>>;
}

export async function etcdPorts(): Promise<EtcdPorts> {
  const client = await takePort();
  const peer = await takePort();
  return { client, peer };
}

/** A single-member etcd on loopback, data in `dataDir`. */
export async function startEtcd(
  launch: Launch,
  input: { binary: string; dataDir: string; ports: EtcdPorts },
): Promise<Etcd> {
  const { client, peer } = input.ports;
  const process = await launch('etcd', input.binary, [
    '--name=default',
    `--data-dir=${input.dataDir}`,
    `--listen-client-urls=http://127.0.0.1:${client}`,
    `--advertise-client-urls=http://127.0.0.1:${client}`,
    `--listen-peer-urls=http://127.0.0.1:${peer}`,
    `--initial-advertise-peer-urls=http://127.0.0.1:${peer}`,
    `--initial-cluster=default=http://127.0.0.1:${peer}`,
    // A throwaway test store: durability is not worth the fsync latency.
    '--unsafe-no-fsync',
    '--log-level=warn',
  ]);
  return { process, url: `http://127.0.0.1:${client}`, ports: { etcd: client, 'etcd-peer': peer } };
}

export async function waitEtcdReady(etcd: Etcd, wait: WaitOptions): Promise<void> {
  await waitFor('etcd', () => probeOk(`${etcd.url}/health`), wait);
}
