import assert from 'node:assert/strict';
import { type CompleteReply, MAX_HEAD_BYTES, ReplyFormatError, ReplyParser } from '../src/reply-parser.ts';

/** Feeds `text` in pieces of `step` bytes (1 = byte by byte); returns the reply once complete. */
function parse(
  text: string | Buffer,
  step = Number.POSITIVE_INFINITY,
): { reply: CompleteReply | undefined; parser: ReplyParser } {
  const parser = new ReplyParser();
  const bytes = Buffer.isBuffer(text) ? text : Buffer.from(text, 'latin1');
  let reply: CompleteReply | undefined;
  for (let at = 0; at < bytes.length && reply === undefined; at += step) {
    reply = parser.push(bytes.subarray(at, Math.min(bytes.length, at + step)));
  }
  return { reply, parser };
}

function refused(text: string): string {
  try {
    parse(text);
  } catch (error) {
    assert.ok(error instanceof ReplyFormatError, String(error));
    return error.message;
  }
  assert.fail('expected the reply to be refused');
}

describe('ReplyParser', () => {
  it('reads a Content-Length reply, header names lower-cased and values trimmed, whether it arrives at once or byte by byte', () => {
    const text =
      'HTTP/1.1 201 Created\r\nContent-Type:  application/json \r\nCE-Id: r-1\r\nContent-Length: 7\r\n\r\n{"a":1}';
    for (const step of [Number.POSITIVE_INFINITY, 1, 5]) {
      const { reply } = parse(text, step);
      assert.ok(reply, `step ${step}`);
      assert.equal(reply.status, 201);
      assert.deepEqual(reply.headers, { 'content-type': 'application/json', 'ce-id': 'r-1', 'content-length': '7' });
      assert.equal(reply.body.toString(), '{"a":1}');
      assert.equal(reply.keepAlive, true);
      assert.equal(reply.trailingBytes, false);
    }
  });

  it('joins repeated fields as Node does: set-cookie as a list, cookie with "; ", first value wins for single-valued ones', () => {
    const { reply } = parse(
      'HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nX-Multi: 1\r\nx-multi: 2\r\nCookie: c=3\r\nCookie: d=4\r\n' +
        'Content-Type: text/plain\r\nContent-Type: text/html\r\nContent-Length: 0\r\n\r\n',
    );
    assert.deepEqual(reply?.headers, {
      'set-cookie': ['a=1', 'b=2'],
      'x-multi': '1, 2',
      cookie: 'c=3; d=4',
      'content-type': 'text/plain',
      'content-length': '0',
    });
  });

  it('reads a chunked reply (extensions, trailers, split anywhere)', () => {
    const text =
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n';
    for (const step of [Number.POSITIVE_INFINITY, 1, 3, 17]) {
      const { reply } = parse(text, step);
      assert.equal(reply?.body.toString(), 'hello, world', `step ${step}`);
      assert.equal(reply?.keepAlive, true);
      assert.equal(reply?.trailingBytes, false);
    }
    assert.equal(parse('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n').reply?.body.length, 0);
  });

  it('reads a reply without length to the end of the connection, which is then not reused', () => {
    const parser = new ReplyParser();
    assert.equal(parser.push(Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nsome ')), undefined);
    assert.equal(parser.push(Buffer.from('text')), undefined);
    const reply = parser.end();
    assert.equal(reply?.body.toString(), 'some text');
    assert.equal(reply?.keepAlive, false);
  });

  it('has no body for 204 and 304, and skips interim 1xx answers', () => {
    assert.equal(parse('HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n').reply?.body.length, 0);
    assert.equal(parse('HTTP/1.1 304 Not Modified\r\n\r\n').reply?.status, 304);
    const { reply } = parse(
      'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
      4,
    );
    assert.equal(reply?.status, 200);
    assert.equal(reply?.body.toString(), 'ok');
    assert.equal(reply?.headers.link, undefined);
  });

  it('decides keep-alive from the version and Connection, and reads the Keep-Alive timeout hint', () => {
    const keep = (head: string) => parse(`${head}\r\nContent-Length: 0\r\n\r\n`).reply?.keepAlive;
    assert.equal(keep('HTTP/1.1 200 OK\r\nConnection: close'), false);
    assert.equal(keep('HTTP/1.1 200 OK\r\nConnection: Upgrade, Close'), false);
    assert.equal(keep('HTTP/1.0 200 OK'), false);
    assert.equal(keep('HTTP/1.0 200 OK\r\nConnection: keep-alive'), true);
    assert.equal(keep('HTTP/1.1 200'), true, 'no reason phrase');
    assert.equal(
      parse('HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5, max=100\r\nContent-Length: 0\r\n\r\n').reply?.idleTimeoutSeconds,
      5,
    );
    // Both framings: the length is ignored, and the connection must not carry another request.
    const both = parse(
      'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n',
    ).reply;
    assert.equal(both?.body.toString(), 'ok');
    assert.equal(both?.keepAlive, false);
  });

  it('flags bytes after the reply (the connection is then unusable)', () => {
    assert.equal(parse('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n').reply?.trailingBytes, true);
    assert.equal(parse('HTTP/1.1 204 No Content\r\n\r\nx').reply?.trailingBytes, true);
  });

  it('refuses what it cannot frame or trust', () => {
    assert.match(refused('HTTP/2 200 OK\r\n\r\n'), /invalid status line/);
    assert.match(refused('HTTP/1.1 20 OK\r\n\r\n'), /invalid status line/);
    assert.match(refused('HTTP/1.1 101 Switching Protocols\r\n\r\n'), /protocol switch/);
    assert.match(refused('HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n'), /folded/);
    assert.match(refused('HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n'), /invalid header name/);
    assert.match(refused('HTTP/1.1 200 OK\r\nX: a\u0001b\r\n\r\n'), /invalid characters/);
    assert.match(refused('HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n'), /conflicting content-length/);
    assert.match(
      refused('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n'),
      /conflicting content-length/,
    );
    assert.match(refused('HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n'), /invalid content-length/);
    assert.match(refused('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'), /invalid chunk size/);
    assert.match(refused('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokay\r\n'), /longer than its size/);
    assert.match(refused(`HTTP/1.1 200 OK\r\nX: ${'y'.repeat(MAX_HEAD_BYTES)}`), /reply head over/);
  });

  it('tells whether any byte, and the whole head, arrived (a cut reply is then not a stale connection)', () => {
    const parser = new ReplyParser();
    assert.equal(parser.started, false);
    parser.push(Buffer.from('HTTP/1.1 200 OK\r\n'));
    assert.deepEqual([parser.started, parser.headReceived], [true, false]);
    parser.push(Buffer.from('Content-Length: 5\r\n\r\nab'));
    assert.equal(parser.headReceived, true);
    assert.equal(parser.end(), undefined, 'a Content-Length body cut short is no reply');
    parser.reset();
    assert.deepEqual([parser.started, parser.headReceived], [false, false]);
  });
});
