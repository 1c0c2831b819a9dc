import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { TransportError } from '../src/errors.ts';
import type { EventMessage } from '../src/events.ts';
import { HttpTransport } from '../src/transport.ts';

/** A raw TCP server that answers each request with `answer(request, socket)` (HTTP written by hand). */
interface RawServer {
  readonly port: number;
  /** Requests received (head + body as text), in order, with the connection each came on. */
  readonly requests: { text: string; connection: number }[];
  answer: (request: string, socket: Socket) => void;
  close(): Promise<void>;
}

async function rawServer(answer: RawServer['answer']): Promise<RawServer> {
  const sockets = new Set<Socket>();
  let connections = 0;
  const state: RawServer = {
    port: 0,
    requests: [],
    answer,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    const connection = ++connections;
    let buffered = '';
    socket.on('data', (chunk) => {
      buffered += chunk.toString('latin1');
      for (;;) {
        const headEnd = buffered.indexOf('\r\n\r\n');
        if (headEnd === -1) return;
        const length = Number(/content-length: (\d+)/i.exec(buffered.slice(0, headEnd))?.[1] ?? 0);
        if (buffered.length < headEnd + 4 + length) return;
        const text = buffered.slice(0, headEnd + 4 + length);
        buffered = buffered.slice(text.length);
        state.requests.push({ text, connection });
        state.answer(text, socket);
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  (state as { port: number }).port = (server.address() as { port: number }).port;
  return state;
}

const ok = (body = 'ok', extra = '') =>
  `HTTP/1.1 200 OK\r\n${extra}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

function message(id: string, headers: Record<string, string> = {}): EventMessage {
  return {
    id,
    source: '/s',
    type: 't',
    headers: { 'ce-id': id, 'ce-source': '/s', 'ce-type': 't', 'ce-specversion': '1.0', ...headers },
    body: Buffer.from(`{"id":"${id}"}`),
  };
}

async function failure(promise: Promise<unknown>): Promise<TransportError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof TransportError, String(error));
    return error;
  }
  assert.fail('expected the delivery to fail');
}

describe('HttpTransport', () => {
  let transport: HttpTransport;
  const servers: RawServer[] = [];
  const server = async (answer: RawServer['answer']) => {
    const started = await rawServer(answer);
    servers.push(started);
    return { started, endpoint: { ip: '127.0.0.1', port: started.port } };
  };

  beforeEach(() => {
    transport = new HttpTransport();
  });
  afterEach(async () => {
    transport.close();
    await Promise.all(servers.splice(0).map((started) => started.close()));
  });

  it('sends POST / with Host, Content-Length, percent-encoded ce- values and the body, and reuses the connection', async () => {
    const { started, endpoint } = await server((_request, socket) =>
      socket.write(ok('{"r":1}', 'Content-Type: application/json\r\nCE-Id: reply\r\n')),
    );
    const first = await transport.send(endpoint, message('a b', { 'ce-subject': 'café', traceparent: 'tp' })).reply;
    assert.equal(first.status, 200);
    assert.deepEqual(first.headers, { 'content-type': 'application/json', 'ce-id': 'reply' }, 'no hop-by-hop headers');
    assert.equal(first.body.toString(), '{"r":1}');
    await transport.send(endpoint, message('second')).reply;
    const [request] = started.requests;
    assert.match(request?.text ?? '', /^POST \/ HTTP\/1\.1\r\n/);
    assert.match(request?.text ?? '', new RegExp(`\\r\\nhost: 127\\.0\\.0\\.1:${started.port}\\r\\n`));
    assert.match(request?.text ?? '', /\r\ncontent-length: 12\r\n/);
    assert.match(request?.text ?? '', /\r\nce-id: a%20b\r\n/);
    assert.match(request?.text ?? '', /\r\nce-subject: caf%C3%A9\r\n/);
    assert.match(request?.text ?? '', /\r\ntraceparent: tp\r\n/);
    assert.ok(request?.text.endsWith('\r\n\r\n{"id":"a b"}'));
    assert.deepEqual(
      started.requests.map((entry) => entry.connection),
      [1, 1],
      'one keep-alive connection',
    );
  });

  it('opens a new connection after Connection: close, a close-delimited reply, or a Keep-Alive timeout too short to reuse', async () => {
    const answers = [
      ok('1', 'Connection: close\r\n'),
      'HTTP/1.1 200 OK\r\n\r\nuntil the end',
      ok('3', 'Keep-Alive: timeout=1\r\n'),
      ok('4'),
    ];
    const { started, endpoint } = await server((_request, socket) => {
      const answer = answers[started.requests.length - 1] as string;
      socket.write(answer);
      if (!answer.includes('Content-Length')) socket.end();
    });
    const bodies: string[] = [];
    for (const id of ['1', '2', '3', '4'])
      bodies.push((await transport.send(endpoint, message(id)).reply).body.toString());
    assert.deepEqual(bodies, ['1', 'until the end', '3', '4']);
    assert.deepEqual(
      started.requests.map((entry) => entry.connection),
      [1, 2, 3, 4],
    );
  });

  it('reads chunked replies', async () => {
    const { endpoint } = await server((_request, socket) =>
      socket.write('HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n'),
    );
    const reply = await transport.send(endpoint, message('c')).reply;
    assert.deepEqual(
      [reply.status, reply.body.toString(), reply.headers['transfer-encoding']],
      [202, 'abc', undefined],
    );
  });

  it('fails safely (retryable) when the connection is refused', async () => {
    const { started, endpoint } = await server(() => undefined);
    await started.close();
    servers.length = 0;
    const error = await failure(transport.send(endpoint, message('refused')).reply);
    assert.deepEqual([error.code, error.safeToRetry], ['TRANSPORT_FAILED', true]);
    assert.match(error.message, /ECONNREFUSED/);
  });

  it('fails safely when a reused idle connection is closed before any reply, not when a fresh one is', async () => {
    const { started, endpoint } = await server((_request, socket) => {
      if (started.requests.length === 1) socket.write(ok());
      else socket.destroy();
    });
    await transport.send(endpoint, message('first')).reply;
    const stale = await failure(transport.send(endpoint, message('stale')).reply);
    assert.deepEqual([stale.code, stale.safeToRetry], ['TRANSPORT_FAILED', true]);
    const fresh = await failure(transport.send(endpoint, message('fresh')).reply);
    assert.deepEqual(
      [fresh.code, fresh.safeToRetry],
      ['TRANSPORT_FAILED', false],
      'a new connection reached the function',
    );
  });

  it('fails unsafely when the reply is cut or invalid', async () => {
    const { endpoint } = await server((request, socket) => {
      if (request.includes('ce-id: cut')) socket.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc');
      else if (request.includes('ce-id: head')) socket.end('HTTP/1.1 200 OK\r\nContent-');
      else socket.write('HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n');
    });
    const cut = await failure(transport.send(endpoint, message('cut')).reply);
    assert.deepEqual([cut.code, cut.safeToRetry], ['REPLY_ABORTED', false]);
    const head = await failure(transport.send(endpoint, message('head')).reply);
    assert.deepEqual([head.code, head.safeToRetry], ['TRANSPORT_FAILED', false]);
    const invalid = await failure(transport.send(endpoint, message('invalid')).reply);
    assert.deepEqual([invalid.code, invalid.safeToRetry], ['TRANSPORT_FAILED', false]);
    assert.match(invalid.message, /invalid reply: invalid content-length/);
  });

  it('aborts a delivery (timeout, shutdown) and does not reuse its connection', async () => {
    const { started, endpoint } = await server((request, socket) => {
      if (!request.includes('ce-id: slow')) socket.write(ok());
    });
    const delivery = transport.send(endpoint, message('slow'));
    await new Promise((resolve) => setTimeout(resolve, 50));
    delivery.abort(new Error('delivery timeout'));
    const error = await failure(delivery.reply);
    assert.deepEqual([error.code, error.message], ['TRANSPORT_ABORTED', 'delivery aborted: delivery timeout']);
    await transport.send(endpoint, message('next')).reply;
    assert.deepEqual(
      started.requests.map((entry) => entry.connection),
      [1, 2],
    );
  });

  it('leaves a delivery that was answered alone when it is aborted afterwards', async () => {
    const { started, endpoint } = await server((_request, socket) => socket.write(ok()));
    const delivery = transport.send(endpoint, message('done'));
    await delivery.reply;
    delivery.abort(new Error('too late'));
    await transport.send(endpoint, message('again')).reply;
    assert.deepEqual(
      started.requests.map((entry) => entry.connection),
      [1, 1],
      'the pooled connection was not dropped',
    );
  });

  it('refuses a header that would break the request, before connecting', async () => {
    const { started, endpoint } = await server((_request, socket) => socket.write(ok()));
    const error = await failure(
      transport.send(endpoint, message('x', { 'content-type': 'text/plain\r\nx-injected: 1' })).reply,
    );
    assert.deepEqual([error.code, error.safeToRetry], ['TRANSPORT_FAILED', false]);
    assert.equal(started.requests.length, 0);
  });

  it('drops an idle connection that receives bytes nobody asked for', async () => {
    const { started, endpoint } = await server((_request, socket) => {
      socket.write(ok());
      if (started.requests.length === 1) setTimeout(() => socket.write('HTTP/1.1 200 OK\r\n'), 10);
    });
    await transport.send(endpoint, message('first')).reply;
    await new Promise((resolve) => setTimeout(resolve, 50));
    await transport.send(endpoint, message('second')).reply;
    assert.deepEqual(
      started.requests.map((entry) => entry.connection),
      [1, 2],
    );
  });
});
