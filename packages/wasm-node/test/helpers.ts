/** Hand-assembled WASI commands for failure tests (no toolchain needed). */
function section(id: number, body: number[]): number[] {
  return [id, body.length, ...body];
}
function name(text: string): number[] {
  return [text.length, ...Buffer.from(text)];
}

/** A WASI command whose `_start` executes `unreachable`: a trap on every run. */
export function trapModule(): Buffer {
  return Buffer.from([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, [1, 0x60, 0, 0]),
    ...section(3, [1, 0]),
    ...section(5, [1, 0, 1]),
    ...section(7, [2, ...name('memory'), 2, 0, ...name('_start'), 0, 0]),
    ...section(10, [1, 3, 0, 0x00, 0x0b]),
  ]);
}

/** A WASI command whose `_start` calls `proc_exit(code)`. */
export function exitModule(code: number): Buffer {
  return Buffer.from([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, [2, 0x60, 1, 0x7f, 0, 0x60, 0, 0]),
    ...section(2, [1, ...name('wasi_snapshot_preview1'), ...name('proc_exit'), 0, 0]),
    ...section(3, [1, 1]),
    ...section(5, [1, 0, 1]),
    ...section(7, [2, ...name('memory'), 2, 0, ...name('_start'), 0, 1]),
    ...section(10, [1, 6, 0, 0x41, code & 0x3f, 0x10, 0, 0x0b]),
  ]);
}

export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}
