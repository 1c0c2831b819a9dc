// Benchmarks' machine-readable results, and the root `npm run bench` that runs every component
// bench in sequence, prints one table of ratios against the baselines each bench measured in
// the same run, and writes them to one JSON file two runs can be compared with.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, hostname, loadavg, tmpdir, totalmem } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { PACKAGE_ROOT } from './paths.ts';

/** When set, a bench writes its `BenchResult` as JSON to this file (besides its human output). */
export const BENCH_JSON_ENV = 'AFTERLIFE_BENCH_JSON';

/** One measured value, next to the baseline it was measured against in the same run (if any). */
export interface BenchRow {
  /** What was measured, e.g. `throughput (c=32)`; unique within the component (runs are compared by it). */
  readonly name: string;
  readonly value: number;
  /** `ms`, `s`, `µs`, `B`, `MiB`, `events/s`, … — the baseline's value is in the same unit. */
  readonly unit: string;
  /** Which way is good for `value` (and so for `ratio`). */
  readonly better: 'lower' | 'higher';
  /** What the baseline is, e.g. `bare Node.js proxy`; null for a row with nothing to compare to. */
  readonly baseline: string | null;
  readonly baselineValue: number | null;
  /** `value / baselineValue`; null without a baseline (or when the baseline is 0 or not a number). */
  readonly ratio: number | null;
}

export interface BenchEnvironment {
  readonly node: string;
  readonly platform: string;
  readonly arch: string;
  readonly hostname: string;
  readonly cpus: number;
  readonly cpuModel: string;
  readonly memoryMiB: number;
  /** 1, 5 and 15 minute load averages when the bench finished: was the machine quiet? */
  readonly loadAverage: readonly number[];
}

/** What one bench writes to `$AFTERLIFE_BENCH_JSON`. */
export interface BenchResult {
  readonly component: string;
  readonly rows: readonly BenchRow[];
  readonly environment: BenchEnvironment;
}

/** `reports/bench.json`: every bench of one `npm run bench`. */
export interface BenchRun {
  readonly version: 1;
  readonly startedAt: string;
  readonly finishedAt: string;
  /** `git rev-parse HEAD` (with `-dirty` when the work tree had changes), or null outside git. */
  readonly commit: string | null;
  readonly environment: BenchEnvironment;
  readonly results: readonly BenchResult[];
  /** Benches that exited non-zero or wrote no result; their rows are missing from `results`. */
  readonly failed: readonly { readonly component: string; readonly reason: string }[];
}

/** A row; with `baseline` the ratio `value / baseline.value` is filled in. */
export function benchRow(
  name: string,
  value: number,
  unit: string,
  better: 'lower' | 'higher',
  baseline?: { readonly name: string; readonly value: number },
): BenchRow {
  const ratio =
    baseline !== undefined && Number.isFinite(value) && Number.isFinite(baseline.value) && baseline.value !== 0
      ? value / baseline.value
      : null;
  return {
    name,
    value,
    unit,
    better,
    baseline: baseline?.name ?? null,
    baselineValue: baseline?.value ?? null,
    ratio,
  };
}

export function benchEnvironment(): BenchEnvironment {
  const cpuList = cpus();
  return {
    node: process.version,
    platform: process.platform,
    arch: process.arch,
    hostname: hostname(),
    cpus: cpuList.length,
    cpuModel: cpuList[0]?.model.trim() ?? 'unknown',
    memoryMiB: Math.round(totalmem() / 2 ** 20),
    loadAverage: loadavg().map((n) => Math.round(n * 100) / 100),
  };
}

/**
 * Writes the bench's result to `$AFTERLIFE_BENCH_JSON` when that is set (as `npm run bench`
 * does); does nothing otherwise, so a bench run alone only prints its own table.
 */
export function writeBenchResult(component: string, rows: readonly BenchRow[]): void {
  const names = rows.map((row) => row.name);
  const twice = names.filter((name, index) => names.indexOf(name) !== index);
  if (twice.length > 0) throw new Error(`${component} bench: row names must be unique, "${twice.join('", "')}" twice`);
  const file = process.env[BENCH_JSON_ENV];
  if (!file) return;
  const result: BenchResult = { component, rows, environment: benchEnvironment() };
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
}

