/**
 * Generates the values table and the component-settings tables of charts/afterlife/README.md
 * from the `# --` comments in values.yaml, the defaults in values.yaml and the types in
 * values.schema.json. `--check` exits 1 (and says why) when README.md is stale or a value is
 * undocumented; without it, README.md is rewritten in place between its markers.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

export const CHART_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../../charts/afterlife');

export interface DocumentedValue {
  /** Dotted path, e.g. `webhook.image.tag`. */
  readonly path: string;
  readonly description: string;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Schema = { [key: string]: Json };

const KEY_LINE = /^(\s*)([A-Za-z0-9_-]+):(?:\s|$)/;
const DOC_START = /^(\s*)# --\s?(.*)$/;
const COMMENT = /^(\s*)#\s?(.*)$/;

/** Reads the `# -- description` comments (continued by following `#` lines) above keys. */
export function documentedValues(valuesYaml: string): DocumentedValue[] {
  const docs: DocumentedValue[] = [];
  const stack: { indent: number; key: string }[] = [];
  let pending: { indent: number; text: string[] } | undefined;
  for (const line of valuesYaml.split('\n')) {
    const start = DOC_START.exec(line);
    if (start) {
      pending = { indent: (start[1] ?? '').length, text: [start[2] ?? ''] };
      continue;
    }
    const comment = COMMENT.exec(line);
    if (comment) {
      if (pending && (comment[1] ?? '').length === pending.indent) pending.text.push(comment[2] ?? '');
      else pending = undefined;
      continue;
    }
    const key = KEY_LINE.exec(line);
    if (!key) {
      if (line.trim() === '') pending = undefined;
      continue;
    }
    const indent = (key[1] ?? '').length;
    while (stack.length > 0 && (stack.at(-1)?.indent ?? 0) >= indent) stack.pop();
    stack.push({ indent, key: key[2] ?? '' });
    if (pending && pending.indent === indent) {
      docs.push({ path: stack.map((s) => s.key).join('.'), description: pending.text.join(' ').trim() });
    }
    pending = undefined;
  }
  return docs;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Dotted paths of every leaf (scalar, empty map or list) in the values. */
export function leafPaths(values: unknown, prefix = ''): string[] {
  if (!isObject(values) || Object.keys(values).length === 0) return prefix ? [prefix] : [];
  return Object.entries(values).flatMap(([key, value]) => leafPaths(value, prefix ? `${prefix}.${key}` : key));
}

/** Leaves of values.yaml that no `# --` comment covers (on the leaf or on one of its parents). */
export function undocumentedLeaves(values: unknown, docs: readonly DocumentedValue[]): string[] {
  const documented = new Set(docs.map((d) => d.path));
  return leafPaths(values).filter((leaf) => {
    const parts = leaf.split('.');
    return !parts.some((_, i) => documented.has(parts.slice(0, i + 1).join('.')));
  });
}

function deref(schema: Schema, root: Schema): Schema {
  const ref = schema.$ref;
  if (typeof ref !== 'string') return schema;
  const name = ref.replace('#/definitions/', '');
  const definitions = root.definitions as Record<string, Schema>;
  const target = definitions[name];
  if (!target) throw new Error(`values.schema.json: unknown $ref ${ref}`);
  return deref(target, root);
}

/** The schema node for a dotted values path; undefined when the schema does not describe it. */
export function schemaAt(root: Schema, path: string): Schema | undefined {
  let node: Schema | undefined = root;
  for (const part of path.split('.')) {
    if (!node) return undefined;
    node = deref(node, root);
    if (!node.properties && Array.isArray(node.allOf)) node = deref(node.allOf[0] as Schema, root);
    const properties = node.properties as Record<string, Schema> | undefined;
    node = properties?.[part];
  }
  return node ? deref(node, root) : undefined;
}

function typeOf(root: Schema, path: string): string {
  const node = schemaAt(root, path);
  if (!node) throw new Error(`values.schema.json does not describe ${path}`);
  const resolved = Array.isArray(node.allOf) ? deref(node.allOf[0] as Schema, root) : node;
  if (Array.isArray(resolved.enum)) return resolved.enum.map((v) => JSON.stringify(v)).join(' \\| ');
  if (Array.isArray(resolved.oneOf)) {
    return resolved.oneOf.map((o) => String(deref(o as Schema, root).type)).join(' \\| ');
  }
  const type = resolved.type;
  return Array.isArray(type) ? type.join(' \\| ') : String(type ?? 'any');
}

function valueAt(values: unknown, path: string): unknown {
  let node = values;
  for (const part of path.split('.')) node = isObject(node) ? node[part] : undefined;
  return node;
}

function cell(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('\n', ' ');
}

export function renderValuesTable(valuesYaml: string, schema: Schema): string {
  const values = parse(valuesYaml) as unknown;
  const rows = documentedValues(valuesYaml).map((doc) => {
    const value = JSON.stringify(valueAt(values, doc.path));
    return `| \`${doc.path}\` | ${typeOf(schema, doc.path)} | \`${cell(value)}\` | ${cell(doc.description)} |`;
  });
  return ['| Key | Type | Default | Description |', '| --- | --- | --- | --- |', ...rows].join('\n');
}

export const COMPONENTS = ['webhook', 'gateway', 'scaler', 'autoscaler'] as const;

/** Per component: the optional env vars `<component>.extraEnv` accepts (from the schema), with defaults. */
export function optionalSettings(
  schema: Schema,
  component: string,
): { name: string; default: string; description: string }[] {
  const extraEnv = schemaAt(schema, `${component}.extraEnv`);
  const properties = (extraEnv?.properties ?? {}) as Record<string, Schema>;
  return Object.entries(properties).map(([name, s]) => ({
    name,
    default: String(s.default ?? ''),
    description: String(s.description ?? ''),
  }));
}

/** Per component: env vars the component reads that the chart deliberately never sets, with the reason. */
export function unsupportedSettings(schema: Schema, component: string): { name: string; reason: string }[] {
  const extraEnv = schemaAt(schema, `${component}.extraEnv`);
  const entries = (extraEnv?.['x-unsupported'] ?? {}) as Record<string, string>;
  return Object.entries(entries).map(([name, reason]) => ({ name, reason }));
}

export function renderSettings(schema: Schema): string {
  const parts: string[] = [];
  for (const component of COMPONENTS) {
    const settings = optionalSettings(schema, component);
    parts.push(`#### ${component}`, '');
    if (settings.length === 0) {
      parts.push('The chart sets every setting this component reads.', '');
      continue;
    }
    parts.push('| Env var | Default | Meaning |', '| --- | --- | --- |');
    for (const s of settings) {
      const value = s.default === '' ? '_(empty)_' : `\`${cell(s.default)}\``;
      parts.push(`| \`${s.name}\` | ${value} | ${cell(s.description)} |`);
    }
    parts.push('');
    const unsupported = unsupportedSettings(schema, component);
    if (unsupported.length > 0) {
      parts.push('Not settable through the chart:', '');
      for (const u of unsupported) parts.push(`- \`${u.name}\`: ${u.reason}`);
      parts.push('');
    }
  }
  return parts.join('\n').trimEnd();
}

/** Replaces the text between `<!-- name:start -->` and `<!-- name:end -->`. */
export function replaceBetween(text: string, name: string, content: string): string {
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const from = text.indexOf(start);
  const to = text.indexOf(end);
  if (from < 0 || to < from) throw new Error(`README.md lacks the markers ${start} … ${end}`);
  return `${text.slice(0, from + start.length)}\n${content}\n${text.slice(to)}`;
}

export function readChartFiles(chartDir = CHART_DIR): { valuesYaml: string; schema: Schema; readme: string } {
  return {
    valuesYaml: readFileSync(join(chartDir, 'values.yaml'), 'utf8'),
    schema: JSON.parse(readFileSync(join(chartDir, 'values.schema.json'), 'utf8')) as Schema,
    readme: readFileSync(join(chartDir, 'README.md'), 'utf8'),
  };
}

/** README.md as it should be. */
export function generateReadme(files: { valuesYaml: string; schema: Schema; readme: string }): string {
  const withValues = replaceBetween(files.readme, 'values', renderValuesTable(files.valuesYaml, files.schema));
  return replaceBetween(withValues, 'settings', renderSettings(files.schema));
}

function main(): void {
  const files = readChartFiles();
  const missing = undocumentedLeaves(parse(files.valuesYaml), documentedValues(files.valuesYaml));
  if (missing.length > 0) {
    console.error(`values.yaml: these values lack a "# --" comment: ${missing.join(', ')}`);
    process.exit(1);
  }
  const wanted = generateReadme(files);
  const path = join(CHART_DIR, 'README.md');
  if (process.argv.includes('--check')) {
    if (wanted !== files.readme) {
      console.error(`${path} is stale; run: pnpm --filter @afterlife/chart-tests run readme`);
      process.exit(1);
    }
    console.log(`${path} is up to date`);
    return;
  }
  if (wanted !== files.readme) writeFileSync(path, wanted);
  console.log(`${path} ${wanted === files.readme ? 'unchanged' : 'updated'}`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
