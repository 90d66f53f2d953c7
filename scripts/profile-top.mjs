/**
 * Where a CPU profile's time went (a `.cpuprofile` written by `node --cpu-prof`, as
 * `AQ_NODE_ARGS='--cpu-prof --cpu-prof-dir=DIR' npm run bench:scale` makes the coordinator
 * write): seconds of self time by function, and, for `--callers NAME`, the call paths that
 * spent them in NAME. Usage: node scripts/profile-top.mjs FILE [--top 30] [--callers NAME]
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '30' }, callers: { type: 'string' } } });
if (positionals.length !== 1) {
  console.error('usage: node scripts/profile-top.mjs FILE.cpuprofile [--top 30] [--callers NAME]');
  process.exit(2);
}
const profile = JSON.parse(fs.readFileSync(positionals[0], 'utf8'));
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const spent = new Map();
profile.samples.forEach((id, i) => spent.set(id, (spent.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
const where = (n) => `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.split('/').slice(-2).join('/')}:${n.callFrame.lineNumber + 1}`;
const seconds = (us) => (us / 1e6).toFixed(2).padStart(8);
const total = [...spent.values()].reduce((a, b) => a + b, 0);
const idle = [...spent].filter(([id]) => byId.get(id).callFrame.functionName === '(idle)').reduce((a, [, us]) => a + us, 0);
console.log(`${positionals[0]}: ${(total / 1e6).toFixed(1)} s sampled, ${((total - idle) / 1e6).toFixed(1)} s not idle`);

const rank = (m) => [...m].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top));
if (!values.callers) {
  const self = new Map();
  for (const [id, us] of spent) {
    const k = where(byId.get(id));
    self.set(k, (self.get(k) ?? 0) + us);
  }
  for (const [k, us] of rank(self)) console.log(`${seconds(us)}  ${k}`);
} else {
  const paths = new Map();
  for (const [id, us] of spent) {
    if (byId.get(id).callFrame.functionName !== values.callers) continue;
    const chain = [];
    for (let cur = parent.get(id), d = 0; cur !== undefined && d < 6; cur = parent.get(cur), d++) chain.push(where(byId.get(cur)));
    const k = chain.join(' < ');
    paths.set(k, (paths.get(k) ?? 0) + us);
  }
  for (const [k, us] of rank(paths)) console.log(`${seconds(us)}  ${values.callers} < ${k}`);
}
