import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isRetryable, sendWithRetry } from '../src/load.ts';

describe('the retrying sender', () => {
  let server: Server;
  let url = '';
  const seen: string[] = [];
  let answers: number[] = [];
  before(async () => {
    server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const id = String(req.headers['ce-id']);
        seen.push(id);
        const status = answers.shift() ?? 200;
        if (status === -1) {
          req.socket.destroy();
          return;
        }
        res
          .writeHead(status, status === 200 ? { 'ce-echoid': id } : status === 503 ? { 'retry-after': '0' } : {})
          .end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/ns/x/fn/y`;
  });
  after(() => server.close());
  beforeEach(() => {
    seen.length = 0;
  });

  it('sends the same ce-id again after a reset and a 503 until acknowledged, and says how', async () => {
    answers = [-1, 503, 200];
    const outcome = await sendWithRetry({ url, workMs: 0 }, 'test', () => performance.now(), 10_000);
    assert.equal(outcome.status, 200);
    assert.equal(outcome.echoedId, outcome.id);
    assert.equal(outcome.attempts, 3);
    assert.deepEqual(
      outcome.failures?.map((f) => f.status),
      [0, 503],
    );
    assert.deepEqual(seen, [outcome.id, outcome.id, outcome.id], 'one id for every attempt');
  });

  it('does not retry an answer that is not retryable (a 400 is the sender’s fault)', async () => {
    answers = [400];
    const outcome = await sendWithRetry({ url, workMs: 0 }, 'test', () => performance.now(), 10_000);
    assert.equal(outcome.status, 400);
    assert.equal(outcome.attempts, 1);
    assert.equal(seen.length, 1);
  });

  it('gives up at the deadline with the last answer', async () => {
    answers = [503, 503, 503, 503, 503, 503, 503, 503];
    const outcome = await sendWithRetry({ url, workMs: 0 }, 'test', () => performance.now(), 400);
    assert.equal(outcome.status, 503);
    assert.ok((outcome.attempts ?? 0) >= 2 && (outcome.attempts ?? 0) <= 4, `attempts ${outcome.attempts}`);
    assert.ok(isRetryable(outcome));
  });
});