/** Numbers to about three significant digits, thousands grouped; `—` for a missing one. */
export function formatNumber(value: number | null): string {
  if (value === null || !Number.isFinite(value)) return '—';
  const abs = Math.abs(value);
  if (abs >= 100) return Math.round(value).toLocaleString('en-US');
  if (abs >= 10) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  return value.toFixed(3);
}

const formatRatio = (ratio: number | null): string => (ratio === null ? '—' : `${ratio.toFixed(2)}×`);

const rowKey = (component: string, row: Pick<BenchRow, 'name'>): string => `${component}\u0000${row.name}`;

/**
 * One table (Markdown, aligned) of every row of every result. With `previous` (an earlier run)
 * a last column shows that run's ratio for the same row — or its value, for a row without a
 * baseline — so the two can be read side by side.
 */
export function benchTable(results: readonly BenchResult[], previous?: BenchRun): string {
  const before = new Map<string, BenchRow>();
  for (const result of previous?.results ?? []) {
    for (const row of result.rows) before.set(rowKey(result.component, row), row);
  }
  const header = ['component', 'measure', 'value', 'baseline', 'ratio', 'better'];
  if (previous !== undefined) header.push('previous run');
  const lines = results.flatMap((result) =>
    result.rows.map((row) => {
      const cells = [
        result.component,
        row.name,
        `${formatNumber(row.value)} ${row.unit}`,
        row.baseline === null ? '—' : `${row.baseline}: ${formatNumber(row.baselineValue)} ${row.unit}`,
        formatRatio(row.ratio),
        row.better,
      ];
      if (previous !== undefined) {
        const old = before.get(rowKey(result.component, row));
        cells.push(
          old === undefined
            ? '(not measured)'
            : row.baseline === null
              ? `${formatNumber(old.value)} ${old.unit}`
              : formatRatio(old.ratio),
        );
      }
      return cells;
    }),
  );
  const widths = header.map((title, column) =>
    Math.max(title.length, ...lines.map((cells) => cells[column]?.length ?? 0)),
  );
  const render = (cells: readonly string[]) =>
    `| ${cells.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join(' | ')} |`;
  return [render(header), render(widths.map((width) => '-'.repeat(width))), ...lines.map(render)].join('\n');
}

/** Notes worth printing under a comparison: machine differences, benches one run lacks. */
export function compareNotes(current: BenchRun, previous: BenchRun): string[] {
  const notes: string[] = [];
  const a = previous.environment;
  const b = current.environment;
  if (a.cpuModel !== b.cpuModel || a.cpus !== b.cpus || a.hostname !== b.hostname) {
    notes.push(
      `the previous run was on another machine (${a.hostname}, ${a.cpus} × ${a.cpuModel}; now ${b.hostname}, ${b.cpus} × ${b.cpuModel}): compare ratios, not values`,
    );
  }
  const now = new Set(current.results.map((r) => r.component));
  const gone = previous.results.map((r) => r.component).filter((c) => !now.has(c));
  if (gone.length > 0) notes.push(`measured only in the previous run: ${gone.join(', ')}`);
  return notes;
}

/** Reads and checks a `reports/bench.json` written by an earlier run. */
export function readBenchRun(file: string): BenchRun {
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<BenchRun>;
  if (parsed.version !== 1 || !Array.isArray(parsed.results) || parsed.environment === undefined) {
    throw new Error(`${file} is not a bench run (reports/bench.json, version 1)`);
  }
  return parsed as BenchRun;
}

/** A component bench: an npm script of a workspace package. */
export interface BenchSpec {
  readonly component: string;
  /** Package directory relative to the repository root. */
  readonly dir: string;
  readonly script: string;
}

/** Every component bench `npm run bench` runs, in order. */
export const BENCHES: readonly BenchSpec[] = [
  { component: 'webhook', dir: 'packages/webhook', script: 'bench' },
  { component: 'gateway', dir: 'packages/gateway', script: 'bench' },
  { component: 'scaler', dir: 'packages/scaler', script: 'bench' },
  // Start their own cluster with one real node (root needed).
  { component: 'node', dir: 'packages/devcluster', script: 'bench:node' },
  { component: 'cold-start', dir: 'conformance', script: 'bench' },
  // The longest (N = 1, 100, 1,000 Knative Services): BENCH_SCALE_COUNTS narrows it.
  { component: 'scale', dir: 'conformance', script: 'bench:scale' },
];

