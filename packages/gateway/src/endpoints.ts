import { EventEmitter } from 'node:events';
import { functionKey } from '@afterlife/core';

export interface FunctionRef {
  readonly namespace: string;
  readonly name: string;
}

/** A ready address of a function replica. */
export interface Endpoint {
  readonly ip: string;
  readonly port: number;
  /** When discovery first listed the address (epoch ms; for the cold-start record). */
  readonly listedAt?: number;
  /** Not ready in its EndpointSlice yet, but its queue-proxy answered the activator probe (see warmup.ts). */
  readonly warm?: { readonly seenAt: number; readonly answeredAt: number };
}

export function endpointKey(endpoint: Endpoint): string {
  return endpoint.ip.includes(':') ? `[${endpoint.ip}]:${endpoint.port}` : `${endpoint.ip}:${endpoint.port}`;
}

interface Entry {
  readonly ref: FunctionRef;
  endpoints: readonly Endpoint[];
}

export interface EndpointTableEvents {
  /** A function appeared, disappeared or its ready endpoints changed. */
  change: [ref: FunctionRef, endpoints: readonly Endpoint[] | undefined];
}

/**
 * Which functions exist and where their ready replicas are. The Kubernetes watcher
 * (`KubeEndpointWatcher`) keeps it in sync with EndpointSlices; it is also the programmatic
 * API for embedding the gateway (bench, demo): `setFunction(ref, endpoints)`.
 */
export class EndpointTable extends EventEmitter<EndpointTableEvents> {
  readonly #entries = new Map<string, Entry>();

  /** Declares a function known, with its ready endpoints (possibly none). Duplicates are dropped. */
  setFunction(ref: FunctionRef, endpoints: readonly Endpoint[]): void {
    const key = functionKey(ref);
    const entry = this.#entries.get(key);
    const known = new Map((entry?.endpoints ?? []).map((endpoint) => [endpointKey(endpoint), endpoint]));
    const now = Date.now();
    const unique = new Map<string, Endpoint>();
    for (const endpoint of endpoints) {
      const at = endpointKey(endpoint);
      // First listed: what discovery says, else when this table first had it.
      unique.set(at, { ...endpoint, listedAt: endpoint.listedAt ?? known.get(at)?.listedAt ?? now });
    }
    const next = [...unique.values()].sort((a, b) => endpointKey(a).localeCompare(endpointKey(b)));
    if (entry !== undefined && sameEndpoints(entry.endpoints, next)) return;
    if (entry === undefined)
      this.#entries.set(key, { ref: { namespace: ref.namespace, name: ref.name }, endpoints: next });
    else entry.endpoints = next;
    this.emit('change', ref, next);
  }

  /** The function no longer exists (its events get 404 from now on). */
  deleteFunction(ref: FunctionRef): void {
    if (this.#entries.delete(functionKey(ref))) this.emit('change', ref, undefined);
  }

  has(ref: FunctionRef): boolean {
    return this.#entries.has(functionKey(ref));
  }

  /** Ready endpoints, or undefined when the function is unknown. */
  endpoints(ref: FunctionRef): readonly Endpoint[] | undefined {
    return this.#entries.get(functionKey(ref))?.endpoints;
  }

  functions(): readonly FunctionRef[] {
    return [...this.#entries.values()].map((entry) => entry.ref);
  }
}

function sameEndpoints(a: readonly Endpoint[], b: readonly Endpoint[]): boolean {
  if (a.length !== b.length) return false;
  return a.every((endpoint, index) => {
    const other = b[index];
    return other !== undefined && endpointKey(endpoint) === endpointKey(other);
  });
}
