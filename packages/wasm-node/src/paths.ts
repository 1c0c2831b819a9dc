import { fileURLToPath } from 'node:url';

/** True when running from TypeScript sources (tests via tsx), false from the built dist/. */
export const FROM_SOURCE = import.meta.url.endsWith('.ts');

/** The path of another module of this package, in the same form (src/*.ts or dist/*.js) as this one. */
export function siblingModule(name: string): string {
  return fileURLToPath(new URL(`./${name}${FROM_SOURCE ? '.ts' : '.js'}`, import.meta.url));
}

/** The package's root directory (holds examples/). */
export const PACKAGE_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Node flags a child process needs to run a sibling module (the tsx loader when running from sources). */
export function childNodeFlags(): string[] {
  if (!FROM_SOURCE) return [];
  // Resolved from the child's cwd, which the spawner sets to PACKAGE_ROOT.
  return ['--import=tsx'];
}
