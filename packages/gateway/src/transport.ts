import { Agent, request } from 'node:http';
import { errorMessage } from '@afterlife/core';
import type { Endpoint } from './endpoints.ts';
import { TransportError } from './errors.ts';
import { type EventMessage, encodeHeaderValue } from './events.ts';

/** What the function answered. */
export interface Reply {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[]>>;
  readonly body: Buffer;
}

/** Sends one binary-mode event to one endpoint. Rejects with `TransportError`. */
export interface Transport {
  send(endpoint: Endpoint, message: EventMessage, signal: AbortSignal): Promise<Reply>;
  close(): void;
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'content-length',
]);

/** Errors raised while connecting: nothing was written, so another endpoint may be tried. */
const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);
/**
 * A pooled keep-alive socket that the function closed as idle (it is scaling down, or its idle
 * timeout fired) just as we reused it: the reset comes before any reply, and the function
 * closed the connection because it had no request on it, so the event was not taken.
 * Node documents retrying exactly this case (`request.reusedSocket`).
 */
const STALE_KEEPALIVE_ERRORS = new Set(['ECONNRESET', 'EPIPE']);

/** HTTP/1.1 delivery with keep-alive connections, `POST /` like Knative's queue-proxy expects. */
export class HttpTransport implements Transport {
  readonly #agent = new Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY, scheduling: 'lifo' });

  send(endpoint: Endpoint, message: EventMessage, signal: AbortSignal): Promise<Reply> {
    return new Promise<Reply>((resolve, reject) => {
      let connected = false;
      let answered = false;
      const headers: Record<string, string | number> = { 'content-length': message.body.length };
      for (const [name, value] of Object.entries(message.headers)) {
        headers[name] = name.startsWith('ce-') ? encodeHeaderValue(value) : value;
      }
      const req = request({
        host: endpoint.ip,
        port: endpoint.port,
        method: 'POST',
        path: '/',
        headers,
        agent: this.#agent,
        signal,
      });
      req.on('socket', (socket) => {
        if (!socket.connecting) connected = true;
        else socket.once('connect', () => (connected = true));
      });
      req.on('error', (error: NodeJS.ErrnoException) => {
        if (signal.aborted) {
          reject(new TransportError('TRANSPORT_ABORTED', `delivery aborted: ${errorMessage(signal.reason)}`, false));
          return;
        }
        const code = error.code ?? '';
        const staleKeepAlive = req.reusedSocket && !answered && STALE_KEEPALIVE_ERRORS.has(code);
        const safe = (!connected && CONNECT_ERRORS.has(code)) || staleKeepAlive;
        reject(new TransportError('TRANSPORT_FAILED', `delivery failed: ${error.message}`, safe, { cause: error }));
      });
      req.on('response', (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', () => undefined); // surfaces through req 'error' / 'aborted'
        res.on('end', () => {
          const out: Record<string, string | string[]> = {};
          for (const [name, value] of Object.entries(res.headers)) {
            if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
          }
          resolve({ status: res.statusCode ?? 502, headers: out, body: Buffer.concat(chunks) });
        });
        res.on('close', () => {
          if (!res.complete) reject(new TransportError('REPLY_ABORTED', 'the connection closed mid-reply', false));
        });
      });
      req.end(message.body);
    });
  }

  close(): void {
    this.#agent.destroy();
  }
}
