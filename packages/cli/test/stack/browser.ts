import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';

/** Debian's Chromium (the test command installs it: scripts/ensure-chromium.sh). */
export const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((path) => existsSync(path));

/** Screenshots of the reports the tests looked at: `<repo>/reports/test-artifacts/` (git-ignored with /reports/). */
export const ARTIFACTS = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  '..',
  '..',
  'reports',
  'test-artifacts',
);

export async function withChromium<T>(body: (browser: Browser) => Promise<T>): Promise<T> {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    ...(CHROMIUM ? { executablePath: CHROMIUM } : {}),
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
    ],
  });
  try {
    return await body(browser);
  } finally {
    await browser.close();
  }
}

/** One series as the browser drew it. */
export interface DrawnSeries {
  readonly name: string;
  readonly kind: string;
  /** `data-points`: what the renderer says it drew. */
  readonly points: number;
  /** Marks actually in the DOM: one per event for dots; corners + 1 for a step or line path. */
  readonly drawn: number;
  /** A step path has only horizontal (H) and vertical (V) segments after its first point. */
  readonly stepShaped: boolean;
  /** Rendered with a size (not collapsed or clipped away). */
  readonly visible: boolean;
  /** Its dash pattern ('solid' for none): what tells lines apart in greyscale. */
  readonly dash: string;
  /** Its marker's shape (dots): `circle`, `rect` or a `path`'s first command pair. */
  readonly marker: string;
}

export interface DrawnChart {
  readonly id: string;
  /** The id of the report section the chart is in. */
  readonly section: string;
  readonly width: number;
  readonly height: number;
  readonly series: readonly DrawnSeries[];
  /** Rows in its table fallback. */
  readonly tableRows: number;
}

/** Every chart of the page as Chromium laid it out. */
export function drawnCharts(page: Page): Promise<DrawnChart[]> {
  return page.$$eval('figure.chart', (figures) =>
    figures.map((figure) => {
      const box = figure.querySelector('svg.plot')?.getBoundingClientRect();
      const series = [...figure.querySelectorAll('g.series')].map((g) => {
        const kind = g.getAttribute('data-kind') ?? '';
        const path = g.querySelector('path.line');
        const d = path?.getAttribute('d') ?? '';
        const corners = (d.match(/[HL]/g) ?? []).length;
        const marks = g.querySelectorAll('.point').length;
        const first = g.querySelector('.point');
        const marker = first
          ? `${first.tagName}${first.tagName === 'path' ? `:${(first.getAttribute('d') ?? '').replace(/[-\d.,]+/g, '')}` : ''}`
          : '';
        const shapes = [...g.querySelectorAll('path, circle, rect')] as SVGGraphicsElement[];
        return {
          name: g.getAttribute('data-series') ?? '',
          kind,
          points: Number(g.getAttribute('data-points')),
          drawn: kind === 'dots' ? marks : d ? corners + 1 : 0,
          stepShaped: /^M[-\d.]+,[-\d.]+(H[-\d.]+V[-\d.]+)*$/.test(d),
          visible: shapes.some((shape) => {
            const b = shape.getBBox();
            return b.width + b.height > 0;
          }),
          dash: path?.getAttribute('stroke-dasharray') ?? 'solid',
          marker,
        };
      });
      return {
        id: figure.id,
        section: figure.closest('section')?.id ?? '',
        width: box?.width ?? 0,
        height: box?.height ?? 0,
        series,
        tableRows: figure.querySelectorAll('details.table-fallback tbody tr').length,
      };
    }),
  );
}

/**
 * The headline table's rows: key → the main text of each cell [figure, this run, bound, verdict,
 * previous, change] (a cell's first line; its `<small>` note left out).
 */
export function headlineRows(page: Page): Promise<Record<string, string[]>> {
  return page.$$eval('table.headline tbody tr', (rows) =>
    Object.fromEntries(
      rows.map((row) => [
        row.getAttribute('data-key') ?? '',
        [...row.querySelectorAll('th, td')].map((cell) =>
          [...cell.childNodes]
            .filter((node) => node.nodeName !== 'SMALL' && node.nodeName !== 'BR')
            .map((node) => node.textContent ?? '')
            .join('')
            .trim(),
        ),
      ]),
    ),
  );
}

/** A full-page PNG of the report in `ARTIFACTS`; returns its size in bytes. */
export async function screenshot(page: Page, name: string): Promise<number> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const png = await page.screenshot({ fullPage: true, path: join(ARTIFACTS, name) });
  return png.length;
}
