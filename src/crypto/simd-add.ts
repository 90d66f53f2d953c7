/**
 * Adding or subtracting uint32 vectors modulo 2^32 with WebAssembly SIMD (`i32x4.add`,
 * `i32x4.sub`): several times faster here than a JS loop (measured: a 10M-word mask went from
 * about 37 ms to the cost of its keystream). The module is 167 bytes, assembled below from
 * its opcodes; where WebAssembly SIMD is missing, a JS loop does the same.
 *
 *   (func $add (param $dst i32) (param $src i32) (param $bytes i32)   ;; $sub: i32x4.sub
 *     block loop
 *       local.get $bytes  i32.eqz  br_if 1
 *       local.get $dst
 *       local.get $dst v128.load   local.get $src v128.load   i32x4.add
 *       v128.store
 *       $dst += 16  $src += 16  $bytes -= 16
 *       br 0
 *     end end)
 */

import fs from 'node:fs';

/** Scratch bytes per operand: the largest piece added at once (small enough to stay in L2). */
export const SIMD_PIECE_BYTES = 64 << 10;

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}

function section(id: number, payload: number[]): number[] {
  return [id, ...leb(payload.length), ...payload];
}

function loopBody(simdOp: number): number[] {
  const b = [
    0x00, // no locals
    0x02, 0x40, 0x03, 0x40, // block, loop
    0x20, 0x02, 0x45, 0x0d, 0x01, // bytes == 0 -> exit
    0x20, 0x00, // address for the store
    0x20, 0x00, 0xfd, 0x00, 0x00, 0x00, // v128.load dst
    0x20, 0x01, 0xfd, 0x00, 0x00, 0x00, // v128.load src
    0xfd, ...leb(simdOp), // i32x4.add / i32x4.sub
    0xfd, 0x0b, 0x00, 0x00, // v128.store
    0x20, 0x00, 0x41, 0x10, 0x6a, 0x21, 0x00, // dst += 16
    0x20, 0x01, 0x41, 0x10, 0x6a, 0x21, 0x01, // src += 16
    0x20, 0x02, 0x41, 0x10, 0x6b, 0x21, 0x02, // bytes -= 16
    0x0c, 0x00, 0x0b, 0x0b, 0x0b, // br 0, end loop, end block, end func
  ];
  return [...leb(b.length), ...b];
}

function name(s: string): number[] {
  return [...leb(s.length), ...Buffer.from(s)];
}

const I32X4_ADD = 174;
const I32X4_SUB = 177;
const PAGES = Math.ceil((2 * SIMD_PIECE_BYTES) / 65536) + 1;

const MODULE_BYTES = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  ...section(1, [1, 0x60, 3, 0x7f, 0x7f, 0x7f, 0]), // type: (i32, i32, i32) -> ()
  ...section(3, [2, 0, 0]), // two functions of that type
  ...section(5, [1, 0, ...leb(PAGES)]), // memory
  ...section(7, [3, ...name('add'), 0, 0, ...name('sub'), 0, 1, ...name('mem'), 2, 0]),
  ...section(10, [2, ...loopBody(I32X4_ADD), ...loopBody(I32X4_SUB)]),
]);

interface Kernel {
  add(dst: number, src: number, bytes: number): void;
  sub(dst: number, src: number, bytes: number): void;
  mem: WebAssembly.Memory;
}

function instantiate(): Kernel | null {
  try {
    return new WebAssembly.Instance(new WebAssembly.Module(MODULE_BYTES)).exports as unknown as Kernel;
  } catch {
    return null;
  }
}

const kernel = instantiate();
const scratch = kernel ? new Uint32Array(kernel.mem.buffer) : null;
const SRC_WORD = SIMD_PIECE_BYTES / 4;

/** True when the SIMD kernel is in use. */
export const simdAvailable = kernel !== null;

/** Words in one scratch piece. */
export const PIECE_WORDS = SRC_WORD;

