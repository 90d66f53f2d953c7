import { afterEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { UploadSpool } from './spool.js';
import { SpoolWriteError } from '../src/errors.js';

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanup.splice(0)) f();
});

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aq-spool-'));
  cleanup.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('the upload spool', () => {
  for (const [where, memory] of [['in a file', 0], ['in memory', 1 << 20]] as const) {
    it(`gives back what was appended as words, piece by piece in one buffer, and lets go of it once removed (${where})`, async () => {
      const spool = new UploadSpool(path.join(tempDir(), 'uploads'), memory);
      const words = Uint32Array.from({ length: 10_001 }, (_, i) => (i * 2654435761) >>> 0);
      const bytes = new Uint8Array(words.buffer);
      const input = spool.open('job-1/1/t0', bytes.length);
      // Chunks of odd sizes, as a sender may cut them (held ones start at odd offsets too).
      for (let at = 0; at < bytes.length; at += 4099) input.append(bytes.slice(at, at + 4099));
      expect(input.bytes).toBe(bytes.length);
      // A file's writes go on in the background: reading back waits for them.
      if (!memory) expect(() => [...input.words(4096)]).toThrow(/read before its writes are done/);
      await input.flush();
      expect(spool.files()).toHaveLength(memory ? 0 : 1);
      expect(spool.heldBytes).toBe(memory ? bytes.length : 0);
      const back: number[] = [];
      const buffers = new Set<ArrayBufferLike>();
      for (const piece of input.words(4096)) {
        buffers.add(piece.buffer);
        back.push(...piece);
      }
      expect(Uint32Array.from(back)).toEqual(words);
      expect(buffers.size).toBe(1);
      expect(new Uint8Array(input.readAll())).toEqual(bytes);
      // Chunks held in memory are handed over as appended, once; a file's are read back.
      // Chunks taken stay in the budget after the input is removed, until they are done.
      const taken = input.takeChunks();
      if (memory) expect(Buffer.concat(taken!.chunks)).toEqual(Buffer.from(bytes));
      else expect(taken).toBeNull();
      expect(input.takeChunks()).toBeNull();
      await input.remove();
      await input.remove();
      expect(spool.files()).toEqual([]);
      expect(spool.heldBytes).toBe(memory ? bytes.length : 0);
      taken?.done();
      taken?.done();
      expect(spool.heldBytes).toBe(0);
    });
  }

  it('holds the bytes received in memory while the budget has room, and moves an input that would pass it to a file', async () => {
    const spool = new UploadSpool(path.join(tempDir(), 'uploads'), 100);
    const bytes = (n: number, v: number) => new Uint8Array(n).fill(v);
    // Opening holds nothing: the budget counts bytes that came.
    const [a, b, c] = [spool.open('a', 60), spool.open('b', 60), spool.open('c', 40)];
    expect(spool.heldBytes).toBe(0);
    a.append(bytes(60, 1));
    b.append(bytes(30, 2));
    expect(spool.heldBytes).toBe(90);
    expect(spool.files()).toEqual([]);
    // b's next 30 would pass the budget: b goes to disk, its 30 held bytes written out and let go.
    b.append(bytes(30, 3));
    expect(spool.heldBytes).toBe(60);
    expect(spool.files()).toHaveLength(1);
    await b.flush();
    expect(new Uint8Array(b.readAll())).toEqual(Uint8Array.from([...bytes(30, 2), ...bytes(30, 3)]));
    expect(Array.from(b.words(8)).reduce((n, w) => n + w.length, 0)).toBe(15);
    c.append(bytes(40, 4));
    expect(spool.heldBytes).toBe(100);
    await a.remove();
    expect(spool.heldBytes).toBe(40);
    // An input once on disk stays there; one that can never fit goes there at once.
    b.append(bytes(10, 5));
    expect(spool.heldBytes).toBe(40);
    const big = spool.open('big', 101);
    expect(spool.files()).toHaveLength(2);
    await Promise.all([b, c, big].map((x) => x.remove()));
    expect(spool.heldBytes).toBe(0);
    expect(spool.files()).toEqual([]);
  });

  it('is emptied when opened: files of a process that stopped mid-upload do not stay', () => {
    const dir = path.join(tempDir(), 'uploads');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'left-over.part'), 'x');
    expect(new UploadSpool(dir).files()).toEqual([]);
  });

  it('on a full disk refuses the upload with RESOURCE_EXHAUSTED naming ENOSPC, and removes its file', async () => {
    // A 1 MiB tmpfs in a mount namespace of its own, reached through the holder's /proc root.
    const dir = tempDir();
    const holder: ChildProcess = spawn('unshare', ['--user', '--map-root-user', '--mount', 'sh', '-c', 'mount -t tmpfs -o size=1m tmpfs "$0" && echo mounted && exec sleep 100000', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    cleanup.push(() => holder.kill('SIGKILL'));
    await new Promise<void>((resolve, reject) => {
      holder.stdout!.once('data', () => resolve());
      holder.once('exit', (code) => reject(new Error(`unshare/mount failed (exit ${code})`)));
    });
    const spool = new UploadSpool(`/proc/${holder.pid}/root${dir}/uploads`);
    const file = spool.open('t0', 2 << 20);
    let err: unknown = null;
    try {
      // The writes go on in the background: one that failed throws at a later append or at flush.
      for (let i = 0; i < 4; i++) file.append(new Uint8Array(512 << 10));
      await file.flush();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SpoolWriteError);
    expect((err as SpoolWriteError).kind).toBe('resource-exhausted');
    expect((err as Error).message).toMatch(/^the coordinator could not store an upload on its disk \(ENOSPC: /);
    await file.remove();
    expect(spool.files()).toEqual([]);
  });

  it('hands a file over once, whole: it stays after the input is removed, until its taker is done', async () => {
    const spool = new UploadSpool(path.join(tempDir(), 'uploads'), 0);
    const input = spool.open('t0', 8192);
    for (let i = 0; i < 8; i++) input.append(new Uint8Array(1024).fill(i));
    expect(input.takeChunks()).toBeNull();
    await input.flush();
    const taken = input.takeFile()!;
    expect(taken.bytes).toBe(8192);
    expect(fs.readFileSync(taken.path)).toEqual(Buffer.concat(Array.from({ length: 8 }, (_, i) => Buffer.alloc(1024, i))));
    expect(input.takeFile()).toBeNull();
    await input.remove();
    expect(spool.files()).toHaveLength(1);
    taken.done();
    for (let i = 0; i < 100 && spool.files().length > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(spool.files()).toEqual([]);
  });
});
