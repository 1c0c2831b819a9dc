import { connect, type Socket } from 'node:net';
import { errorMessage } from '@afterlife/core';
import { type Endpoint, endpointKey } from './endpoints.ts';
import { TransportError } from './errors.ts';
import { type EventMessage, encodeHeaderValue } from './events.ts';
import { type CompleteReply, HEADER_NAME, INVALID_VALUE, ReplyParser } from './reply-parser.ts';

/** What the function answered. */
export interface Reply {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[]>>;
  readonly body: Buffer;
}

/** One delivery under way. */
export interface Delivery {
  /** The function's full reply; rejects with a `TransportError`. */
  readonly reply: Promise<Reply>;
  /** Ends the delivery early (delivery timeout, shutdown): `reply` rejects with `TRANSPORT_ABORTED`. */
  abort(reason: unknown): void;
}

/** Sends one binary-mode event to one endpoint. */
export interface Transport {
  send(endpoint: Endpoint, message: EventMessage): Delivery;
  close(): void;
}

/** Reply headers that describe the connection, not the reply: not passed on to the sender. */
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
 * A pooled keep-alive connection that the function closed as idle (it is scaling down, or its
 * idle timeout fired) just as we reused it: the reset (or end) comes before any byte of a reply,
 * and the function closed the connection because it had no request on it, so the event was not
 * taken and may be sent again (the case Node documents for `request.reusedSocket`).
 */
const STALE_KEEPALIVE_ERRORS = new Set(['ECONNRESET', 'EPIPE']);
/** Stop reusing an idle connection this long before the server said it would close it (as Node's agent does). */
const IDLE_MARGIN_MS = 1000;

/** One request on a connection, from sending until it is answered or fails. */
interface Exchange {
  readonly resolve: (reply: Reply) => void;
  readonly reject: (error: TransportError) => void;
}

/** The idle keep-alive connections to one endpoint, the most recently used last (reused first). */
class EndpointPool {
  readonly idle: Connection[] = [];
  readonly endpoint: Endpoint;

  constructor(endpoint: Endpoint) {
    this.endpoint = endpoint;
  }

  /** An idle connection that may still be used, or a new one. */
  take(): Connection {
    const now = Date.now();
    for (let connection = this.idle.pop(); connection !== undefined; connection = this.idle.pop()) {
      if (connection.usableAt(now)) return connection;
      connection.destroy();
    }
    return new Connection(this);
  }

  release(connection: Connection): void {
    this.idle.push(connection);
  }

  forget(connection: Connection): void {
    const index = this.idle.indexOf(connection);
    if (index !== -1) this.idle.splice(index, 1);
  }
}

/**
 * One keep-alive TCP connection to an endpoint, one request at a time (no pipelining). Its
 * listeners are set once for the connection's life, not per request.
 */
class Connection {
  readonly #pool: EndpointPool;
  readonly #socket: Socket;
  readonly #parser = new ReplyParser();
  #connected = false;
  #requests = 0;
  #exchange: Exchange | undefined;
  /** The current request went out on a connection that carried requests before. */
  #reused = false;
  #idleUntil = Number.POSITIVE_INFINITY;
  #destroyed = false;

