import { readFile } from 'node:fs/promises';
import { errorMessage, UsageError } from '@afterlife/core';
import type { HeadlineFigure, PreviousRun } from './render.ts';
import { type ConformanceResult, conformanceHeadline } from './report.ts';

const UNITS = new Set(['ms', 's', 'count', 'events', 'replicas', 'events/s', 'percent']);

function isFigure(value: unknown): value is HeadlineFigure {
  const f = value as Partial<HeadlineFigure> | null;
  return (
    typeof f === 'object' &&
    f !== null &&
    typeof f.key === 'string' &&
    typeof f.label === 'string' &&
    (f.value === null || typeof f.value === 'number') &&
    typeof f.unit === 'string' &&
    UNITS.has(f.unit)
  );
}

/**
 * The headline of a previous run's JSON (`conformance.json` or `demo-report.json`), for
 * `--compare`: its `headline`, or — for a report written before it had one — what `derive`
 * computes from the rest (conformance results are derived here). A file that cannot be read or
 * holds no headline is a usage error (exit 2).
 */
export async function readPreviousRun(
  file: string,
  derive?: (json: unknown) => readonly HeadlineFigure[] | undefined,
): Promise<PreviousRun> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new UsageError(`--compare ${file}: cannot read it as JSON (${errorMessage(error)})`);
  }
  const record = (typeof json === 'object' && json !== null ? json : {}) as Record<string, unknown>;
  let headline: readonly HeadlineFigure[] | undefined;
  if (Array.isArray(record.headline) && record.headline.every(isFigure)) headline = record.headline;
  else if (Array.isArray(record.scenarios) && Array.isArray(record.preflight)) {
    headline = conformanceHeadline(record as unknown as ConformanceResult);
  } else headline = derive?.(json);
  if (!headline || headline.length === 0) {
    throw new UsageError(
      `--compare ${file}: not a conformance.json or demo-report.json written by Afterlife (no headline figures)`,
    );
  }
  const profile =
    typeof record.profile === 'string' ? record.profile : typeof record.mode === 'string' ? record.mode : undefined;
  return {
    file,
    startedAt: typeof record.startedAt === 'string' ? record.startedAt : '(unknown start)',
    ...(profile ? { profile } : {}),
    headline,
  };
}
