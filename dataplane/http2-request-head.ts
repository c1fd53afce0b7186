// The request header blocks of an HTTP/2 connection, decoded in front of nghttp2 (HPACK, RFC 7541)
// to find what RFC 9113 §8.2.1 and §8.3.1 call malformed but Node's HTTP/2 lets through. Node
// registers nghttp2's invalid-header callback and ignores such fields, so a request with a field
// holding CR, LF, NUL or surrounding whitespace, or a name that is no lower-case token, was served
// without that field instead of being refused; and nghttp2 serves a request whose Host names
// another entity than its :authority. What nghttp2 refuses itself (connection-specific fields,
// upper-case names, pseudo-header order, repeats and values) is left to it.
//
// Every header block of the connection is decoded, in order, so this dynamic table stays the one
// the client's encoder and nghttp2 keep; a block that cannot be decoded is a connection error
// (COMPRESSION_ERROR, RFC 9113 §4.3), as nghttp2 makes it.

/**
 * Why a request is malformed: `reason` the `sluice_downstream_rejected_total` label (stable, as
 * HTTP/1.1's where the fault is the same), `detail` for the log.
 */
export interface Malformed {
  reason: 'invalid_header' | 'invalid_host' | 'duplicate_host' | 'host_authority_mismatch' | 'invalid_content_length';
  detail: string;
}

/** What one header block says: why its message is malformed (null: it is not), and its content-length. */
export interface HeadCheck {
  malformed: Malformed | null;
  /** The declared content-length, or -1 (none, or one nghttp2 refuses itself). */
  contentLength: number;
  /** The decoded header list's size: each field's name and value in bytes plus 32 (RFC 9113 §6.5.2). */
  listSize: number;
}

/** A header block that could not be decoded: the connection's HPACK state is lost. */
export class HpackError extends Error {}

/** RFC 7541 Appendix A, index 1 to 61. */
const STATIC_TABLE: ReadonlyArray<readonly [string, string]> = [
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'],
  [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'],
  [':status', '304'], [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'], ['accept-language', ''], ['accept-ranges', ''], ['accept', ''],
  ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''], ['cache-control', ''],
  ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''],
  ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''], ['date', ''],
  ['etag', ''], ['expect', ''], ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''],
  ['if-modified-since', ''], ['if-none-match', ''], ['if-range', ''], ['if-unmodified-since', ''],
  ['last-modified', ''], ['link', ''], ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''],
  ['proxy-authorization', ''], ['range', ''], ['referer', ''], ['refresh', ''], ['retry-after', ''],
  ['server', ''], ['set-cookie', ''], ['strict-transport-security', ''], ['transfer-encoding', ''],
  ['user-agent', ''], ['vary', ''], ['via', ''], ['www-authenticate', ''],
];

/** RFC 7541 §4.1: an entry's size is its name and value in bytes plus 32. */
const ENTRY_OVERHEAD = 32;
/** SETTINGS_HEADER_TABLE_SIZE until changed (RFC 9113 §6.5.2); the front door never changes it. */
const DEFAULT_TABLE_SIZE = 4_096;
/**
 * Largest table a size update may ask for: the SETTINGS_HEADER_TABLE_SIZE the front door announces
 * (Node's default; server.ts sets none). More is a decoding error (RFC 7541 §6.3), as nghttp2 makes
 * it; accepted, a 64 KiB table made each insertion shift up to 2 000 entries (review-s11b-hpack-cost).
 */
const MAX_TABLE_SIZE = DEFAULT_TABLE_SIZE;

