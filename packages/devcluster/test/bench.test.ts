import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BENCH_JSON_ENV,
  type BenchEnvironment,
  type BenchResult,
  type BenchRun,
  benchRow,
  benchTable,
  compareNotes,
  formatNumber,
  writeBenchResult,
} from '../src/bench.ts';

const environment: BenchEnvironment = {
  node: 'v24.0.0',
  platform: 'linux',
  arch: 'x64',
  hostname: 'here',
  cpus: 2,
  cpuModel: 'Some CPU',
  memoryMiB: 4096,
  loadAverage: [0.1, 0.2, 0.3],
};

const gateway = (rate: number, heldBytes: number): BenchResult => ({
  component: 'gateway',
  environment,
  rows: [
    benchRow('throughput vs direct', rate, 'events/s', 'higher', { name: 'direct to receiver', value: 10_000 }),
    benchRow('throughput vs bare proxy', rate, 'events/s', 'higher', { name: 'bare Node.js proxy', value: 4000 }),
    benchRow('10k held: RSS per request', heldBytes, 'B', 'lower'),
  ],
});

const run = (results: BenchResult[], env = environment): BenchRun => ({
  version: 1,
  startedAt: '2025-01-01T00:00:00.000Z',
  finishedAt: '2025-01-01T00:10:00.000Z',
  commit: 'abc',
  environment: env,
  results,
  failed: [],
});

const cells = (line: string | undefined) =>
  (line ?? '')
    .split('|')
    .slice(1, -1)
    .map((cell) => cell.trim());

describe('bench results', () => {
  it('fills in the ratio to the baseline, and none without a usable baseline', () => {
    assert.deepEqual(benchRow('p99', 3, 'ms', 'lower', { name: 'no-op', value: 2 }), {
      name: 'p99',
      value: 3,
      unit: 'ms',
      better: 'lower',
      baseline: 'no-op',
      baselineValue: 2,
      ratio: 1.5,
    });
    assert.equal(benchRow('held', 10, 'B', 'lower').ratio, null);
    assert.equal(benchRow('held', 10, 'B', 'lower').baseline, null);
    assert.equal(benchRow('x', 1, 'ms', 'lower', { name: 'zero', value: 0 }).ratio, null);
    assert.equal(benchRow('x', Number.NaN, 'ms', 'lower', { name: 'b', value: 1 }).ratio, null);
  });

  it('formats numbers to about three significant digits', () => {
    assert.deepEqual([12_345.6, 123.4, 12.34, 1.234, 0.1234, Number.NaN, null].map(formatNumber), [
      '12,346',
      '123',
      '12.3',
      '1.23',
      '0.123',
      '—',
      '—',
    ]);
  });

  it('prints one aligned table with value, baseline and ratio per row', () => {
    const lines = benchTable([gateway(2000, 13_800)]).split('\n');
    assert.equal(lines.length, 5);
    assert.deepEqual(cells(lines[0]), ['component', 'measure', 'value', 'baseline', 'ratio', 'better']);
    assert.deepEqual(cells(lines[2]), [
      'gateway',
      'throughput vs direct',
      '2,000 events/s',
      'direct to receiver: 10,000 events/s',
      '0.20×',
      'higher',
    ]);
    assert.deepEqual(cells(lines[3]).slice(3, 5), ['bare Node.js proxy: 4,000 events/s', '0.50×']);
    assert.deepEqual(cells(lines[4]).slice(2, 5), ['13,800 B', '—', '—']);
    assert.equal(new Set(lines.map((line) => line.length)).size, 1, 'every line is as wide as the others');
  });

  it('puts the previous run next to each row (matched by component and measure, whatever the baseline is called): its ratio, its value when there is no baseline', () => {
    const webhook: BenchResult = {
      component: 'webhook',
      environment,
      rows: [benchRow('p99', 1, 'ms', 'lower', { name: 'no-op', value: 1 })],
    };
    const old = gateway(2000, 13_800);
    const renamed = {
      ...old,
      rows: old.rows.map((row) => (row.baseline === null ? row : { ...row, baseline: `${row.baseline} (renamed)` })),
    };
    const table = benchTable([gateway(3200, 9000), webhook], run([renamed])).split('\n');
    assert.equal(cells(table[0]).at(-1), 'previous run');
    assert.deepEqual(
      table.slice(2).map((line) => cells(line).at(-1)),
      ['0.20×', '0.50×', '13,800 B', '(not measured)'],
    );
    assert.deepEqual(cells(table[2]).at(-3), '0.32×');
  });

  it('notes a previous run on another machine and benches it had that this one lacks', () => {
    const other = { ...environment, hostname: 'there', cpus: 8 };
    const webhook: BenchResult = { component: 'webhook', environment, rows: [] };
    const notes = compareNotes(run([gateway(1, 1)]), run([gateway(1, 1), webhook], other));
    assert.equal(notes.length, 2);
    assert.match(notes[0] ?? '', /another machine.*compare ratios, not values/);
    assert.equal(notes[1], 'measured only in the previous run: webhook');
    assert.deepEqual(compareNotes(run([gateway(1, 1)]), run([gateway(2, 2)])), []);
  });

  it('refuses two rows of one component with the same measure', () => {
    const row = benchRow('p50', 1, 'ms', 'lower');
    assert.throws(() => writeBenchResult('scaler', [row, row]), /row names must be unique, "p50" twice/);
  });

  it(`writes the result to $${BENCH_JSON_ENV} only when it is set`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bench-test-'));
    const saved = process.env[BENCH_JSON_ENV];
    try {
      delete process.env[BENCH_JSON_ENV];
      writeBenchResult('scaler', []); // no file, no error
      const file = join(dir, 'scaler.json');
      process.env[BENCH_JSON_ENV] = file;
      writeBenchResult('scaler', [benchRow('p50', 0.2, 'ms', 'lower', { name: 'empty handler', value: 0.1 })]);
      const written = JSON.parse(await readFile(file, 'utf8')) as BenchResult;
      assert.equal(written.component, 'scaler');
      assert.equal(written.rows[0]?.ratio, 2);
      assert.equal(written.environment.node, process.version);
    } finally {
      if (saved === undefined) delete process.env[BENCH_JSON_ENV];
      else process.env[BENCH_JSON_ENV] = saved;
      await rm(dir, { recursive: true, force: true });
    }
  });
});