/**
 * A piece of a vector held in scratch memory while several operands are added into it, so the
 * vector itself crosses the memory bus once, not once per operand.
 */
export const piece = {
  /** Copies target[off, off + n) into the scratch accumulator (n <= PIECE_WORDS). */
  load(target: Uint32Array, off: number, n: number): void {
    if (scratch) scratch.set(target.subarray(off, off + n), 0);
    else jsPiece.set(target.subarray(off, off + n), 0);
  },
  /** accumulator[i] += sign * words[i] (mod 2^32). */
  accumulate(words: Uint32Array, sign: 1 | -1): void {
    if (!kernel || !scratch) {
      const n = words.length;
      if (sign === 1) for (let i = 0; i < n; i++) jsPiece[i] = jsPiece[i]! + words[i]!;
      else for (let i = 0; i < n; i++) jsPiece[i] = jsPiece[i]! - words[i]!;
      return;
    }
    scratch.set(words, SRC_WORD);
    // Whole 16-byte lanes; the tail's extra lanes are scratch and are never stored.
    if (sign === 1) kernel.add(0, SIMD_PIECE_BYTES, Math.ceil(words.length / 4) * 16);
    else kernel.sub(0, SIMD_PIECE_BYTES, Math.ceil(words.length / 4) * 16);
  },
  /** Copies the accumulator back to target[off, off + n). */
  store(target: Uint32Array, off: number, n: number): void {
    target.set((scratch ?? jsPiece).subarray(0, n), off);
  },
};
const jsPiece = new Uint32Array(SRC_WORD);

/** target[off + i] += sign * words[i] (mod 2^32), for i < words.length. */
export function addWordsInto(target: Uint32Array, off: number, words: Uint32Array, sign: 1 | -1): void {
  for (let done = 0; done < words.length; done += PIECE_WORDS) {
    const n = Math.min(PIECE_WORDS, words.length - done);
    piece.load(target, off + done, n);
    piece.accumulate(words.subarray(done, done + n), sign);
    piece.store(target, off + done, n);
  }
}

/** Bytes staged at a time by {@link addBytesInto}: aligned words whatever the chunks' boundaries. */
const STAGE_BYTES = 1 << 20;
let stage = new Uint8Array(0);

/**
 * target[i] += the i-th little-endian 32-bit word of `chunks` taken end to end (mod 2^32). A
 * chunk may start and end at any byte (a masked input as its upload's messages brought it); the
 * bytes are staged in aligned words a megabyte at a time. Throws a RangeError, having added
 * nothing, when the chunks do not hold exactly `target.length` words.
 */
export function addBytesInto(target: Uint32Array, chunks: readonly Uint8Array[]): void {
  const total = chunks.reduce((n, c) => n + c.length, 0);
  if (total !== target.length * 4) throw new RangeError(`expected ${target.length * 4} bytes (${target.length} words), got ${total}`);
  if (stage.length === 0) stage = new Uint8Array(STAGE_BYTES);
  let fill = 0, at = 0;
  const flush = () => {
    addWordsInto(target, at, new Uint32Array(stage.buffer, 0, fill >> 2), 1);
    at += fill >> 2;
    fill = 0;
  };
  for (const c of chunks) {
    for (let from = 0; from < c.length;) {
      const n = Math.min(c.length - from, stage.length - fill);
      stage.set(c.subarray(from, from + n), fill);
      fill += n;
      from += n;
      if (fill === stage.length) flush();
    }
  }
  if (fill > 0) flush();
}

/**
 * target[i] += the i-th little-endian 32-bit word of the file at `path` (mod 2^32), read a
 * megabyte at a time with blocking reads: for a thread off the event loop (a mask thread). Throws
 * a RangeError, having added nothing, when the file does not hold exactly `target.length` words.
 */