/** RFC 7541 Appendix B: each symbol's code, then its length in bits; symbol 256 is EOS. */
const HUFFMAN_CODES = [
  0x1ff8, 0x7fffd8, 0xfffffe2, 0xfffffe3, 0xfffffe4, 0xfffffe5, 0xfffffe6, 0xfffffe7,
  0xfffffe8, 0xffffea, 0x3ffffffc, 0xfffffe9, 0xfffffea, 0x3ffffffd, 0xfffffeb, 0xfffffec,
  0xfffffed, 0xfffffee, 0xfffffef, 0xffffff0, 0xffffff1, 0xffffff2, 0x3ffffffe, 0xffffff3,
  0xffffff4, 0xffffff5, 0xffffff6, 0xffffff7, 0xffffff8, 0xffffff9, 0xffffffa, 0xffffffb,
  0x14, 0x3f8, 0x3f9, 0xffa, 0x1ff9, 0x15, 0xf8, 0x7fa,
  0x3fa, 0x3fb, 0xf9, 0x7fb, 0xfa, 0x16, 0x17, 0x18,
  0x0, 0x1, 0x2, 0x19, 0x1a, 0x1b, 0x1c, 0x1d,
  0x1e, 0x1f, 0x5c, 0xfb, 0x7ffc, 0x20, 0xffb, 0x3fc,
  0x1ffa, 0x21, 0x5d, 0x5e, 0x5f, 0x60, 0x61, 0x62,
  0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a,
  0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72,
  0xfc, 0x73, 0xfd, 0x1ffb, 0x7fff0, 0x1ffc, 0x3ffc, 0x22,
  0x7ffd, 0x3, 0x23, 0x4, 0x24, 0x5, 0x25, 0x26,
  0x27, 0x6, 0x74, 0x75, 0x28, 0x29, 0x2a, 0x7,
  0x2b, 0x76, 0x2c, 0x8, 0x9, 0x2d, 0x77, 0x78,
  0x79, 0x7a, 0x7b, 0x7ffe, 0x7fc, 0x3ffd, 0x1ffd, 0xffffffc,
  0xfffe6, 0x3fffd2, 0xfffe7, 0xfffe8, 0x3fffd3, 0x3fffd4, 0x3fffd5, 0x7fffd9,
  0x3fffd6, 0x7fffda, 0x7fffdb, 0x7fffdc, 0x7fffdd, 0x7fffde, 0xffffeb, 0x7fffdf,
  0xffffec, 0xffffed, 0x3fffd7, 0x7fffe0, 0xffffee, 0x7fffe1, 0x7fffe2, 0x7fffe3,
  0x7fffe4, 0x1fffdc, 0x3fffd8, 0x7fffe5, 0x3fffd9, 0x7fffe6, 0x7fffe7, 0xffffef,
  0x3fffda, 0x1fffdd, 0xfffe9, 0x3fffdb, 0x3fffdc, 0x7fffe8, 0x7fffe9, 0x1fffde,
  0x7fffea, 0x3fffdd, 0x3fffde, 0xfffff0, 0x1fffdf, 0x3fffdf, 0x7fffeb, 0x7fffec,
  0x1fffe0, 0x1fffe1, 0x3fffe0, 0x1fffe2, 0x7fffed, 0x3fffe1, 0x7fffee, 0x7fffef,
  0xfffea, 0x3fffe2, 0x3fffe3, 0x3fffe4, 0x7ffff0, 0x3fffe5, 0x3fffe6, 0x7ffff1,
  0x3ffffe0, 0x3ffffe1, 0xfffeb, 0x7fff1, 0x3fffe7, 0x7ffff2, 0x3fffe8, 0x1ffffec,
  0x3ffffe2, 0x3ffffe3, 0x3ffffe4, 0x7ffffde, 0x7ffffdf, 0x3ffffe5, 0xfffff1, 0x1ffffed,
  0x7fff2, 0x1fffe3, 0x3ffffe6, 0x7ffffe0, 0x7ffffe1, 0x3ffffe7, 0x7ffffe2, 0xfffff2,
  0x1fffe4, 0x1fffe5, 0x3ffffe8, 0x3ffffe9, 0xffffffd, 0x7ffffe3, 0x7ffffe4, 0x7ffffe5,
  0xfffec, 0xfffff3, 0xfffed, 0x1fffe6, 0x3fffe9, 0x1fffe7, 0x1fffe8, 0x7ffff3,
  0x3fffea, 0x3fffeb, 0x1ffffee, 0x1ffffef, 0xfffff4, 0xfffff5, 0x3ffffea, 0x7ffff4,
  0x3ffffeb, 0x7ffffe6, 0x3ffffec, 0x3ffffed, 0x7ffffe7, 0x7ffffe8, 0x7ffffe9, 0x7ffffea,
  0x7ffffeb, 0xffffffe, 0x7ffffec, 0x7ffffed, 0x7ffffee, 0x7ffffef, 0x7fffff0, 0x3ffffee,
];
const HUFFMAN_LENGTHS = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
  28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
  5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
  7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
  6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
  24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
  21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
  19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
  26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
];
const EOS = 256;

