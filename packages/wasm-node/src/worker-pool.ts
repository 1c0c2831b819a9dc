import { Worker } from 'node:worker_threads';
import { AfterlifeError } from '@afterlife/core';
import type { CgiRequest, InvocationResult } from './cgi.ts';
import { siblingModule } from './paths.ts';

interface Pending {
  readonly request: CgiRequest;
  readonly resolve: (result: InvocationResult) => void;
  readonly reject: (error: Error) => void;
}

interface Slot {
  readonly worker: Worker;
  busy: Pending | undefined;
}

/**
 * Runs module invocations on up to `size` worker threads (one request per worker at a time),
 * sharing one compiled module; requests beyond that wait in FIFO order.
 */
export class WorkerPool {
  readonly #module: WebAssembly.Module;
  readonly #args: readonly string[];
  readonly #env: Readonly<Record<string, string>>;
  readonly #size: number;
  readonly #slots: Slot[] = [];
  readonly #queue: Pending[] = [];
  #nextId = 1;
  #closed = false;

  constructor(
    module: WebAssembly.Module,
    options: { size: number; args: readonly string[]; env: Readonly<Record<string, string>> },
  ) {
    this.#module = module;
    this.#size = Math.max(1, options.size);
    this.#args = options.args;
    this.#env = options.env;
  }

  /** Starts one worker ahead of the first request (so the first request does not pay for it). */
  warm(): void {
    if (this.#slots.length === 0) this.#spawn();
  }

  get queued(): number {
    return this.#queue.length;
  }

  invoke(request: CgiRequest): Promise<InvocationResult> {
    if (this.#closed) return Promise.reject(new AfterlifeError('POOL_CLOSED', 'the pod host is shutting down'));
    return new Promise((resolve, reject) => {
      this.#queue.push({ request, resolve, reject });
      this.#dispatch();
    });
  }

  #spawn(): Slot {
    const worker = new Worker(siblingModule('invoke-worker'), {
      workerData: { module: this.#module, args: this.#args, env: this.#env },
    });
    const slot: Slot = { worker, busy: undefined };
    worker.on('message', (message: { result?: InvocationResult; error?: string }) => {
      const pending = slot.busy;
      slot.busy = undefined;
      if (pending !== undefined) {
        if (message.result !== undefined) pending.resolve(message.result);
        else pending.reject(new AfterlifeError('INVOKE_FAILED', message.error ?? 'invocation failed'));
      }
      this.#dispatch();
    });
    worker.on('error', (error) => {
      const pending = slot.busy;
      slot.busy = undefined;
      this.#slots.splice(this.#slots.indexOf(slot), 1);
      pending?.reject(new AfterlifeError('WORKER_FAILED', `worker thread failed: ${error.message}`, { cause: error }));
      this.#dispatch();
    });
    this.#slots.push(slot);
    return slot;
  }

  #dispatch(): void {
    while (this.#queue.length > 0) {
      let slot = this.#slots.find((candidate) => candidate.busy === undefined);
      if (slot === undefined && this.#slots.length < this.#size) slot = this.#spawn();
      if (slot === undefined) return;
      const pending = this.#queue.shift() as Pending;
      slot.busy = pending;
      slot.worker.postMessage({ id: this.#nextId++, request: pending.request });
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const pending of this.#queue.splice(0)) {
      pending.reject(new AfterlifeError('POOL_CLOSED', 'the pod host is shutting down'));
    }
    await Promise.all(this.#slots.map((slot) => slot.worker.terminate()));
    this.#slots.length = 0;
  }
}
