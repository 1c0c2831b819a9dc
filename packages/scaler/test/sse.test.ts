import assert from 'node:assert/strict';
import { CountsAggregator } from '../src/aggregate.ts';
import { GatewayWatcher, SseParser } from '../src/gateways.ts';
import { counts, FakeGateway, silentLogger, waitFor } from './helpers.ts';

describe('SSE parser', () => {
  it('parses events split across chunks with LF, CRLF and CR line ends', () => {
    const events: [string, string][] = [];
    const parser = new SseParser((event, data) => events.push([event, data]));
    parser.push(': comment\nevent: counts\nda');
    parser.push('ta: {"a":1}\n\n');
    parser.push('event: counts\r\ndata: line1\r\ndata: line2\r\n\r');
    parser.push('\n');
    parser.push('data: plain\r\r');
    parser.push('event: empty\n\n');
    parser.push('data\n\n');
    assert.deepEqual(events, [
      ['counts', '{"a":1}'],
      ['counts', 'line1\nline2'],
      ['message', 'plain'],
      ['message', ''],
    ]);
  });
});

describe('gateway watcher (real HTTP)', function () {
  this.timeout(15_000);
  let gateway: FakeGateway;
  let watcher: GatewayWatcher | undefined;
  afterEach(async () => {
    await watcher?.stop();
    watcher = undefined;
    await gateway?.close();
  });

  function watch(aggregator: CountsAggregator): GatewayWatcher {
    watcher = new GatewayWatcher({
      source: gateway.url,
      aggregator,
      pollIntervalMs: 50,
      heartbeatTimeoutMs: 1000,
      logger: silentLogger,
    });
    watcher.start();
    return watcher;
  }

  it('follows the stream, re-connects when it drops, and sees each change at once', async () => {
    gateway = await FakeGateway.start('gw', { heartbeatMs: 200 });
    const aggregator = new CountsAggregator({ staleAfterMs: 2000 });
    const w = watch(aggregator);
    await waitFor('stream up', () => w.streaming);
    const pollsWhileStreaming = gateway.polls;
    gateway.set([counts('ns', 'f', { pending: 3 })]);
    await waitFor('pending 3', () => aggregator.totals('ns/f').pending === 3, 1000, 2);
    gateway.dropStreams();
    await waitFor('re-connected', () => gateway.streamConnects >= 2 && w.streaming, 5000);
    gateway.set([counts('ns', 'f', { pending: 1 })]);
    await waitFor('pending 1', () => aggregator.totals('ns/f').pending === 1, 1000, 2);
    // While the stream is up, no polling beyond the odd one racing the first connect.
    assert.ok(gateway.polls - pollsWhileStreaming <= 2, `polled ${gateway.polls - pollsWhileStreaming} times`);
  });

  it('falls back to polling /v1/counts when the stream is unavailable', async () => {
    gateway = await FakeGateway.start('gw');
    gateway.streamEnabled = false;
    const aggregator = new CountsAggregator({ staleAfterMs: 2000 });
    const w = watch(aggregator);
    gateway.set([counts('ns', 'f', { inFlight: 2 })]);
    await waitFor('polled counts', () => aggregator.totals('ns/f').inFlight === 2);
    await waitFor('several polls', () => gateway.polls >= 3);
    assert.equal(w.streaming, false);
    gateway.streamEnabled = true;
    await waitFor('stream up after backoff', () => w.streaming, 8000);
  });

  it('drops the stream when heartbeats stop, and ignores invalid snapshots', async () => {
    gateway = await FakeGateway.start('gw', { heartbeatMs: 60_000 });
    const aggregator = new CountsAggregator({ staleAfterMs: 2000 });
    const w = watch(aggregator);
    await waitFor('stream up', () => w.streaming);
    await waitFor('watchdog re-connect', () => gateway.streamConnects >= 2, 4000);
    gateway.functions = [{ namespace: 'ns', name: '', pending: -1 } as never];
    gateway.streamEnabled = false;
    gateway.dropStreams();
    const before = gateway.polls;
    await waitFor('polls of an invalid document', () => gateway.polls >= before + 2);
    assert.equal(aggregator.totals('ns/').gateways, 0);
  });
});