/**
 * The Huffman code as a binary tree: node n's children are at 2n (bit 0) and 2n+1 (bit 1); a
 * positive entry is the child node, a negative one the symbol -entry - 1, 0 no code.
 */
const HUFFMAN_TREE = ((): Int32Array => {
  const tree = new Int32Array(2 * 512);
  let nodes = 1;
  for (let symbol = 0; symbol <= EOS; symbol++) {
    const code = symbol === EOS ? 0x3fffffff : HUFFMAN_CODES[symbol];
    const length = symbol === EOS ? 30 : HUFFMAN_LENGTHS[symbol];
    let node = 0;
    for (let bit = length - 1; bit > 0; bit--) {
      const slot = 2 * node + ((code >>> bit) & 1);
      if (tree[slot] === 0) tree[slot] = nodes++;
      node = tree[slot];
    }
    tree[2 * node + (code & 1)] = -symbol - 1;
  }
  return tree;
})();

/** Decoded Huffman bytes, reused (a string is made of them at once). */
let scratch = Buffer.allocUnsafe(1024);

function huffmanDecode(bytes: Buffer, start: number, end: number): string {
  // Codes are at least 5 bits: at most 8/5 symbols per byte.
  const most = Math.ceil(((end - start) * 8) / 5);
  if (scratch.length < most) scratch = Buffer.allocUnsafe(most);
  let length = 0;
  let node = 0;
  /** Bits read since the last symbol, and whether they were all ones (padding is a prefix of EOS). */
  let pending = 0;
  let allOnes = true;
  for (let i = start; i < end; i++) {
    const byte = bytes[i];
    for (let bit = 7; bit >= 0; bit--) {
      const one = (byte >>> bit) & 1;
      const next = HUFFMAN_TREE[2 * node + one];
      if (next < 0) {
        const symbol = -next - 1;
        if (symbol === EOS) throw new HpackError('EOS in a Huffman string');
        scratch[length++] = symbol;
        node = 0;
        pending = 0;
        allOnes = true;
      } else {
        if (next === 0) throw new HpackError('no such Huffman code');
        node = next;
        pending++;
        allOnes &&= one === 1;
      }
    }
  }
  if (pending > 7 || !allOnes) throw new HpackError('Huffman padding longer than 7 bits or not EOS');
  return scratch.toString('latin1', 0, length);
}

/** The decoder's block between two decodes (one, not an empty Buffer allocated per request). */
const NO_BLOCK = Buffer.alloc(0);

/** What the decoder hands each field to. */
interface FieldVisitor {
  field(name: string, value: string): void;
}

/** One connection's HPACK decoding context (the client's header blocks, in order). */
export class HpackDecoder {
  /** The dynamic table, oldest first: entry i of RFC 7541 §2.3.3 (from 62) is the (i-61)th from the end. */
  private readonly names: string[] = [];
  private readonly values: string[] = [];
  private size = 0;
  private maxSize = DEFAULT_TABLE_SIZE;
  private pos = 0;
  private block: Buffer = NO_BLOCK;

  /** Decodes a whole header block, handing each field to `visitor`; throws HpackError. */
  decode(block: Buffer, visitor: FieldVisitor): void {
    this.block = block;
    this.pos = 0;
    let fields = 0;
    while (this.pos < block.length) {
      const first = block[this.pos];
      if ((first & 0x80) !== 0) {
        const index = this.integer(7);
        visitor.field(this.nameAt(index), this.valueAt(index));
        fields++;
      } else if ((first & 0xe0) === 0x20) {
        // A dynamic table size update: only before the block's first field (RFC 7541 §4.2).
        if (fields > 0) throw new HpackError('dynamic table size update after a field');
        const size = this.integer(5);
        if (size > MAX_TABLE_SIZE) throw new HpackError(`dynamic table size ${size}`);
        this.maxSize = size;
        this.evict(0);
      } else {
        // Literal with incremental indexing (01), without indexing (0000) or never indexed (0001).
        const indexing = (first & 0x40) !== 0;
        const index = this.integer(indexing ? 6 : 4);
        const name = index === 0 ? this.string() : this.nameAt(index);
        const value = this.string();
        if (indexing) this.add(name, value);
        visitor.field(name, value);
        fields++;
      }
    }
    this.block = NO_BLOCK; // not kept alive until the next block
  }

