/**
 * Byte-level helpers shared by every byte-level BPE: GPT-2's byte <-> unicode table and a UTF-8
 * validator that says where the input broke.
 *
 * Byte-level BPE works on bytes, but vocabularies are stored as JSON strings. GPT-2 maps each of the
 * 256 byte values to one printable unicode character (printable Latin-1 bytes map to themselves, the
 * rest to U+0100 onwards), so `vocab.json` and `merges.txt` hold no control characters or spaces:
 * the space byte becomes `Ġ` (U+0120). Hugging Face's ByteLevel pre-tokenizer and decoder use the
 * same table, which is why every file we read and write agrees on it.
 */

function buildByteToChar(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const isPrintable = new Set(printable);
  const table: string[] = new Array(256);
  let next = 0;
  for (let b = 0; b < 256; b++) {
    if (isPrintable.has(b)) table[b] = String.fromCharCode(b);
    else table[b] = String.fromCharCode(256 + next++);
  }
  return table;
}

/** `BYTE_TO_CHAR[b]` is the one-character string that stands for byte `b` in a byte-level vocabulary. */
export const BYTE_TO_CHAR: readonly string[] = buildByteToChar();

const CHAR_TO_BYTE = new Map<number, number>(BYTE_TO_CHAR.map((c, b) => [c.charCodeAt(0), b]));

/** Bytes -> their byte-level string (one character per byte). */
export function bytesToUnicode(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += BYTE_TO_CHAR[bytes[i]];
  return s;
}

/** A byte-level string back to bytes; null when a character is not in the table (not a byte-level token). */
export function unicodeToBytes(s: string): Uint8Array | null {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const b = CHAR_TO_BYTE.get(s.charCodeAt(i));
    if (b === undefined) return null;
    out[i] = b;
  }
  return out;
}

/** Latin-1 view of bytes: one UTF-16 unit per byte, a cheap exact map key for byte strings. */
export function latin1(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return s;
}

export class InvalidUtf8Error extends Error {
  constructor(
    readonly offset: number,
    readonly reason: string,
  ) {
    super(`invalid UTF-8 at byte offset ${offset}: ${reason}`);
    this.name = 'InvalidUtf8Error';
  }
}

const hex = (b: number) => `0x${b.toString(16).padStart(2, '0')}`;

/**
 * Throws InvalidUtf8Error at the first byte that breaks UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF). TextDecoder's fatal mode rejects the same inputs but does not
 * say where, and a caller with a megabyte of text needs the offset.
 */
export function checkUtf8(bytes: Uint8Array): void {
  let i = 0;
  const n = bytes.length;
  while (i < n) {
    const b = bytes[i];
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b === 0xe0) lo = 0xa0; // overlong below U+0800
      if (b === 0xed) hi = 0x9f; // UTF-16 surrogates
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b === 0xf0) lo = 0x90; // overlong below U+10000
      if (b === 0xf4) hi = 0x8f; // above U+10FFFF
    } else if (b >= 0x80 && b <= 0xbf) {
      throw new InvalidUtf8Error(i, `unexpected continuation byte ${hex(b)}`);
    } else {
      throw new InvalidUtf8Error(i, `byte ${hex(b)} never starts a UTF-8 sequence`);
    }
    for (let k = 1; k <= need; k++) {
      if (i + k >= n) throw new InvalidUtf8Error(i, `sequence starting with ${hex(b)} is cut off by the end of input`);
      const c = bytes[i + k];
      const min = k === 1 ? lo : 0x80;
      const max = k === 1 ? hi : 0xbf;
      if (c < min || c > max) throw new InvalidUtf8Error(i + k, `byte ${hex(c)} cannot follow ${hex(b)} in a UTF-8 sequence`);
    }
    i += need + 1;
  }
}
