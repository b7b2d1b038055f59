// Text files as their bytes: the file editor shows a file as text and
// writes back the same kind of bytes it read. A config file a game reads
// in Windows-1252 must not come back as UTF-8, a CRLF file must keep its
// CRLFs, a BOM must stay (or stay away).
//
// - The encoding is told from the bytes: a BOM names UTF-8 or UTF-16;
//   without one, bytes that are valid UTF-8 are UTF-8, anything else is
//   Windows-1252 (what browsers mean by "latin-1": ISO-8859-1 with the
//   printable characters in 0x80–0x9F).
// - TextDecoder reads all of them; TextEncoder writes only UTF-8, so the
//   single-byte and UTF-16 encoders are here. The Windows-1252 table is
//   built by decoding the 256 bytes with the browser's own decoder and
//   inverting it, so every byte a file had round-trips to itself.
// - A `<textarea>` turns every line ending into LF; the dominant one of
//   the file is remembered and put back on save.

/** The encodings the editor reads and writes. */
export const ENCODINGS = [
  ['utf-8', 'UTF-8'],
  ['utf-8-bom', 'UTF-8 with BOM'],
  ['windows-1252', 'Windows-1252 (Latin-1)'],
  ['utf-16le', 'UTF-16 LE (with BOM)'],
  ['utf-16be', 'UTF-16 BE (with BOM)'],
];

/** The line endings the editor writes. */
export const LINE_ENDINGS = [
  ['\n', 'LF (Unix)'],
  ['\r\n', 'CRLF (Windows)'],
  ['\r', 'CR (classic Mac)'],
];

const BOMS = {
  'utf-8-bom': [0xef, 0xbb, 0xbf],
  'utf-16le': [0xff, 0xfe],
  'utf-16be': [0xfe, 0xff],
};

/** A character the chosen encoding cannot write. */
export class UnencodableError extends Error {
  constructor(encoding, char, line) {
    const code = char.codePointAt(0).toString(16).toUpperCase().padStart(4, '0');
    super(`“${char}” (U+${code}, line ${line}) cannot be written in ${label(encoding)}; choose UTF-8 to save it.`);
    this.code = 'unencodable';
    this.char = char;
    this.line = line;
  }
}

function label(encoding) {
  const found = ENCODINGS.find(([e]) => e === encoding);
  return found ? found[1] : encoding;
}

function startsWith(bytes, prefix) {
  return prefix.every((b, i) => bytes[i] === b);
}

function decodeAs(encoding, bytes) {
  return new TextDecoder(encoding, { fatal: true }).decode(bytes);
}

/**
 * Reads `bytes` (a Uint8Array) as text: `{text, encoding, eol, mixed,
 * binary}`. `binary` is true when the text holds NUL characters (not a
 * text file: the editor refuses it).
 */
export function decodeText(bytes) {
  let text = null;
  let encoding = null;
  for (const candidate of ['utf-8-bom', 'utf-16le', 'utf-16be']) {
    if (text === null && startsWith(bytes, BOMS[candidate])) {
      try {
        // The decoders drop the BOM they are named after.
        text = decodeAs(candidate === 'utf-8-bom' ? 'utf-8' : candidate, bytes);
        encoding = candidate;
      } catch {
        text = null;
      }
    }
  }
  if (text === null) {
    try {
      text = decodeAs('utf-8', bytes);
      encoding = 'utf-8';
    } catch {
      // Every byte means a character in Windows-1252.
      text = new TextDecoder('windows-1252').decode(bytes);
      encoding = 'windows-1252';
    }
  }
  return { text, encoding, ...lineEndings(text), binary: text.includes('\0') };
}

/** The dominant line ending of `text` and whether others occur too. */
export function lineEndings(text) {
  const crlf = (text.match(/\r\n/g) || []).length;
  const lf = (text.match(/(?<!\r)\n/g) || []).length;
  const cr = (text.match(/\r(?!\n)/g) || []).length;
  const counts = [['\n', lf], ['\r\n', crlf], ['\r', cr]];
  const [eol] = counts.reduce((best, next) => (next[1] > best[1] ? next : best));
  return { eol, mixed: counts.filter(([, n]) => n > 0).length > 1 };
}

let cp1252 = null;
/** Code point → byte, for Windows-1252, from the browser's decoder. */
function cp1252Table() {
  if (!cp1252) {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    const chars = new TextDecoder('windows-1252').decode(all);
    cp1252 = new Map();
    for (let i = 0; i < 256; i += 1) cp1252.set(chars.charCodeAt(i), i);
  }
  return cp1252;
}

function lineOf(text, index) {
  return text.slice(0, index).split('\n').length;
}

/**
 * Writes `text` as bytes (a Uint8Array) in `encoding`, every line
 * ending (CRLF, CR or LF) made `eol`. Throws UnencodableError for a
 * character the encoding has no byte for.
 */
export function encodeText(text, encoding, eol) {
  const normal = text.replace(/\r\n|\r|\n/g, '\n');
  const lines = normal.replace(/\n/g, eol);
  switch (encoding) {
    case 'utf-8':
      return new TextEncoder().encode(lines);
    case 'utf-8-bom': {
      const body = new TextEncoder().encode(lines);
      const out = new Uint8Array(body.length + 3);
      out.set(BOMS['utf-8-bom']);
      out.set(body, 3);
      return out;
    }
    case 'windows-1252': {
      const table = cp1252Table();
      const out = new Uint8Array(lines.length);
      for (let i = 0; i < lines.length; i += 1) {
        const byte = table.get(lines.charCodeAt(i));
        if (byte === undefined) {
          const char = String.fromCodePoint(lines.codePointAt(i));
          // The position in LF text, where lines are counted as shown.
          const shown = normal.indexOf(char);
          throw new UnencodableError(encoding, char, lineOf(normal, shown));
        }
        out[i] = byte;
      }
      return out;
    }
    case 'utf-16le':
    case 'utf-16be': {
      const little = encoding === 'utf-16le';
      const out = new Uint8Array(2 + lines.length * 2);
      out.set(BOMS[encoding]);
      const view = new DataView(out.buffer);
      for (let i = 0; i < lines.length; i += 1) view.setUint16(2 + i * 2, lines.charCodeAt(i), little);
      return out;
    }
    default:
      throw new Error(`unknown encoding ${encoding}`);
  }
}