  /** An integer with an N-bit prefix (RFC 7541 §5.1), bounded to 2^31 (no real length or index is near). */
  private integer(prefixBits: number): number {
    const block = this.block;
    const max = (1 << prefixBits) - 1;
    let value = block[this.pos++] & max;
    if (value < max) return value;
    for (let shift = 0; ; shift += 7) {
      if (this.pos >= block.length) throw new HpackError('integer cut short');
      if (shift > 28) throw new HpackError('integer too large');
      const byte = block[this.pos++];
      value += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) break;
    }
    if (value > 2 ** 31) throw new HpackError('integer too large');
    return value;
  }

  private string(): string {
    if (this.pos >= this.block.length) throw new HpackError('string cut short');
    const huffman = (this.block[this.pos] & 0x80) !== 0;
    const length = this.integer(7);
    const start = this.pos;
    const end = start + length;
    if (end > this.block.length) throw new HpackError('string cut short');
    this.pos = end;
    return huffman ? huffmanDecode(this.block, start, end) : this.block.toString('latin1', start, end);
  }

  private nameAt(index: number): string {
    if (index >= 1 && index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1][0];
    return this.names[this.dynamicSlot(index)];
  }

  private valueAt(index: number): string {
    if (index >= 1 && index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1][1];
    return this.values[this.dynamicSlot(index)];
  }

  private dynamicSlot(index: number): number {
    const slot = this.names.length - 1 - (index - STATIC_TABLE.length - 1);
    if (index === 0 || slot < 0) throw new HpackError(`index ${index} not in the table`);
    return slot;
  }

  private add(name: string, value: string): void {
    // Sizes count bytes: the strings are latin1, a character per byte.
    const size = name.length + value.length + ENTRY_OVERHEAD;
    this.evict(size);
    if (size > this.maxSize) return; // an entry larger than the table empties it (RFC 7541 §4.4)
    this.names.push(name);
    this.values.push(value);
    this.size += size;
  }

  /** Evicts the oldest entries until `room` more bytes fit. */
  private evict(room: number): void {
    let drop = 0;
    while (drop < this.names.length && this.size + room > this.maxSize) {
      this.size -= this.names[drop].length + this.values[drop].length + ENTRY_OVERHEAD;
      drop++;
    }
    if (drop > 0) {
      this.names.splice(0, drop);
      this.values.splice(0, drop);
    }
  }
}

/** A field name character nghttp2 keeps (RFC 9110 §5.6.2 tchar, lower-case only). */
const NAME_CHARS = ((): Uint8Array => {
  const chars = new Uint8Array(256);
  for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz") chars[c.charCodeAt(0)] = 1;
  return chars;
})();

/** A Host character nghttp2 keeps (its authority check): anything else and it drops the field. */
const HOST_CHARS = ((): Uint8Array => {
  const chars = new Uint8Array(256);
  for (const c of "!$%&'()*+,-.0123456789:;=ABCDEFGHIJKLMNOPQRSTUVWXYZ[]_abcdefghijklmnopqrstuvwxyz~") chars[c.charCodeAt(0)] = 1;
  return chars;
})();

function validName(name: string): boolean {
  for (let i = 0; i < name.length; i++) if (NAME_CHARS[name.charCodeAt(i)] !== 1) return false;
  return name.length > 0;
}

/**
 * RFC 9113 §8.2.1: no NUL, CR or LF, no leading or trailing SP or HTAB; nghttp2 also drops a value
 * with any other control character but HTAB (RFC 9110 §5.5 field-vchar), so those are refused too.
 */
function validValue(value: string): boolean {
  const last = value.length - 1;
  if (last >= 0) {
    const first = value.charCodeAt(0);
    const end = value.charCodeAt(last);
    if (first === 0x20 || first === 0x09 || end === 0x20 || end === 0x09) return false;
  }
  for (let i = 0; i <= last; i++) {
    const c = value.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return false;
  }
  return true;
}

