// biome-ignore lint/suspicious/noControlCharactersInRegex: strips terminal colour codes.
const ANSI = /\u001b\[[0-9;]*m/g;

/**
 * Adds up mocha's closing lines ("12 passing", "1 failing", "3 pending") from every package
 * of a recursive run into one plain line CI can read: "tests: N passed, N failed, N skipped".
 */
export class TestTally {
  #passed = 0;
  #failed = 0;
  #skipped = 0;
  #seen = false;
  #partial = '';

  feed(text: string): void {
    const lines = (this.#partial + text).split('\n');
    this.#partial = lines.pop() ?? '';
    for (const line of lines) this.#line(line.replace(ANSI, ''));
  }

  #line(line: string): void {
    // Only mocha's own summary lines (indented count first); output a test echoes from a nested
    // run is prefixed and so is not counted twice.
    const match = /^\s*(\d+) (passing|failing|pending)(?:\s|$|\()/.exec(line);
    if (!match) return;
    const count = Number(match[1]);
    this.#seen = true;
    if (match[2] === 'passing') this.#passed += count;
    else if (match[2] === 'failing') this.#failed += count;
    else this.#skipped += count;
  }

  summary(): string | undefined {
    if (this.#partial) this.#line(this.#partial.replace(ANSI, ''));
    this.#partial = '';
    if (!this.#seen) return undefined;
    return `tests: ${this.#passed} passed, ${this.#failed} failed, ${this.#skipped} skipped`;
  }
}