/** The repository root (the devcluster package is `packages/devcluster`). */
export const REPO_ROOT = resolve(PACKAGE_ROOT, '..', '..');

/** HEAD, with `-dirty` when the work tree has changes (what reports and image labels record). */
export function gitCommit(): string | null {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
    return `${git('rev-parse', 'HEAD')}${git('status', '--porcelain') === '' ? '' : '-dirty'}`;
  } catch {
    return null;
  }
}

function runScript(spec: BenchSpec, jsonFile: string): Promise<string | undefined> {
  return new Promise((done) => {
    const child = spawn('pnpm', ['run', '--silent', spec.script], {
      cwd: join(REPO_ROOT, spec.dir),
      stdio: 'inherit',
      env: { ...process.env, [BENCH_JSON_ENV]: jsonFile },
    });
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    const finish = (reason: string | undefined) => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      done(reason);
    };
    child.on('error', (error) => finish(`could not start pnpm: ${error.message}`));
    child.on('close', (code, signal) =>
      finish(code === 0 ? undefined : `exited with ${signal ?? `code ${code}`} (its output is above)`),
    );
  });
}

export interface RunBenchesOptions {
  /** Components to run (default: all of `BENCHES`). */
  readonly only?: readonly string[];
  /** An earlier run's JSON to print next to this one. */
  readonly compare?: BenchRun;
  /** Where to write the run (default `reports/bench.json` in the repository). */
  readonly out?: string;
  readonly print?: (text: string) => void;
}

/** Runs the benches one after another; returns the run (also written to `out`). */
export async function runBenches(options: RunBenchesOptions = {}): Promise<{ run: BenchRun; file: string }> {
  const print = options.print ?? ((text: string) => process.stdout.write(`${text}\n`));
  const specs = options.only === undefined ? BENCHES : BENCHES.filter((b) => options.only?.includes(b.component));
  const startedAt = new Date().toISOString();
  const scratch = mkdtempSync(join(tmpdir(), 'afterlife-bench-'));
  const results: BenchResult[] = [];
  const failed: { component: string; reason: string }[] = [];
  try {
    for (const [index, spec] of specs.entries()) {
      print(`\n=== bench ${index + 1}/${specs.length}: ${spec.component} (${spec.dir}: pnpm run ${spec.script}) ===`);
      const jsonFile = join(scratch, `${spec.component}.json`);
      const started = performance.now();
      const reason = await runScript(spec, jsonFile);
      print(`=== ${spec.component}: ${((performance.now() - started) / 1000).toFixed(0)} s ===`);
      if (reason !== undefined) {
        failed.push({ component: spec.component, reason });
        continue;
      }
      try {
        results.push(JSON.parse(readFileSync(jsonFile, 'utf8')) as BenchResult);
      } catch {
        failed.push({ component: spec.component, reason: `wrote no result to $${BENCH_JSON_ENV}` });
      }
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  const run: BenchRun = {
    version: 1,
    startedAt,
    finishedAt: new Date().toISOString(),
    commit: gitCommit(),
    environment: benchEnvironment(),
    results,
    failed,
  };
  const file = options.out ?? join(REPO_ROOT, 'reports', 'bench.json');
  mkdirSync(resolve(file, '..'), { recursive: true });
  writeFileSync(file, `${JSON.stringify(run, null, 2)}\n`);

  const loads = results.map((r) => `${r.component} ${r.environment.loadAverage[0] ?? '?'}`).join(', ');
  print(
    `\nbench summary — ratio = value / baseline, both measured in the same run` +
      ` (${run.environment.cpus} × ${run.environment.cpuModel}, Node ${run.environment.node}; 1-min load after each: ${loads || 'none'})`,
  );
  if (options.compare !== undefined) {
    print(`previous run: ${options.compare.startedAt} (commit ${options.compare.commit ?? 'unknown'})`);
  }
  print(`\n${benchTable(results, options.compare)}\n`);
  if (options.compare !== undefined) for (const note of compareNotes(run, options.compare)) print(`note: ${note}`);
  for (const { component, reason } of failed) print(`FAILED: ${component} ${reason}`);
  print(`wrote ${relative(process.cwd(), file) || file}`);
  return { run, file };
}