function validHost(value: string): boolean {
  for (let i = 0; i < value.length; i++) if (HOST_CHARS[value.charCodeAt(i)] !== 1) return false;
  return true;
}

/** `host[:port]` lower-cased, the scheme's default port left out: two spellings of one entity compare equal. */
function entity(authority: string, scheme: string | undefined): string {
  const lower = authority.toLowerCase();
  const defaultPort = scheme === 'https' ? ':443' : scheme === 'http' ? ':80' : null;
  return defaultPort !== null && lower.endsWith(defaultPort) ? lower.slice(0, -defaultPort.length) : lower;
}

/** A field name or value as a log may show it: printable, bounded. */
function shown(text: string): string {
  return JSON.stringify(text.length > 64 ? `${text.slice(0, 64)}…` : text);
}

/**
 * Checks one decoded header block of a request (or its trailers) against RFC 9113 §8.2.1 and
 * §8.3.1, for what nghttp2 does not refuse itself. Reused block after block.
 */
export class RequestHeadChecker implements FieldVisitor {
  private malformed: Malformed | null = null;
  private contentLength = -1;
  private authority: string | undefined;
  private host: string | undefined;
  private scheme: string | undefined;
  private trailers = false;
  private listSize = 0;
  /**
   * Long names and values of this block found valid: an indexed field hands over the dynamic
   * table's one string, so a block of one-byte references to a 4 KiB entry (an HPACK bomb) scans
   * it once, not once per reference (review-s11b-hpack-cost). A string's hash is kept in it.
   */
  private readonly validLong = new Set<string>();

  /** Decodes `block` with `decoder` and checks its fields; throws HpackError. */
  check(decoder: HpackDecoder, block: Buffer, trailers: boolean): HeadCheck {
    this.validLong.clear();
    this.listSize = 0;
    this.malformed = null;
    this.contentLength = -1;
    this.authority = this.host = this.scheme = undefined;
    this.trailers = trailers;
    decoder.decode(block, this);
    const { host, authority } = this;
    if (this.malformed === null && host !== undefined && authority !== undefined && entity(host, this.scheme) !== entity(authority, this.scheme)) {
      this.malformed = { reason: 'host_authority_mismatch', detail: `host ${shown(host)} names another entity than :authority ${shown(authority)}` };
    }
    return { malformed: this.malformed, contentLength: this.contentLength, listSize: this.listSize };
  }

  field(name: string, value: string): void {
    this.listSize += name.length + value.length + ENTRY_OVERHEAD;
    if (this.malformed !== null) return; // decoded on for the table's sake only
    if (name.charCodeAt(0) === 0x3a /* : */) {
      // Pseudo-header fields are nghttp2's to check (their names, order, repeats and values).
      if (name === ':authority') this.authority = value;
      else if (name === ':scheme') this.scheme = value;
      return;
    }
    if (!this.valid(name, validName)) {
      this.malformed = { reason: 'invalid_header', detail: `field name ${shown(name)} is not a lower-case token` };
    } else if (!this.valid(value, validValue)) {
      this.malformed = { reason: 'invalid_header', detail: `field ${name}: value ${shown(value)} holds a control character or surrounding whitespace` };
    } else if (this.trailers) {
      return;
    } else if (name === 'host') {
      if (this.host !== undefined) this.malformed = { reason: 'duplicate_host', detail: 'two host fields' };
      else if (!validHost(value)) this.malformed = { reason: 'invalid_host', detail: `host ${shown(value)} is no authority` };
      else this.host = value;
    } else if (name === 'content-length' && this.contentLength === -1 && /^[0-9]{1,15}$/.test(value)) {
      this.contentLength = Number(value);
    }
  }

  private valid(text: string, check: (text: string) => boolean): boolean {
    if (text.length < MEMO_LENGTH) return check(text);
    if (this.validLong.has(text)) return true;
    if (!check(text)) return false;
    this.validLong.add(text);
    return true;
  }
}

/** Shorter names and values are scanned each time: at most this many bytes a field. */
const MEMO_LENGTH = 64;
