/**
 * JSON files written whole or not at all: to a temporary file of its own (two writers of the same
 * file, e.g. two jobs' rounds, never share one), then renamed over the target.
 */
import fs from 'node:fs/promises';
import path from 'node:path';

let tmpCount = 0;

/** Writes `value` as indented JSON to `file`, creating its folder. */
export async function writeJsonFile(file: string, value: unknown): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${++tmpCount}.tmp`;
  await fs.writeFile(tmp, JSON.stringify(value, null, 2));
  await fs.rename(tmp, file);
}