  constructor(pool: EndpointPool) {
    this.#pool = pool;
    const { ip, port } = pool.endpoint;
    this.#socket = connect({ host: ip, port, noDelay: true, keepAlive: true, keepAliveInitialDelay: 1000 });
    this.#socket.on('connect', () => {
      this.#connected = true;
    });
    this.#socket.on('data', (chunk: Buffer) => this.#received(chunk));
    this.#socket.on('end', () => this.#ended());
    this.#socket.on('error', (error: NodeJS.ErrnoException) => this.#failed(error));
    this.#socket.on('close', () => this.#closed());
  }

  usableAt(now: number): boolean {
    return !this.#destroyed && now < this.#idleUntil;
  }

  send(head: string, body: Buffer, exchange: Exchange): void {
    this.#exchange = exchange;
    this.#reused = this.#requests > 0;
    this.#requests += 1;
    this.#parser.reset();
    this.#socket.ref();
    // One write system call for head and body.
    this.#socket.cork();
    this.#socket.write(head, 'latin1');
    if (body.length > 0) this.#socket.write(body);
    this.#socket.uncork();
  }

  /** Drops the connection if `exchange` is still under way on it (its caller answers it). */
  abort(exchange: Exchange): void {
    if (this.#exchange !== exchange) return;
    this.#exchange = undefined;
    this.destroy();
  }

  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#pool.forget(this);
    this.#socket.destroy();
  }

  #received(chunk: Buffer): void {
    const exchange = this.#exchange;
    if (exchange === undefined) {
      // Bytes nobody asked for: the connection cannot be trusted for the next request.
      this.destroy();
      return;
    }
    let reply: CompleteReply | undefined;
    try {
      reply = this.#parser.push(chunk);
    } catch (error) {
      this.#exchange = undefined;
      this.destroy();
      exchange.reject(
        new TransportError('TRANSPORT_FAILED', `delivery failed: invalid reply: ${errorMessage(error)}`, false, {
          cause: error,
        }),
      );
      return;
    }
    if (reply !== undefined) this.#answered(exchange, reply);
  }

  #answered(exchange: Exchange, reply: CompleteReply): void {
    this.#exchange = undefined;
    // Reused only when the reply and our request are both complete and nothing else came.
    if (reply.keepAlive && !reply.trailingBytes && this.#socket.writableLength === 0 && !this.#destroyed) {
      const idleMs =
        reply.idleTimeoutSeconds === undefined ? undefined : reply.idleTimeoutSeconds * 1000 - IDLE_MARGIN_MS;
      if (idleMs === undefined || idleMs > 0) {
        this.#idleUntil = idleMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + idleMs;
        // An idle connection does not keep the process alive (as with Node's agent).
        this.#socket.unref();
        this.#pool.release(this);
      } else {
        this.destroy();
      }
    } else {
      this.destroy();
    }
    const headers: Record<string, string | string[]> = {};
    for (const name in reply.headers)
      if (!HOP_BY_HOP.has(name)) headers[name] = reply.headers[name] as string | string[];
    exchange.resolve({ status: reply.status, headers, body: reply.body });
  }

  /** The server closed its side. */
  #ended(): void {
    const exchange = this.#exchange;
    if (exchange !== undefined) {
      const reply = this.#parser.end();
      if (reply !== undefined) this.#answered(exchange, reply);
      else this.#lost(exchange, Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
    }
    this.destroy();
  }

  #failed(error: NodeJS.ErrnoException): void {
    const exchange = this.#exchange;
    if (exchange !== undefined) this.#lost(exchange, error);
    this.destroy();
  }

  #closed(): void {
    const exchange = this.#exchange;
    if (exchange !== undefined)
      this.#lost(exchange, Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
    this.#destroyed = true;
    this.#pool.forget(this);
  }

  /** The connection broke before the reply was complete. */
  #lost(exchange: Exchange, error: NodeJS.ErrnoException): void {
    this.#exchange = undefined;
    if (this.#parser.headReceived) {
      exchange.reject(new TransportError('REPLY_ABORTED', 'the connection closed mid-reply', false, { cause: error }));
      return;
    }
    const code = error.code ?? '';
    const staleKeepAlive = this.#reused && !this.#parser.started && STALE_KEEPALIVE_ERRORS.has(code);
    const safe = (!this.#connected && CONNECT_ERRORS.has(code)) || staleKeepAlive;
    exchange.reject(
      new TransportError('TRANSPORT_FAILED', `delivery failed: ${error.message}`, safe, { cause: error }),
    );
  }
}

/** `Host` as Node would send it: the port unless 80, an IPv6 address in brackets. */
function hostHeader(endpoint: Endpoint): string {
  if (endpoint.port !== 80) return endpointKey(endpoint);
  return endpoint.ip.includes(':') ? `[${endpoint.ip}]` : endpoint.ip;
}

/**
 * HTTP/1.1 delivery, `POST /` like Knative's queue-proxy expects, over keep-alive connections
 * pooled per endpoint. A purpose-built client rather than `node:http`'s: a delivery is one
 * request head, one write and one parsed reply, without the per-request `ClientRequest`, agent
 * bookkeeping and streams that were the largest share of the gateway's CPU per event.
 */
export class HttpTransport implements Transport {
  readonly #pools = new Map<string, EndpointPool>();

  send(endpoint: Endpoint, message: EventMessage): Delivery {
    let abort: (reason: unknown) => void = () => undefined;
    const reply = new Promise<Reply>((resolve, reject) => {
      const head = requestHead(endpoint, message);
      if (head instanceof TransportError) {
        reject(head);
        return;
      }
      const key = endpointKey(endpoint);
      let pool = this.#pools.get(key);
      if (pool === undefined) {
        pool = new EndpointPool({ ip: endpoint.ip, port: endpoint.port });
        this.#pools.set(key, pool);
      }
      const connection = pool.take();
      const exchange: Exchange = { resolve, reject };
      abort = (reason) => {
        connection.abort(exchange);
        // A no-op once the reply settled.
        reject(new TransportError('TRANSPORT_ABORTED', `delivery aborted: ${errorMessage(reason)}`, false));
      };
      connection.send(head, message.body, exchange);
    });
    return { reply, abort: (reason) => abort(reason) };
  }

  close(): void {
    for (const pool of this.#pools.values()) for (const connection of pool.idle.splice(0)) connection.destroy();
    this.#pools.clear();
  }
}

/**
 * The request line and header section, `ce-*` values percent-encoded (HTTP binding 3.1.3.2); an
 * error for what Node refuses too — a name or value that would break the header section (a
 * structured event's `datacontenttype` can hold anything; embedders build messages themselves).
 */
function requestHead(endpoint: Endpoint, message: EventMessage): string | TransportError {
  let head = `POST / HTTP/1.1\r\nhost: ${hostHeader(endpoint)}\r\nconnection: keep-alive\r\ncontent-length: ${message.body.length}\r\n`;
  const headers = message.headers;
  for (const name in headers) {
    const raw = headers[name] as string;
    const value = isCeHeader(name) ? encodeHeaderValue(raw) : raw;
    if (!HEADER_NAME.test(name) || INVALID_VALUE.test(value)) {
      return new TransportError('TRANSPORT_FAILED', `delivery failed: invalid header "${name}"`, false);
    }
    head += `${name}: ${value}\r\n`;
  }
  return `${head}\r\n`;
}

function isCeHeader(name: string): boolean {
  return name.charCodeAt(0) === 0x63 && name.charCodeAt(1) === 0x65 && name.charCodeAt(2) === 0x2d;
}
