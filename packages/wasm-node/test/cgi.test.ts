import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { before, describe, it } from 'mocha';
import {
  buildEchoWasm,
  CgiProtocolError,
  cgiEnvironment,
  invokeModule,
  parseCgiResponse,
  TRAP_EXIT_CODE,
} from '../src/index.ts';
import { exitModule, trapModule } from './helpers.ts';

describe('CGI over WASI (the wasm-node ABI)', function () {
  this.timeout(180_000);
  let echo: WebAssembly.Module;

  before(async () => {
    const built = await buildEchoWasm();
    echo = await WebAssembly.compile(await readFile(built.path));
  });

  describe('cgiEnvironment', () => {
    it('maps the request to RFC 3875 meta-variables', () => {
      const env = cgiEnvironment({
        method: 'post',
        url: '/a/b?workMs=5&x=1',
        headers: {
          'ce-id': '1',
          'content-type': 'application/json',
          'content-length': '2',
          connection: 'close',
          accept: ['a', 'b'],
        },
        body: Buffer.from('{}'),
        serverPort: 9000,
      });
      assert.equal(env.REQUEST_METHOD, 'POST');
      assert.equal(env.PATH_INFO, '/a/b');
      assert.equal(env.QUERY_STRING, 'workMs=5&x=1');
      assert.equal(env.CONTENT_TYPE, 'application/json');
      assert.equal(env.CONTENT_LENGTH, '2');
      assert.equal(env.HTTP_CE_ID, '1');
      assert.equal(env.HTTP_ACCEPT, 'a, b');
      assert.equal(env.HTTP_CONNECTION, undefined, 'hop-by-hop headers are dropped');
      assert.equal(env.HTTP_CONTENT_LENGTH, undefined);
      assert.equal(env.SERVER_PORT, '9000');
      assert.equal(env.GATEWAY_INTERFACE, 'CGI/1.1');
    });
  });

  describe('parseCgiResponse', () => {
    it('reads Status, headers and body (CRLF and LF)', () => {
      const crlf = parseCgiResponse(
        Buffer.from('Status: 201 Created\r\nContent-Type: text/plain\r\nX-A: 1\r\n\r\nhello'),
      );
      assert.equal(crlf.status, 201);
      assert.deepEqual(crlf.headers, [
        ['Content-Type', 'text/plain'],
        ['X-A', '1'],
      ]);
      assert.equal(crlf.body.toString(), 'hello');
      const lf = parseCgiResponse(Buffer.from('Content-Type: text/plain\n\nbody\n\nmore'));
      assert.equal(lf.status, 200);
      assert.equal(lf.body.toString(), 'body\n\nmore');
      assert.equal(parseCgiResponse(Buffer.from('Location: /x\n\n')).status, 302);
    });

    it('rejects malformed output', () => {
      assert.throws(() => parseCgiResponse(Buffer.alloc(0)), CgiProtocolError);
      assert.throws(() => parseCgiResponse(Buffer.from('Content-Type: text/plain')), /no blank line/);
      assert.throws(() => parseCgiResponse(Buffer.from('garbage line\n\n')), /bad CGI header/);
      assert.throws(() => parseCgiResponse(Buffer.from('Status: abc\nContent-Type: a\n\n')), /bad CGI Status/);
      assert.throws(() => parseCgiResponse(Buffer.from('X-A: 1\n\nbody')), /no Content-Type/);
    });
  });

  describe('invokeModule with the reference function', () => {
    const call = (request: Partial<Parameters<typeof invokeModule>[1]>) =>
      invokeModule(
        echo,
        { method: 'GET', url: '/', headers: {}, body: Buffer.alloc(0), ...request },
        { args: ['/echo.wasm'] },
      );

    it('answers GET /healthz', () => {
      const result = call({ url: '/healthz' });
      assert.equal(result.kind, 'response');
      if (result.kind !== 'response') return;
      assert.equal(result.response.status, 200);
      assert.equal(result.response.body.toString(), 'ok');
    });

    it('replies to a binary-mode CloudEvent with a reply CloudEvent echoing the id', () => {
      const result = call({
        method: 'POST',
        headers: {
          'ce-id': 'abc-1',
          'ce-source': '/test',
          'ce-type': 'dev.test.ping',
          'ce-specversion': '1.0',
          'content-type': 'application/json',
        },
        body: Buffer.from('{"n":42}'),
      });
      assert.equal(result.kind, 'response');
      if (result.kind !== 'response') return;
      const headers = Object.fromEntries(result.response.headers.map(([k, v]) => [k.toLowerCase(), v]));
      assert.equal(result.response.status, 200);
      assert.equal(headers['ce-type'], 'dev.afterlife.echo.reply');
      assert.equal(headers['ce-source'], '/afterlife/echo');
      assert.equal(headers['ce-specversion'], '1.0');
      assert.equal(headers['ce-echoid'], 'abc-1');
      assert.equal(headers['ce-id'], 'abc-1-reply');
      const data = JSON.parse(result.response.body.toString());
      assert.deepEqual(data, { id: 'abc-1', source: '/test', type: 'dev.test.ping', data: { n: 42 }, workMs: 0 });
    });

    it('accepts structured mode and simulated work from the query', () => {
      const result = call({
        method: 'POST',
        url: '/?workMs=20',
        headers: { 'content-type': 'application/cloudevents+json' },
        body: Buffer.from(JSON.stringify({ id: 's1', source: '/s', type: 't', specversion: '1.0', data: 'hi' })),
      });
      assert.equal(result.kind, 'response');
      if (result.kind !== 'response') return;
      assert.equal(result.response.status, 200);
      assert.deepEqual(JSON.parse(result.response.body.toString()), {
        id: 's1',
        source: '/s',
        type: 't',
        data: 'hi',
        workMs: 20,
      });
    });

    it('rejects requests that are not CloudEvents, bad work values, other paths and methods', () => {
      const missing = call({ method: 'POST', headers: { 'ce-id': 'x' }, body: Buffer.from('{}') });
      assert.ok(missing.kind === 'response' && missing.response.status === 400);
      assert.match(missing.response.body.toString(), /missing required attribute\(s\) source, specversion, type/);
      const badWork = call({
        method: 'POST',
        headers: { 'ce-id': 'x', 'ce-source': 's', 'ce-type': 't', 'ce-specversion': '1.0', 'ce-workms': 'lots' },
      });
      assert.ok(badWork.kind === 'response' && badWork.response.status === 400);
      const notFound = call({ url: '/nope' });
      assert.ok(notFound.kind === 'response' && notFound.response.status === 404);
      const method = call({ method: 'GET', url: '/' });
      assert.ok(method.kind === 'response' && method.response.status === 405);
    });
  });

  describe('crashes', () => {
    it('reports a trap with exit code 134', async () => {
      const result = invokeModule(await WebAssembly.compile(trapModule()), {
        method: 'GET',
        url: '/',
        headers: {},
        body: Buffer.alloc(0),
      });
      assert.equal(result.kind, 'trap');
      assert.equal(result.kind === 'trap' && result.exitCode, TRAP_EXIT_CODE);
      assert.match(result.kind === 'trap' ? result.message : '', /unreachable/);
    });

    it('reports a non-zero proc_exit as an exit', async () => {
      const result = invokeModule(await WebAssembly.compile(exitModule(7)), {
        method: 'GET',
        url: '/',
        headers: {},
        body: Buffer.alloc(0),
      });
      assert.deepEqual(result, { kind: 'exit', exitCode: 7, stderr: '' });
    });
  });
});
