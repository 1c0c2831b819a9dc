import { parentPort, workerData } from 'node:worker_threads';
import { errorMessage } from '@afterlife/core';
import { type CgiRequest, invokeModule } from './cgi.ts';

/** Worker thread of the pod host: runs requests through the module one at a time, synchronously. */
interface WorkerInit {
  readonly module: WebAssembly.Module;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
}

export interface WorkerRequest {
  readonly id: number;
  readonly request: CgiRequest;
}

const init = workerData as WorkerInit;
const port = parentPort;
if (port === null) throw new Error('invoke-worker must run as a worker thread');

port.on('message', (message: WorkerRequest) => {
  try {
    const result = invokeModule(init.module, message.request, { args: init.args, env: init.env });
    port.postMessage({ id: message.id, result });
  } catch (error) {
    port.postMessage({ id: message.id, error: errorMessage(error) });
  }
});