export function addFileInto(target: Uint32Array, path: string): void {
  const bytes = target.length * 4;
  const from = fileReader(path, bytes);
  try {
    if (stage.length === 0) stage = new Uint8Array(STAGE_BYTES);
    for (let at = 0; at < bytes;) {
      const n = Math.min(STAGE_BYTES, bytes - at);
      from.next(stage, n);
      addWordsInto(target, at >> 2, new Uint32Array(stage.buffer, 0, n >> 2), 1);
      at += n;
    }
  } finally {
    from.close();
  }
}

/**
 * The words of the file at `sumPath` (a sum of `length` words kept in a file) += the words of
 * `source` (mod 2^32): a masked input's chunks taken end to end, or the file it was spooled to.
 * The sum is read, added to and written back a megabyte at a time with blocking calls, so that
 * no more than that of either is in memory: for a thread off the event loop (a mask thread).
 * Throws a RangeError, having added nothing, when `source` does not hold exactly `length` words.
 */
export function addIntoFile(sumPath: string, length: number, source: readonly Uint8Array[] | string): void {
  const bytes = length * 4;
  const from = typeof source === 'string' ? fileReader(source, bytes) : chunkReader(source, bytes);
  try {
    if (stage.length === 0) stage = new Uint8Array(STAGE_BYTES);
    if (sumStage.length === 0) sumStage = new Uint8Array(STAGE_BYTES);
    const fd = fs.openSync(sumPath, 'r+');
    try {
      for (let at = 0; at < bytes;) {
        const n = Math.min(STAGE_BYTES, bytes - at);
        readAt(fd, sumStage, n, at, sumPath);
        from.next(stage, n);
        addWordsInto(new Uint32Array(sumStage.buffer, 0, n >> 2), 0, new Uint32Array(stage.buffer, 0, n >> 2), 1);
        for (let put = 0; put < n;) {
          const w = fs.writeSync(fd, sumStage, put, n - put, at + put);
          if (w <= 0) throw Object.assign(new Error(`${sumPath}: wrote ${at + put} of ${bytes} bytes`), { code: 'ENOSPC' });
          put += w;
        }
        at += n;
      }
    } finally {
      fs.closeSync(fd);
    }
  } finally {
    from.close();
  }
}

/** The sum's piece in {@link addIntoFile}, beside `stage` (the source's). */
let sumStage = new Uint8Array(0);

/** Reads `n` bytes of `fd` at `pos` into the start of `into`. */
function readAt(fd: number, into: Uint8Array, n: number, pos: number, file: string): void {
  for (let got = 0; got < n;) {
    const r = fs.readSync(fd, into, got, n - got, pos + got);
    if (r <= 0) throw new Error(`${file}: read ${pos + got} bytes, expected more`);
    got += r;
  }
}

/** The next bytes of a source, copied into the start of a buffer in turn. */
interface SourceReader {
  next(into: Uint8Array, n: number): void;
  close(): void;
}

function fileReader(path: string, bytes: number): SourceReader {
  const fd = fs.openSync(path, 'r');
  const size = fs.fstatSync(fd).size;
  if (size !== bytes) {
    fs.closeSync(fd);
    throw new RangeError(`expected ${bytes} bytes (${bytes / 4} words), got ${size}`);
  }
  let at = 0;
  return {
    next(into, n) {
      readAt(fd, into, n, at, path);
      at += n;
    },
    close: () => fs.closeSync(fd),
  };
}

function chunkReader(chunks: readonly Uint8Array[], bytes: number): SourceReader {
  const total = chunks.reduce((n, c) => n + c.length, 0);
  if (total !== bytes) throw new RangeError(`expected ${bytes} bytes (${bytes / 4} words), got ${total}`);
  let i = 0, off = 0;
  return {
    next(into, n) {
      for (let put = 0; put < n;) {
        const c = chunks[i]!;
        const k = Math.min(c.length - off, n - put);
        into.set(c.subarray(off, off + k), put);
        put += k;
        off += k;
        if (off === c.length) {
          i++;
          off = 0;
        }
      }
    },
    close: () => {},
  };
}
