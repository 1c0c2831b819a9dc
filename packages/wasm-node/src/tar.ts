import { AfterlifeError } from '@afterlife/core';

/** Minimal ustar (POSIX.1-1988 + pax `path`) reading and writing: what OCI layers need here. */
export interface TarEntry {
  readonly path: string;
  readonly type: 'file' | 'directory' | 'symlink' | 'other';
  readonly data: Buffer;
  readonly linkName: string;
}

const BLOCK = 512;

function octal(field: Buffer): number {
  const text = field.toString('latin1').replace(/\0.*$/s, '').trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new AfterlifeError('TAR_INVALID', `bad octal field "${text}" in tar header`);
  return Number.parseInt(text, 8);
}

function cString(field: Buffer): string {
  const end = field.indexOf(0);
  return field.subarray(0, end === -1 ? field.length : end).toString('utf8');
}

function parsePax(data: Buffer): Record<string, string> {
  const records: Record<string, string> = {};
  let offset = 0;
  while (offset < data.length) {
    const space = data.indexOf(0x20, offset);
    if (space === -1) break;
    const length = Number(data.subarray(offset, space).toString('latin1'));
    if (!Number.isInteger(length) || length <= 0) break;
    const record = data.subarray(space + 1, offset + length - 1).toString('utf8');
    const equals = record.indexOf('=');
    if (equals > 0) records[record.slice(0, equals)] = record.slice(equals + 1);
    offset += length;
  }
  return records;
}

/** Reads every entry of an uncompressed tar archive. */
export function readTar(archive: Buffer): TarEntry[] {
  const entries: TarEntry[] = [];
  let offset = 0;
  let paxPath: string | undefined;
  while (offset + BLOCK <= archive.length) {
    const header = archive.subarray(offset, offset + BLOCK);
    if (header.every((byte) => byte === 0)) break;
    const size = octal(header.subarray(124, 136));
    const typeFlag = String.fromCharCode(header[156] ?? 0);
    const name = cString(header.subarray(0, 100));
    const magic = header.subarray(257, 263).toString('latin1');
    const prefix = magic.startsWith('ustar') ? cString(header.subarray(345, 500)) : '';
    const dataStart = offset + BLOCK;
    if (dataStart + size > archive.length) throw new AfterlifeError('TAR_INVALID', `tar entry "${name}" is truncated`);
    const data = archive.subarray(dataStart, dataStart + size);
    offset = dataStart + Math.ceil(size / BLOCK) * BLOCK;
    if (typeFlag === 'x') {
      paxPath = parsePax(data).path ?? paxPath;
      continue;
    }
    if (typeFlag === 'g') continue;
    const path = paxPath ?? (prefix === '' ? name : `${prefix}/${name}`);
    paxPath = undefined;
    const type =
      typeFlag === '0' || typeFlag === '\0' || typeFlag === '7'
        ? 'file'
        : typeFlag === '5'
          ? 'directory'
          : typeFlag === '2'
            ? 'symlink'
            : 'other';
    entries.push({ path, type, data: Buffer.from(data), linkName: cString(header.subarray(157, 257)) });
  }
  return entries;
}

function writeOctal(header: Buffer, offset: number, length: number, value: number): void {
  header.write(`${value.toString(8).padStart(length - 1, '0')}\0`, offset, length, 'latin1');
}

/** Writes a deterministic tar (mtime 0, root-owned, mode 0755) of regular files. */
export function writeTar(files: ReadonlyArray<{ path: string; data: Buffer }>): Buffer {
  const parts: Buffer[] = [];
  for (const file of files) {
    const path = file.path.replace(/^\/+/, '');
    if (Buffer.byteLength(path) > 100)
      throw new AfterlifeError('TAR_INVALID', `path "${path}" is longer than 100 bytes`);
    const header = Buffer.alloc(BLOCK);
    header.write(path, 0, 100, 'utf8');
    writeOctal(header, 100, 8, 0o755);
    writeOctal(header, 108, 8, 0);
    writeOctal(header, 116, 8, 0);
    writeOctal(header, 124, 12, file.data.length);
    writeOctal(header, 136, 12, 0);
    header.write('        ', 148, 8, 'latin1');
    header.write('0', 156, 1, 'latin1');
    header.write('ustar\u000000', 257, 8, 'latin1');
    let checksum = 0;
    for (const byte of header) checksum += byte;
    header.write(`${checksum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
    parts.push(header, file.data, Buffer.alloc((BLOCK - (file.data.length % BLOCK)) % BLOCK));
  }
  parts.push(Buffer.alloc(BLOCK * 2));
  return Buffer.concat(parts);
}
