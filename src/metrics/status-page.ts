/**
 * The status page a role serves beside /metrics: `/` is one HTML page (no external resources,
 * a small inline script) that polls `/status.json` every 2 s and draws what it holds. Read-only;
 * the JSON holds nothing secret (no seeds, keys or updates). Each role gives its own JSON;
 * the page draws the sections present: jobs (with their metric curve), trainers, dataset nodes,
 * weights, validators, tasks.
 */

/** What `/status.json` holds; every section is optional. */
export interface StatusDocument {
  role: 'coordinator' | 'trainer' | 'dataset';
  /** The node's id or hotkey. */
  id: string;
  updatedAt: string;
  /** Lines of key facts shown at the top (chain status, backend, ...). */
  facts: [string, string][];
  jobs?: { jobId: string; task: string; state: string; roundsDone: number; roundsTotal: number; phase: string; metric: string; curve: { round: number; value: number }[] }[];
  /** Tables: a title, column names, rows of cells. */
  tables: { id: string; title: string; columns: string[]; rows: (string | number)[][] }[];
}

/** The page: the same for every role; it draws whatever /status.json holds. */
export const STATUS_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Actiquest status</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d2430;background:#f7f8fa}
h1{font-size:20px;margin:0 0 .2em}h2{font-size:16px;margin:1.4em 0 .4em}
.muted{color:#667}table{border-collapse:collapse;background:#fff;min-width:40%}
th,td{padding:4px 10px;border-bottom:1px solid #e3e6ea;text-align:left;font-variant-numeric:tabular-nums}
th{background:#eef1f5;font-weight:600}.facts td:first-child{color:#667}
.job{background:#fff;border:1px solid #e3e6ea;padding:10px 14px;margin:8px 0;display:flex;gap:24px;align-items:center}
.state{font-weight:600}svg{background:#fbfcfd;border:1px solid #e3e6ea}
</style></head><body>
<h1 id="title">Actiquest</h1><div class="muted" id="updated">loading /status.json ...</div>
<table class="facts" id="facts"></table>
<div id="jobs"></div><div id="tables"></div>
<script>
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));
function curve(points) {
  if (points.length === 0) return '<svg width="260" height="80" class="curve"></svg>';
  const w = 260, h = 80, xs = points.map((p) => p.round), ys = points.map((p) => p.value);
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1), y0 = Math.min(...ys, 0), y1 = Math.max(...ys, y0 + 1e-9);
  const pt = (p) => (8 + (p.round - x0) / (x1 - x0) * (w - 16)).toFixed(1) + ',' + (h - 8 - (p.value - y0) / (y1 - y0) * (h - 16)).toFixed(1);
  return '<svg width="' + w + '" height="' + h + '" class="curve"><polyline fill="none" stroke="#2b6cb0" stroke-width="2" points="' + points.map(pt).join(' ') + '"/>'
    + points.map((p) => '<circle r="2.5" fill="#2b6cb0" cx="' + pt(p).split(',')[0] + '" cy="' + pt(p).split(',')[1] + '"/>').join('') + '</svg>';
}
function table(t) {
  return '<h2>' + esc(t.title) + '</h2><table id="' + esc(t.id) + '"><thead><tr>' + t.columns.map((c) => '<th>' + esc(c) + '</th>').join('') + '</tr></thead><tbody>'
    + (t.rows.length ? t.rows.map((r) => '<tr>' + r.map((c) => '<td>' + esc(c) + '</td>').join('') + '</tr>').join('') : '<tr><td colspan="' + t.columns.length + '" class="muted">none yet</td></tr>') + '</tbody></table>';
}
async function refresh() {
  try {
    const s = await (await fetch('status.json', { cache: 'no-store' })).json();
    document.getElementById('title').textContent = 'Actiquest ' + s.role + ' ' + s.id;
    document.getElementById('updated').textContent = 'updated ' + new Date(s.updatedAt).toLocaleTimeString() + ' (every 2 s)';
    document.getElementById('facts').innerHTML = s.facts.map(([k, v]) => '<tr><td>' + esc(k) + '</td><td>' + esc(v) + '</td></tr>').join('');
    document.getElementById('jobs').innerHTML = (s.jobs ?? []).length ? '<h2>Jobs</h2>' + s.jobs.map((j) => '<div class="job" data-job="' + esc(j.jobId) + '"><div><b>' + esc(j.jobId) + '</b> <span class="muted">' + esc(j.task) + '</span><br><span class="state">' + esc(j.state) + '</span> round <span class="round">' + j.roundsDone + '</span>/' + j.roundsTotal + ', phase ' + esc(j.phase) + '</div><div>' + curve(j.curve) + '<div class="muted">' + esc(j.metric) + ' by round' + (j.curve.length ? ' (last ' + j.curve[j.curve.length - 1].value.toFixed(3) + ')' : '') + '</div></div></div>').join('') : '';
    document.getElementById('tables').innerHTML = s.tables.map(table).join('');
  } catch (err) {
    document.getElementById('updated').textContent = 'cannot read status.json: ' + err.message;
  }
}
refresh();
setInterval(refresh, 2000);
</script></body></html>
`;

/** Fixed-point text of a number for the page's cells. */
export const fmt = (x: number, digits = 3): string => (Number.isFinite(x) ? x.toFixed(digits) : '');
