import { AfterlifeClusterError } from './cluster-error.ts';

/**
 * Minimal deterministic tar for OCI layers: ustar headers with mtime 0 and no user/group names,
 * a PAX record only for names longer than the 100 bytes ustar holds. Reads what Debian's
 * `data.tar` members use (ustar, GNU long names, PAX).
 */
const BLOCK = 512;
const NAME_LENGTH = 100;

/** One entry of a layer; `path` is relative to the root (a leading `/` is dropped). */
export type TarEntry =
  | {
      readonly type: 'file';
      readonly path: string;
      readonly data: Buffer;
      readonly mode: number;
      readonly uid?: number;
      readonly gid?: number;
    }
  | {
      readonly type: 'directory';
      readonly path: string;
      readonly mode: number;
      readonly uid?: number;
      readonly gid?: number;
    }
  | {
      readonly type: 'symlink';
      readonly path: string;
      readonly target: string;
      readonly uid?: number;
      readonly gid?: number;
    };

function writeOctal(header: Buffer, offset: number, length: number, value: number): void {
  header.write(`${value.toString(8).padStart(length - 1, '0')}\0`, offset, length, 'latin1');
}

interface HeaderFields {
  readonly name: string;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly typeflag: string;
  readonly linkname: string;
}

function header(fields: HeaderFields): Buffer {
  const block = Buffer.alloc(BLOCK);
  block.write(fields.name, 0, NAME_LENGTH, 'utf8');
  writeOctal(block, 100, 8, fields.mode);
  writeOctal(block, 108, 8, fields.uid);
  writeOctal(block, 116, 8, fields.gid);
  writeOctal(block, 124, 12, fields.size);
  writeOctal(block, 136, 12, 0);
  block.write('        ', 148, 8, 'latin1');
  block.write(fields.typeflag, 156, 1, 'latin1');
  if (fields.linkname !== '') block.write(fields.linkname, 157, NAME_LENGTH, 'utf8');
  block.write('ustar\u000000', 257, 8, 'latin1');
  let checksum = 0;
  for (const byte of block) checksum += byte;
  block.write(`${checksum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  return block;
}

function padding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

/** A PAX record `"<len> key=value\n"`, where len counts the whole record including itself. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let length = Buffer.byteLength(body) + 1;
  // The length's own digits are part of the length: at most two rounds settle it.
  for (let round = 0; round < 3 && String(length).length + Buffer.byteLength(body) !== length; round++) {
    length = String(length).length + Buffer.byteLength(body);
  }
  return `${length}${body}`;
}

/** Writes entries in the order given (callers sort them): same entries, same bytes. */
export function writeTarEntries(entries: readonly TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    let name = entry.path.replace(/^\/+/, '');
    if (entry.type === 'directory' && !name.endsWith('/')) name += '/';
    const linkname = entry.type === 'symlink' ? entry.target : '';
    const records: string[] = [];
    if (Buffer.byteLength(name) > NAME_LENGTH) records.push(paxRecord('path', name));
    if (Buffer.byteLength(linkname) > NAME_LENGTH) records.push(paxRecord('linkpath', linkname));
    if (records.length > 0) {
      const pax = Buffer.from(records.join(''), 'utf8');
      parts.push(
        header({ name: 'PaxHeader', mode: 0o644, uid: 0, gid: 0, size: pax.length, typeflag: 'x', linkname: '' }),
        pax,
        padding(pax.length),
      );
    }
    const data = entry.type === 'file' ? entry.data : Buffer.alloc(0);
    parts.push(
      header({
        name: Buffer.from(name, 'utf8').subarray(0, NAME_LENGTH).toString('utf8'),
        mode: entry.type === 'symlink' ? 0o777 : entry.mode,
        uid: entry.uid ?? 0,
        gid: entry.gid ?? 0,
        size: data.length,
        typeflag: entry.type === 'file' ? '0' : entry.type === 'directory' ? '5' : '2',
        linkname: Buffer.from(linkname, 'utf8').subarray(0, NAME_LENGTH).toString('utf8'),
      }),
      data,
      padding(data.length),
    );
  }
  parts.push(Buffer.alloc(BLOCK * 2));
  return Buffer.concat(parts);
}

/** Regular files, mode 0755, uid/gid 0, mtime 0 (paths up to 100 bytes): the single-binary layers. */
export function writeTar(files: ReadonlyArray<{ path: string; data: Buffer }>): Buffer {
  for (const file of files) {
    const path = file.path.replace(/^\/+/, '');
    if (Buffer.byteLength(path) > NAME_LENGTH)
      throw new AfterlifeClusterError('TAR_INVALID', `path "${path}" is longer than ${NAME_LENGTH} bytes`);
  }
  return writeTarEntries(files.map((file) => ({ type: 'file', path: file.path, data: file.data, mode: 0o755 })));
}

/** An entry read from a tar; hard links keep their target path for the caller to resolve. */
export type ReadTarEntry =
  | TarEntry
  | { readonly type: 'hardlink'; readonly path: string; readonly target: string; readonly mode: number };

function readString(block: Buffer, offset: number, length: number): string {
  const field = block.subarray(offset, offset + length);
  const end = field.indexOf(0);
  return field.subarray(0, end === -1 ? length : end).toString('utf8');
}

function readOctal(block: Buffer, offset: number, length: number, what: string): number {
  const text = readString(block, offset, length).trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new AfterlifeClusterError('TAR_INVALID', `tar header field ${what} is "${text}"`);
  return Number.parseInt(text, 8);
}

/** Strips `./`, leading and trailing slashes: the path relative to the root ('' for the root). */
function normalizePath(path: string): string {
  return path
    .replace(/^(\.\/)+/, '')
    .replace(/^\/+/, '')
    .replace(/\/+$/, '');
}

function parsePax(data: Buffer): Map<string, string> {
  const values = new Map<string, string>();
  let offset = 0;
  // Each record is at least 5 bytes ("5 k=\n"), so this ends within data.length / 5 rounds.
  for (let round = 0; round < data.length && offset < data.length; round++) {
    const space = data.indexOf(0x20, offset);
    const length = Number.parseInt(data.subarray(offset, space).toString('latin1'), 10);
    if (space === -1 || !Number.isInteger(length) || length <= 0)
      throw new AfterlifeClusterError('TAR_INVALID', 'malformed PAX record');
    const record = data.subarray(space + 1, offset + length - 1).toString('utf8');
    const equals = record.indexOf('=');
    values.set(record.slice(0, equals), record.slice(equals + 1));
    offset += length;
  }
  return values;
}

/** Parses a whole (uncompressed) tar: files, directories, symlinks and hard links. */
export function readTar(tar: Buffer): ReadTarEntry[] {
  const entries: ReadTarEntry[] = [];
  let offset = 0;
  let longName: string | undefined;
  let longLink: string | undefined;
  let pax = new Map<string, string>();
  // Every header advances by at least one block.
  for (let round = 0; round <= tar.length / BLOCK && offset + BLOCK <= tar.length; round++) {
    const block = tar.subarray(offset, offset + BLOCK);
    if (block.every((byte) => byte === 0)) break;
    const stored = readOctal(block, 148, 8, 'chksum');
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (block[i] ?? 0);
    if (sum !== stored)
      throw new AfterlifeClusterError('TAR_INVALID', `tar header checksum mismatch at byte ${offset}`);
    const size = readOctal(block, 124, 12, 'size');
    const data = tar.subarray(offset + BLOCK, offset + BLOCK + size);
    offset += BLOCK + size + padding(size).length;
    const typeflag = String.fromCharCode(block[156] ?? 0);
    if (typeflag === 'L') {
      longName = readString(data, 0, data.length);
      continue;
    }
    if (typeflag === 'K') {
      longLink = readString(data, 0, data.length);
      continue;
    }
    if (typeflag === 'x') {
      pax = parsePax(data);
      continue;
    }
    if (typeflag === 'g') continue;
    // POSIX ustar (magic "ustar\0") splits long names into prefix + name; GNU's "ustar  " does not.
    const prefix = block.subarray(257, 263).toString('latin1') === 'ustar\0' ? readString(block, 345, 155) : '';
    const rawName =
      prefix === '' ? readString(block, 0, NAME_LENGTH) : `${prefix}/${readString(block, 0, NAME_LENGTH)}`;
    const path = normalizePath(pax.get('path') ?? longName ?? rawName);
    const target = pax.get('linkpath') ?? longLink ?? readString(block, 157, NAME_LENGTH);
    const mode = readOctal(block, 100, 8, 'mode') & 0o7777;
    const uid = readOctal(block, 108, 8, 'uid');
    const gid = readOctal(block, 116, 8, 'gid');
    longName = undefined;
    longLink = undefined;
    pax = new Map();
    if (path === '') continue;
    switch (typeflag) {
      case '0':
      case '\0':
      case '7':
        entries.push({ type: 'file', path, data: Buffer.from(data), mode, uid, gid });
        break;
      case '5':
        entries.push({ type: 'directory', path, mode, uid, gid });
        break;
      case '2':
        entries.push({ type: 'symlink', path, target, uid, gid });
        break;
      case '1':
        entries.push({ type: 'hardlink', path, target: normalizePath(target), mode });
        break;
      default:
        throw new AfterlifeClusterError('TAR_INVALID', `tar entry ${path} has unsupported type "${typeflag}"`);
    }
  }
  return entries;
}
