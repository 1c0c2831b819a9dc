import { AfterlifeClusterError } from './cluster-error.ts';

/** Minimal ustar writing (regular files, mode 0755, uid/gid 0, mtime 0): deterministic OCI layers. */
const BLOCK = 512;

function writeOctal(header: Buffer, offset: number, length: number, value: number): void {
  header.write(`${value.toString(8).padStart(length - 1, '0')}\0`, offset, length, 'latin1');
}

export function writeTar(files: ReadonlyArray<{ path: string; data: Buffer }>): Buffer {
  const parts: Buffer[] = [];
  for (const file of files) {
    const path = file.path.replace(/^\/+/, '');
    if (Buffer.byteLength(path) > 100)
      throw new AfterlifeClusterError('TAR_INVALID', `path "${path}" is longer than 100 bytes`);
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
