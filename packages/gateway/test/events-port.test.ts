import assert from 'node:assert/strict';
import { request } from 'node:http';
import { gzipSync } from 'node:zlib';
import { functionOfPath } from '../src/http.ts';
import type { Gateway } from '../src/server.ts';
import { binaryHeaders, type Receiver, startReceiver, startTestGateway } from './helpers.ts';

const FN = { namespace: 'demo', name: 'echo' };

/** A raw request (node:http, so that the path and headers go out exactly as given). */
function send(
  port: number,
  options: { path: string; method?: string; headers?: Record<string, string | number>; body?: Buffer | string },
): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: options.path, method: options.method ?? 'POST', headers: options.headers ?? {} },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), headers: res.headers }),
        );
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

describe('events port (node:http, no framework)', function () {
  this.timeout(20_000);
  let gateway: Gateway;
  let target: Receiver;

  before(async () => {
    target = await startReceiver();
    gateway = await startTestGateway({ AFTERLIFE_GATEWAY_BODY_LIMIT: '1kb' });
    gateway.endpoints.setFunction(FN, [{ ip: '127.0.0.1', port: target.port }]);
  });
  after(async () => {
    await gateway.close();
    await target.close();
  });

  describe('paths', () => {
    it('names the function by /ns/<namespace>/fn/<name>: percent-decoded, any case, a trailing slash and a query allowed', () => {
      assert.deepEqual(functionOfPath('/ns/demo/fn/echo'), FN);
      assert.deepEqual(functionOfPath('/NS/demo/FN/echo/'), FN);
      assert.deepEqual(functionOfPath('/ns/demo/fn/echo?x=1'), FN);
      assert.deepEqual(functionOfPath('/ns/d%65mo/fn/ech%6F'), FN);
      assert.deepEqual(functionOfPath('http://gateway:8080/ns/demo/fn/echo'), FN, 'absolute-form');
      for (const other of [
        '/',
        '/ns/demo/fn',
        '/ns/demo/fn/echo/extra',
        '/ns//fn/echo',
        '/ns/demo/fn/echo//',
        'nonsense',
      ])
        assert.equal(functionOfPath(other), undefined, other);
      assert.throws(() => functionOfPath('/ns/demo/fn/%E0%A4%A'), { code: 'BAD_REQUEST' });
    });

    it('delivers to a path with a query and a trailing slash, answers 400 for an undecodable one and 404 elsewhere', async () => {
      const port = gateway.eventsPort;
      const headers = binaryHeaders('path-1');
      assert.equal((await send(port, { path: '/ns/demo/fn/echo/?via=test', headers, body: '{}' })).status, 200);
      const bad = await send(port, { path: '/ns/demo/fn/%FF', headers, body: '{}' });
      assert.equal(bad.status, 400);
      assert.equal((JSON.parse(bad.body) as { error: string }).error, 'bad_request');
      const elsewhere = await send(port, { path: '/nope', headers, body: '{}' });
      assert.deepEqual([elsewhere.status, (JSON.parse(elsewhere.body) as { error: string }).error], [404, 'not_found']);
      assert.match(String(elsewhere.headers['content-type']), /^application\/json; charset=utf-8$/);
    });
  });

  describe('bodies', () => {
    it('decodes a gzip body and delivers it as is (the limit applies to the decoded body)', async () => {
      const data = JSON.stringify({ zipped: true });
      const res = await send(gateway.eventsPort, {
        path: '/ns/demo/fn/echo',
        headers: { ...binaryHeaders('gz-1'), 'content-encoding': 'gzip' },
        body: gzipSync(data),
      });
      assert.equal(res.status, 200);
      const got = target.received.find((entry) => entry.headers['ce-id'] === 'gz-1');
      assert.equal(got?.body.toString(), data);
      assert.equal(got?.headers['content-encoding'], undefined);
      const bomb = await send(gateway.eventsPort, {
        path: '/ns/demo/fn/echo',
        headers: { ...binaryHeaders('gz-2'), 'content-encoding': 'gzip' },
        body: gzipSync('x'.repeat(4096)),
      });
      assert.equal(bomb.status, 413);
    });

    it('answers 415 for an unknown content encoding, 400 for a corrupt one', async () => {
      const unknown = await send(gateway.eventsPort, {
        path: '/ns/demo/fn/echo',
        headers: { ...binaryHeaders('enc-1'), 'content-encoding': 'compress' },
        body: 'x',
      });
      assert.deepEqual(
        [unknown.status, (JSON.parse(unknown.body) as { error: string }).error],
        [415, 'unsupported_encoding'],
      );
      const corrupt = await send(gateway.eventsPort, {
        path: '/ns/demo/fn/echo',
        headers: { ...binaryHeaders('enc-2'), 'content-encoding': 'gzip' },
        body: 'not gzip at all',
      });
      assert.deepEqual([corrupt.status, (JSON.parse(corrupt.body) as { error: string }).error], [400, 'bad_request']);
    });

    it('answers 413 for a body over the limit, declared or streamed, and keeps serving the connection', async () => {
      const big = 'y'.repeat(2048);
      const declared = await send(gateway.eventsPort, {
        path: '/ns/demo/fn/echo',
        headers: binaryHeaders('big-1'),
        body: big,
      });
      assert.deepEqual([declared.status, (JSON.parse(declared.body) as { error: string }).error], [413, 'too_large']);
      const streamed = await send(gateway.eventsPort, {
        path: '/ns/demo/fn/echo',
        headers: { ...binaryHeaders('big-2'), 'transfer-encoding': 'chunked' },
        body: big,
      });
      assert.equal(streamed.status, 413);
      assert.equal(
        (await send(gateway.eventsPort, { path: '/ns/demo/fn/echo', headers: binaryHeaders('small'), body: '{}' }))
          .status,
        200,
      );
      const metrics = await (await fetch(`http://127.0.0.1:${gateway.adminPort}/metrics`)).text();
      assert.match(metrics, /afterlife_gateway_events_rejected_total\{reason="too_large"[^}]*\} 3\n/);
    });
  });
});
