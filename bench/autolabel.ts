/**
 * `npm run bench:autolabel`: how well the pose teachers label people whose keypoints are
 * known. Renders `--images` people (the pose task's renderer, at 256 x 256, three sites) and as
 * many empty scenes, labels each with every teacher at each `--thresholds`, and prints the
 * share of people kept, PCK@0.2 of the keypoints it labels (within 0.2 of the torso diameter
 * of the truth), the share of truly visible keypoints labelled, empty scenes taken for a
 * person, and milliseconds an image (both teacher passes) on the wasm backend.
 * Rendered people are shaded capsules, not photographs: the figures say how the pipeline
 * behaves, and are a floor rather than what the teacher does on photographs.
 */
import { parseArgs } from 'node:util';
import { selectBackend } from '../src/model/index.js';
import { labelPerson, loadTeacher, TEACHERS, type TeacherName } from '../src/tasks/autolabel.js';
import { renderedPerson } from '../test/fixtures/rendered-people.js';
import { KP, NUM_JOINTS } from '../src/skeleton/index.js';
import { Random } from '../src/util/index.js';

const { values } = parseArgs({ options: { images: { type: 'string', default: '60' }, thresholds: { type: 'string', default: '0.2,0.3,0.4' } } });
const count = Number(values.images);
const thresholds = values.thresholds.split(',').map(Number);
const SIZE = 256;
await selectBackend('wasm');

/** `count` renders with their keypoints in pixels (the same for every teacher). */
function renders(drawPerson: boolean): { rgba: Uint8Array; kp: Float32Array }[] {
  const rng = new Random(`bench-autolabel/${drawPerson}`);
  return Array.from({ length: count }, (_, i) => renderedPerson(rng, i, SIZE, drawPerson));
}

const people = renders(true), empty = renders(false);
console.log(`${count} rendered people and ${count} empty scenes, ${SIZE} x ${SIZE}`);
console.log('teacher             threshold  kept   PCK@0.2  visible labelled  empty taken  ms/image');
for (const name of Object.keys(TEACHERS) as TeacherName[]) {
  const teacher = await loadTeacher(name);
  for (const threshold of thresholds) {
    let kept = 0, found = 0, labelled = 0, visible = 0, taken = 0;
    const started = performance.now();
    for (const { rgba, kp } of people) {
      const person = labelPerson(teacher, { width: SIZE, height: SIZE, data: rgba }, threshold, 5);
      if (!person) continue;
      kept++;
      const torso = Math.hypot(kp[KP.left_shoulder * 3]! - kp[KP.right_hip * 3]!, kp[KP.left_shoulder * 3 + 1]! - kp[KP.right_hip * 3 + 1]!);
      for (let k = 0; k < NUM_JOINTS; k++) {
        if (kp[k * 3 + 2] === 0) continue;
        visible++;
        if (person.keypoints[k * 3 + 2] === 0) continue;
        labelled++;
        if (Math.hypot(person.keypoints[k * 3]! - kp[k * 3]!, person.keypoints[k * 3 + 1]! - kp[k * 3 + 1]!) <= 0.2 * torso) found++;
      }
    }
    for (const { rgba } of empty) if (labelPerson(teacher, { width: SIZE, height: SIZE, data: rgba }, threshold, 5)) taken++;
    const ms = (performance.now() - started) / (2 * count);
    const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
    console.log(`${name.padEnd(19)} ${threshold.toFixed(2).padStart(9)}  ${pct(kept / count).padStart(5)}  ${(found / Math.max(labelled, 1)).toFixed(3).padStart(7)}  ${pct(labelled / Math.max(visible, 1)).padStart(16)}  ${pct(taken / count).padStart(11)}  ${ms.toFixed(0).padStart(8)}`);
  }
  teacher.model.dispose();
}
