/**
 * Where a CPU profile's time went (a `.cpuprofile` written by `node --cpu-prof`, as
 * `AQ_NODE_ARGS='--cpu-prof --cpu-prof-dir=DIR' npm run bench:scale` makes the coordinator
 * write): seconds of self time by function, and, for `--callers NAME`, the call paths that
 * spent them in NAME; for `--long MS`, the stretches of MS or more in which the thread never went
 * idle (what holds the event loop: each stretch's start, length and what it spent most in, then
 * what they all spent their time in, and the calls they began from). Usage: node scripts/profile-top.mjs FILE [--top 30] [--callers NAME | --long MS]
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '30' }, callers: { type: 'string' }, long: { type: 'string' } } });
if (positionals.length !== 1) {
  console.error('usage: node scripts/profile-top.mjs FILE.cpuprofile [--top 30] [--callers NAME | --long MS]');
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
/** The outermost JavaScript frame of a sample: the call its task began from. */
const entry = (id) => {
  let outer = byId.get(id);
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const n = byId.get(cur);
    if (n.callFrame.url) outer = n;
  }
  return where(outer);
};
if (values.long) {
  const limitUs = Number(values.long) * 1000;
  const stretches = [];
  let start = 0, us = 0;
  const close = (end) => {
    if (us >= limitUs) stretches.push({ start, end, us });
    us = 0;
  };
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    if (byId.get(id).callFrame.functionName === '(idle)') return close(i);
    if (us === 0) start = i;
    us += dt;
  });
  close(profile.samples.length);
  const held = stretches.reduce((a, s) => a + s.us, 0);
  console.log(`${stretches.length} stretches of ${values.long} ms or more without idling, ${(held / 1e6).toFixed(2)} s in all; the longest ${(Math.max(0, ...stretches.map((s) => s.us)) / 1e3).toFixed(0)} ms`);
  const self = new Map(), entries = new Map();
  const at = [];
  profile.timeDeltas.reduce((t, dt, i) => (at[i] = t + dt), 0);
  for (const s of stretches) {
    const own = new Map();
    for (let i = s.start; i < s.end; i++) {
      const k = where(byId.get(profile.samples[i]));
      own.set(k, (own.get(k) ?? 0) + (profile.timeDeltas[i] ?? 0));
    }
    const top = [...own].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([k, t]) => `${k} ${(t / 1e3).toFixed(0)} ms`).join('; ');
    console.log(`  at ${((at[s.start] - at[0]) / 1e6).toFixed(1)} s, ${(s.us / 1e3).toFixed(0)} ms: ${top}`);
  }
  for (const s of stretches) {
    for (let i = s.start; i < s.end; i++) {
      const id = profile.samples[i], dt = profile.timeDeltas[i] ?? 0;
      const k = where(byId.get(id)), e = entry(id);
      self.set(k, (self.get(k) ?? 0) + dt);
      entries.set(e, (entries.get(e) ?? 0) + dt);
    }
  }
  console.log('self time within them:');
  for (const [k, t] of rank(self)) console.log(`${seconds(t)}  ${k}`);
  console.log('by the call each sample began from:');
  for (const [k, t] of rank(entries)) console.log(`${seconds(t)}  ${k}`);
} else if (!values.callers) {
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
