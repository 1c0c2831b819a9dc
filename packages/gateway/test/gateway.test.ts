import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import { parseCountsSnapshot } from '@afterlife/core';
import type { Gateway } from '../src/server.ts';
import { CountsBroadcaster } from '../src/stream.ts';
import { counts, pendingOf, type Receiver, sendBinary, startReceiver, startTestGateway, waitFor } from './helpers.ts';

const FN = { namespace: 'demo', name: 'echo' };
const PATH = '/ns/demo/fn/echo';

describe('gateway over HTTP (events port + admin port)', function () {
  this.timeout(20_000);
  let gateway: Gateway | undefined;
  const receivers: Receiver[] = [];

  afterEach(async () => {
    await gateway?.close();
    gateway = undefined;
    await Promise.all(receivers.splice(0).map((receiver) => receiver.close()));
  });

  async function receiver(options: { delayMs?: number; status?: number } = {}): Promise<Receiver> {
    const started = await startReceiver(options);
    receivers.push(started);
    return started;
  }

  describe('routing and validation', () => {
    beforeEach(async () => {
      gateway = await startTestGateway();
      const target = await receiver();
      gateway.endpoints.setFunction(FN, [{ ip: '127.0.0.1', port: target.port }]);
    });

    it('answers 404 for an unknown function and for other paths', async () => {
      const unknown = await sendBinary(gateway?.eventsPort ?? 0, '/ns/demo/fn/nope', 'x1');
      assert.equal(unknown.status, 404);
      assert.equal(((await unknown.json()) as { error: string }).error, 'unknown_function');
      const other = await fetch(`http://127.0.0.1:${gateway?.eventsPort}/elsewhere`, { method: 'POST' });
      assert.equal(other.status, 404);
    });

    it('answers 405 with Allow: POST for any other method on a function URL', async () => {
      for (const method of ['GET', 'PUT', 'DELETE', 'PATCH']) {
        const res = await fetch(`http://127.0.0.1:${gateway?.eventsPort}${PATH}`, { method });
        assert.equal(res.status, 405, method);
        assert.equal(res.headers.get('allow'), 'POST', method);
        assert.equal(((await res.json()) as { error: string }).error, 'method_not_allowed');
      }
      const head = await fetch(`http://127.0.0.1:${gateway?.eventsPort}${PATH}`, { method: 'HEAD' });
      assert.equal(head.status, 405);
      assert.equal(head.headers.get('allow'), 'POST');
    });

    it('answers 400 naming a missing id', async () => {
      const res = await fetch(`http://127.0.0.1:${gateway?.eventsPort}${PATH}`, {
        method: 'POST',
        headers: { 'ce-source': '/s', 'ce-type': 't', 'ce-specversion': '1.0', 'content-type': 'text/plain' },
        body: 'x',
      });
      assert.equal(res.status, 400);
      const body = (await res.json()) as { error: string; errors: string[] };
      assert.equal(body.error, 'invalid_event');
      assert.deepEqual(body.errors, ['missing required attribute "id"']);
    });

    it('answers 400 for a structured event without type and for a body that is no CloudEvent', async () => {
      const structured = await fetch(`http://127.0.0.1:${gateway?.eventsPort}${PATH}`, {
        method: 'POST',
        headers: { 'content-type': 'application/cloudevents+json' },
        body: JSON.stringify({ id: '1', source: '/s', specversion: '1.0' }),
      });
      assert.equal(structured.status, 400);
      assert.deepEqual(((await structured.json()) as { errors: string[] }).errors, [
        'missing required attribute "type"',
      ]);
      const plain = await fetch(`http://127.0.0.1:${gateway?.eventsPort}${PATH}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      assert.equal(plain.status, 400);
    });

    it('answers 413 when the body is over the limit', async () => {
      await gateway?.close();
      gateway = await startTestGateway({ AFTERLIFE_GATEWAY_BODY_LIMIT: '1kb' });
      gateway.endpoints.setFunction(FN, [{ ip: '127.0.0.1', port: receivers[0]?.port ?? 0 }]);
      const res = await sendBinary(gateway.eventsPort, PATH, 'big', {}, JSON.stringify({ x: 'y'.repeat(2048) }));
      assert.equal(res.status, 413);
    });
  });

  describe('delivery', () => {
    /** A gateway that knows FN, served by one receiver. */
    async function servedGateway(): Promise<{ gw: Gateway; target: Receiver }> {
      const target = await receiver();
      const gw = await startTestGateway();
      gw.endpoints.setFunction(FN, [{ ip: '127.0.0.1', port: target.port }]);
      gateway = gw;
      return { gw, target };
    }
    const postStructured = (port: number, event: object) =>
      fetch(`http://127.0.0.1:${port}${PATH}`, {
        method: 'POST',
        headers: { 'content-type': 'application/cloudevents+json' },
        body: JSON.stringify(event),
      });

    it('delivers binary mode preserving attributes, extensions and traceparent, and returns the reply event', async () => {
      const target = await receiver();
      gateway = await startTestGateway();
      gateway.endpoints.setFunction(FN, [{ ip: '127.0.0.1', port: target.port }]);
      const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
      const res = await sendBinary(gateway.eventsPort, PATH, 'evt-1', {
        'ce-subject': 'sub',
        'ce-myext': 'ext-value',
        traceparent,
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('ce-id'), 'reply-evt-1');
      assert.equal(res.headers.get('ce-type'), 'dev.afterlife.reply');
      assert.deepEqual(await res.json(), { echoed: 'evt-1', port: target.port });
      const got = target.received[0];
      assert.ok(got);
      assert.equal(got.headers['ce-id'], 'evt-1');
      assert.equal(got.headers['ce-source'], '/test');
      assert.equal(got.headers['ce-type'], 'dev.afterlife.test');
      assert.equal(got.headers['ce-specversion'], '1.0');
      assert.equal(got.headers['ce-subject'], 'sub');
      assert.equal(got.headers['ce-myext'], 'ext-value');
      assert.equal(got.headers.traceparent, traceparent);
      assert.equal(got.body.toString(), '{"hello":"world"}');
    });

    it('decodes percent-encoded ce- header values and re-encodes only what the HTTP binding requires on delivery', async () => {
      const { gw, target } = await servedGateway();
      const res = await sendBinary(gw.eventsPort, PATH, 'evt%2D%41', {
        'ce-source': '/s%7Ex',
        'ce-subject': 'caf%C3%A9 %22quoted%22 100%25',
        'ce-myext': 'plain-%7Evalue',
      });
      assert.equal(res.status, 200);
      const got = target.received[0];
      assert.equal(got?.headers['ce-id'], 'evt-A');
      assert.equal(got?.headers['ce-source'], '/s~x');
      assert.equal(got?.headers['ce-subject'], 'caf%C3%A9%20%22quoted%22%20100%25');
      assert.equal(got?.headers['ce-myext'], 'plain-~value');
    });

    it('percent-encodes structured attributes that a header cannot carry as they are', async () => {
      const { gw, target } = await servedGateway();
      const res = await postStructured(gw.eventsPort, {
        id: 's-€',
        source: '/s',
        type: 't',
        specversion: '1.0',
        subject: 'a "b" 5%',
      });
      assert.equal(res.status, 200);
      const got = target.received[0];
      assert.equal(got?.headers['ce-id'], 's-%E2%82%AC');
      assert.equal(got?.headers['ce-subject'], 'a%20%22b%22%205%25');
    });

    it('delivers a structured event in binary mode', async () => {
      const { gw, target } = await servedGateway();
      const res = await postStructured(gw.eventsPort, {
        id: 's-1',
        source: '/s',
        type: 't',
        specversion: '1.0',
        partitionkey: 'k',
        datacontenttype: 'application/json',
        data: { n: 1 },
      });
      assert.equal(res.status, 200);
      const got = target.received[0];
      assert.equal(got?.headers['ce-id'], 's-1');
      assert.equal(got?.headers['ce-partitionkey'], 'k');
      assert.equal(got?.headers['content-type'], 'application/json');
      assert.deepEqual(JSON.parse(got?.body.toString() ?? ''), { n: 1 });
    });

    it('delivers each event of a batch and answers with one result per event', async () => {
      const target = await receiver();
      gateway = await startTestGateway();
      gateway.endpoints.setFunction(FN, [{ ip: '127.0.0.1', port: target.port }]);
      const events = ['b1', 'b2', 'b3'].map((id) => ({ id, source: '/s', type: 't', specversion: '1.0', data: id }));
      const res = await fetch(`http://127.0.0.1:${gateway.eventsPort}${PATH}`, {
        method: 'POST',
        headers: { 'content-type': 'application/cloudevents-batch+json' },
        body: JSON.stringify(events),
      });
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), {
        results: [
          { id: 'b1', status: 200 },
          { id: 'b2', status: 200 },
          { id: 'b3', status: 200 },
        ],
      });
      assert.deepEqual(target.received.map((r) => r.headers['ce-id']).sort(), ['b1', 'b2', 'b3']);
    });

    it('passes a function error through and counts it as failed', async () => {
      const target = await receiver({ status: 500 });
      gateway = await startTestGateway();
      gateway.endpoints.setFunction(FN, [{ ip: '127.0.0.1', port: target.port }]);
      const res = await sendBinary(gateway.eventsPort, PATH, 'boom');
      assert.equal(res.status, 500);
      const snap = await counts(gateway.adminPort);
      assert.equal(snap.functions[0]?.failed, 1);
      assert.equal(snap.functions[0]?.delivered, 0);
    });
  });

  describe('holding', () => {
    it('holds an event while no endpoint is ready and delivers it once one is', async () => {
      const target = await receiver();
      gateway = await startTestGateway();
      gateway.endpoints.setFunction(FN, []);
      const reply = sendBinary(gateway.eventsPort, PATH, 'held-1');
      const admin = gateway.adminPort;
      await waitFor(async () => pendingOf(await counts(admin), 'echo') === 1, 5000, 'pending=1');
      assert.equal(target.received.length, 0);
      gateway.endpoints.setFunction(FN, [{ ip: '127.0.0.1', port: target.port }]);
      const res = await reply;
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('ce-id'), 'reply-held-1');
      const snap = await counts(admin);
      assert.deepEqual(
        {
          pending: snap.functions[0]?.pending,
          inFlight: snap.functions[0]?.inFlight,
          delivered: snap.functions[0]?.delivered,
        },
        { pending: 0, inFlight: 0, delivered: 1 },
      );
      const metrics = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
      assert.match(metrics, /afterlife_gateway_cold_start_seconds_count\{[^}]*function="echo"[^}]*\} 1\n/);
      // The cold start as /v1/cold-starts reports it, ordered held → delivered → replied.
      const served = (await (await fetch(`http://127.0.0.1:${admin}/v1/cold-starts`)).json()) as {
        gateway: string;
        coldStarts: Array<Record<string, unknown>>;
      };
      assert.equal(served.gateway, 'gateway-test');
      assert.equal(served.coldStarts.length, 1);
      const record = served.coldStarts[0] ?? {};
      assert.equal(record.name, 'echo');
      assert.equal(record.via, 'ready');
      assert.equal(record.status, 200);
      assert.equal(record.endpoint, `127.0.0.1:${target.port}`);
      const order = ['heldAt', 'endpointSeenAt', 'deliveredAt', 'repliedAt'].map((key) => record[key] as number);
      assert.deepEqual(
        [...order].sort((a, b) => a - b),
        order,
        JSON.stringify(record),
      );
    });

    it('answers 503 with Retry-After over the pending limit', async () => {
      gateway = await startTestGateway({ AFTERLIFE_GATEWAY_PENDING_LIMIT: '2', AFTERLIFE_GATEWAY_RETRY_AFTER: '3s' });
      gateway.endpoints.setFunction(FN, []);
      const port = gateway.eventsPort;
      const held = [sendBinary(port, PATH, 'p1'), sendBinary(port, PATH, 'p2')];
      const admin = gateway.adminPort;
      await waitFor(async () => pendingOf(await counts(admin), 'echo') === 2, 5000, 'pending=2');
      const over = await sendBinary(port, PATH, 'p3');
      assert.equal(over.status, 503);
      assert.equal(over.headers.get('retry-after'), '3');
      assert.equal(((await over.json()) as { error: string }).error, 'pending_limit');
      const target = await receiver();
      gateway.endpoints.setFunction(FN, [{ ip: '127.0.0.1', port: target.port }]);
      assert.deepEqual(
        (await Promise.all(held)).map((res) => res.status),
        [200, 200],
      );
    });

    it('answers 504 when no endpoint becomes ready within the cold-start timeout', async () => {
      gateway = await startTestGateway({ AFTERLIFE_GATEWAY_COLD_START_TIMEOUT: '300ms' });
      gateway.endpoints.setFunction(FN, []);
      const started = Date.now();
      const res = await sendBinary(gateway.eventsPort, PATH, 'late');
      assert.equal(res.status, 504);
      assert.ok(Date.now() - started >= 290);
      assert.equal(((await res.json()) as { error: string }).error, 'cold_start_timeout');
      const snap = await counts(gateway.adminPort);
      assert.deepEqual(
        { pending: snap.functions[0]?.pending, failed: snap.functions[0]?.failed },
        { pending: 0, failed: 1 },
      );
    });

    it('stops holding an event whose sender went away', async () => {
      gateway = await startTestGateway();
      gateway.endpoints.setFunction(FN, []);
      const abort = new AbortController();
      const other = sendBinary(gateway.eventsPort, PATH, 'stays', {}, '{}');
      const controlled = fetch(`http://127.0.0.1:${gateway.eventsPort}${PATH}`, {
        method: 'POST',
        headers: { 'ce-id': 'g2', 'ce-source': '/s', 'ce-type': 't', 'ce-specversion': '1.0' },
        signal: abort.signal,
      }).catch(() => undefined);
      const admin = gateway.adminPort;
      await waitFor(async () => pendingOf(await counts(admin), 'echo') === 2, 5000, 'pending=2');
      abort.abort();
      await controlled;
      await waitFor(async () => pendingOf(await counts(admin), 'echo') === 1, 5000, 'pending back to 1');
      const snap = await counts(admin);
      assert.equal(snap.functions[0]?.failed, 1);
      await gateway.close();
      gateway = undefined;
      assert.equal((await other).status, 503);
    });
  });

  describe('spreading', () => {
    it('spreads a burst over replicas as they become ready, never above the per-replica limit', async () => {
      const a = await receiver({ delayMs: 150 });
      const b = await receiver({ delayMs: 150 });
      const c = await receiver({ delayMs: 150 });
      gateway = await startTestGateway({ AFTERLIFE_GATEWAY_REPLICA_CONCURRENCY: '2' });
      gateway.endpoints.setFunction(FN, []);
      const port = gateway.eventsPort;
      const burst = Array.from({ length: 12 }, (_, i) => sendBinary(port, PATH, `burst-${i}`));
      const admin = gateway.adminPort;
      await waitFor(async () => pendingOf(await counts(admin), 'echo') === 12, 5000, 'pending=12');
      gateway.endpoints.setFunction(FN, [{ ip: '127.0.0.1', port: a.port }]);
      await waitFor(() => a.received.length >= 2, 5000, 'first replica busy');
      gateway.endpoints.setFunction(FN, [
        { ip: '127.0.0.1', port: a.port },
        { ip: '127.0.0.1', port: b.port },
        { ip: '127.0.0.1', port: c.port },
      ]);
      const replies = await Promise.all(burst);
      assert.ok(replies.every((res) => res.status === 200));
      for (const r of [a, b, c]) assert.ok(r.maxActive <= 2, `replica saw ${r.maxActive} concurrent`);
      assert.ok(b.received.length >= 3 && c.received.length >= 3, `b=${b.received.length} c=${c.received.length}`);
      assert.equal(a.received.length + b.received.length + c.received.length, 12);
    });

    it('picks the least-loaded endpoint (round robin when idle)', async () => {
      const a = await receiver();
      const b = await receiver();
      gateway = await startTestGateway();
      gateway.endpoints.setFunction(FN, [
        { ip: '127.0.0.1', port: a.port },
        { ip: '127.0.0.1', port: b.port },
      ]);
      for (let i = 0; i < 6; i++) assert.equal((await sendBinary(gateway.eventsPort, PATH, `rr-${i}`)).status, 200);
      assert.equal(a.received.length, 3);
      assert.equal(b.received.length, 3);
    });

    it('retries on another endpoint when one refuses the connection', async () => {
      const closedPort = await freePort();
      const live = await receiver();
      gateway = await startTestGateway({ AFTERLIFE_GATEWAY_EJECT_TIME: '10s' });
      gateway.endpoints.setFunction(FN, [
        { ip: '127.0.0.1', port: closedPort },
        { ip: '127.0.0.1', port: live.port },
      ]);
      const replies = await Promise.all([0, 1, 2, 3].map((i) => sendBinary(gateway?.eventsPort ?? 0, PATH, `re-${i}`)));
      assert.deepEqual(
        replies.map((res) => res.status),
        [200, 200, 200, 200],
      );
      assert.equal(live.received.length, 4);
      assert.equal((await counts(gateway.adminPort)).functions[0]?.failed, 0);
    });
    it('retries an event whose reused keep-alive connection the function closed before answering', async () => {
      // The function answers the first request, then closes that idle keep-alive connection as
      // the next request arrives on it (what a replica does while scaling down): that request
      // never reached it, so the gateway sends it again on a fresh connection.
      const seen: string[] = [];
      let socketsUsed = 0;
      const flaky = createHttpServer((req, res) => {
        const id = String(req.headers['ce-id']);
        const socket = req.socket as typeof req.socket & { served?: number };
        socket.served = (socket.served ?? 0) + 1;
        if (socket.served === 2 && id === 'ka-1') {
          socket.destroy();
          return;
        }
        seen.push(id);
        req.resume();
        req.on('end', () => res.writeHead(200, { 'content-type': 'text/plain' }).end('ok'));
      });
      flaky.on('connection', () => {
        socketsUsed += 1;
      });
      await new Promise<void>((resolve) => flaky.listen(0, '127.0.0.1', resolve));
      const address = flaky.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      try {
        gateway = await startTestGateway({ AFTERLIFE_GATEWAY_EJECT_TIME: '50ms' });
        gateway.endpoints.setFunction(FN, [{ ip: '127.0.0.1', port }]);
        assert.equal((await sendBinary(gateway.eventsPort, PATH, 'ka-0')).status, 200);
        assert.equal((await sendBinary(gateway.eventsPort, PATH, 'ka-1')).status, 200);
        assert.deepEqual(seen, ['ka-0', 'ka-1']);
        assert.equal(socketsUsed, 2, 'the retry used a fresh connection');
        assert.equal((await counts(gateway.adminPort)).functions[0]?.failed, 0);
      } finally {
        flaky.closeAllConnections();
        await new Promise<void>((resolve) => flaky.close(() => resolve()));
      }
    });
  });

  describe('counts', () => {
    it('serves a valid CountsSnapshot with increasing sequence numbers and a rate', async () => {
      const target = await receiver();
      gateway = await startTestGateway({ AFTERLIFE_GATEWAY_RATE_WINDOW: '10s' });
      gateway.endpoints.setFunction(FN, [{ ip: '127.0.0.1', port: target.port }]);
      for (let i = 0; i < 5; i++) await sendBinary(gateway.eventsPort, PATH, `c-${i}`);
      const first = parseCountsSnapshot(await counts(gateway.adminPort));
      const second = parseCountsSnapshot(await counts(gateway.adminPort));
      assert.equal(first.gateway, 'gateway-test');
      assert.ok(second.sequence > first.sequence);
      assert.deepEqual(first.functions, [
        { namespace: 'demo', name: 'echo', pending: 0, inFlight: 0, delivered: 5, failed: 0, ratePerSecond: 0.5 },
      ]);
    });

    it('streams counts: one snapshot on connect, the 0→1 pending change at once, heartbeats every second', async () => {
      gateway = await startTestGateway();
      gateway.endpoints.setFunction(FN, []);
      const abort = new AbortController();
      const res = await fetch(`http://127.0.0.1:${gateway.adminPort}/v1/counts/stream`, { signal: abort.signal });
      assert.equal(res.headers.get('content-type'), 'text/event-stream');
      const reader = res.body?.getReader();
      assert.ok(reader);
      const decoder = new TextDecoder();
      let buffer = '';
      const next = async () => {
        for (;;) {
          const end = buffer.indexOf('\n\n');
          if (end >= 0) {
            const frame = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const lines = frame.split('\n');
            assert.equal(lines[0], 'event: counts');
            return {
              snapshot: parseCountsSnapshot(JSON.parse(lines[1]?.replace(/^data: /, '') ?? '')),
              at: Date.now(),
            };
          }
          const chunk = await reader.read();
          if (chunk.done) throw new Error('stream ended');
          buffer += decoder.decode(chunk.value, { stream: true });
        }
      };
      try {
        const initial = await next();
        assert.deepEqual(initial.snapshot.functions, []);
        const sentAt = Date.now();
        const held = sendBinary(gateway.eventsPort, PATH, 'stream-1').catch(() => undefined);
        const urgent = await next();
        assert.equal(pendingOf(urgent.snapshot, 'echo'), 1);
        assert.ok(urgent.at - sentAt < 500, `0→1 took ${urgent.at - sentAt} ms`);
        assert.ok(urgent.snapshot.sequence > initial.snapshot.sequence);
        const heartbeat = await next();
        assert.ok(heartbeat.at - urgent.at >= 900 && heartbeat.at - urgent.at < 1500, `${heartbeat.at - urgent.at} ms`);
        assert.equal(pendingOf(heartbeat.snapshot, 'echo'), 1);
        void held;
      } finally {
        abort.abort();
      }
    });
  });

  describe('counts stream pacing', () => {
    it('sends ordinary changes at most every 100 ms', async () => {
      const target = await receiver();
      gateway = await startTestGateway();
      gateway.endpoints.setFunction(FN, [{ ip: '127.0.0.1', port: target.port }]);
      const broadcaster = new CountsBroadcaster(gateway.dispatcher);
      const times: number[] = [];
      const unsubscribe = broadcaster.subscribe(() => times.push(performance.now()));
      try {
        await sendBinary(gateway.eventsPort, PATH, 'first'); // new function: urgent
        const urgentCount = times.length;
        // A fixed number of changes, however fast this machine is: only the spacing is checked.
        const started = performance.now();
        for (let i = 0; i < 30; i++) await sendBinary(gateway.eventsPort, PATH, `pace-${i}`);
        await new Promise((resolve) => setTimeout(resolve, 150)); // let the last paced snapshot out
        const elapsed = performance.now() - started;
        const paced = times.slice(urgentCount);
        assert.ok(paced.length >= 1, 'changes after the first produced no snapshot');
        for (let k = 1; k < paced.length; k++) {
          const gap = (paced[k] ?? 0) - (paced[k - 1] ?? 0);
          assert.ok(gap >= 95, `snapshots ${gap.toFixed(1)} ms apart`);
        }
        assert.ok(
          paced.length <= Math.floor(elapsed / 95) + 1,
          `${paced.length} snapshots in ${elapsed.toFixed(0)} ms`,
        );
      } finally {
        unsubscribe();
        broadcaster.close();
      }
    });
  });

  describe('graceful shutdown', () => {
    it('delivers held and in-flight events before closing and refuses new ones', async () => {
      const target = await receiver({ delayMs: 200 });
      gateway = await startTestGateway({
        AFTERLIFE_GATEWAY_DRAIN_TIMEOUT: '5s',
        AFTERLIFE_GATEWAY_REPLICA_CONCURRENCY: '1',
      });
      gateway.endpoints.setFunction(FN, [{ ip: '127.0.0.1', port: target.port }]);
      const port = gateway.eventsPort;
      const sent = [sendBinary(port, PATH, 'd1'), sendBinary(port, PATH, 'd2'), sendBinary(port, PATH, 'd3')];
      await waitFor(() => target.received.length >= 1, 5000, 'first delivery');
      const closing = gateway.close();
      const replies = await Promise.all(sent);
      await closing;
      gateway = undefined;
      assert.deepEqual(
        replies.map((res) => res.status),
        [200, 200, 200],
      );
      await assert.rejects(sendBinary(port, PATH, 'after'));
    });

    it('answers every held event with 503 when the drain timeout passes', async () => {
      gateway = await startTestGateway({ AFTERLIFE_GATEWAY_DRAIN_TIMEOUT: '200ms' });
      gateway.endpoints.setFunction(FN, []);
      const held = [sendBinary(gateway.eventsPort, PATH, 'h1'), sendBinary(gateway.eventsPort, PATH, 'h2')];
      const admin = gateway.adminPort;
      await waitFor(async () => pendingOf(await counts(admin), 'echo') === 2, 5000, 'pending=2');
      await gateway.close();
      gateway = undefined;
      const replies = await Promise.all(held);
      assert.deepEqual(
        replies.map((res) => res.status),
        [503, 503],
      );
      const first = replies[0];
      assert.ok(first);
      assert.equal(((await first.json()) as { error: string }).error, 'shutting_down');
    });
  });
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
