/**
 * The researchers' commands, each one gRPC call to the coordinator's Jobs service:
 *
 *   actiquest submit job.yaml     check and start a job (YAML or JSON spec)
 *   actiquest jobs                list the jobs
 *   actiquest job ID              one job and its per-round history
 *   actiquest cancel ID           stop a job for good
 *   actiquest download ID --out DIR   a finished job's model (TF.js files) and model card
 *
 * Output is a few plain lines (or `--json`); errors are the coordinator's message, exit 1.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseOptions, type OptionTable } from '../src/util/index.js';
import { ConfigError, InvalidFieldError } from '../src/errors.js';
import { callServerStream, callUnary, makeClient, useTlsForClients, BlobAssembler, JobsClient, type JobInfo, type RoundResult } from '../src/wire/index.js';
import { loadSigner } from '../src/chain/index.js';
import { HOTKEY_OPTIONS, hotkeySourceOf, CLIENT_TLS_OPTIONS, clientTlsOf, SESSION_KEY_OPTIONS } from '../src/node/index.js';

const CLIENT_OPTIONS = {
  coordinator: { type: 'string', default: '127.0.0.1:50051', env: 'AQ_COORDINATOR', description: 'host:port of the coordinator' },
  ...CLIENT_TLS_OPTIONS,
  timeout: { type: 'number', default: 60, min: 1, max: 3600, description: 'seconds to wait for the coordinator' },
  json: { type: 'boolean', default: false, description: 'print the coordinator\'s answer as JSON' },
  out: { type: 'string', default: '', description: 'download: folder to write the model files into' },
  format: { type: 'string', default: 'all', choices: ['all', 'tfjs', 'onnx'], description: 'download: the model as TF.js files, as ONNX (model.onnx), or both; the model card comes with each' },
  ...HOTKEY_OPTIONS,
  ...SESSION_KEY_OPTIONS,
} as const satisfies OptionTable;

/** The researcher commands and their one-line summaries (for `actiquest --help`). */
export const JOB_COMMANDS = {
  submit: 'submit a job spec (YAML or JSON): actiquest submit job.yaml',
  jobs: 'list the coordinator\'s jobs',
  job: 'show a job and its per-round history: actiquest job ID',
  cancel: 'cancel a pending or running job: actiquest cancel ID',
  download: 'download a finished job\'s model (TF.js and ONNX) and model card: actiquest download ID --out DIR [--format onnx]',
} as const;

type Out = (line: string) => void;

const pct = (v: number) => `${(v * 100).toFixed(1)}%`;
const fmtMetric = (metric: string, v: number) => (metric === 'loss' ? v.toFixed(4) : metric === 'mean_error' ? v.toFixed(4) : pct(v));
const fmtNum = (n: number) => n.toLocaleString('en-US');
const fmtFlops = (f: number) => (f >= 1e9 ? `${(f / 1e9).toFixed(2)} GFLOPs` : f >= 1e6 ? `${(f / 1e6).toFixed(1)} MFLOPs` : `${fmtNum(f)} FLOPs`);

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd());
}

function describe(j: JobInfo): string[] {
  const lines = [
    `job ${j.jobId}: ${j.task}, ${j.state}${j.state !== 'RUNNING' ? '' : j.phase === 'WAITING' ? ' (waiting for trainers or data)' : ` (phase ${j.phase}, ${j.trainers} trainers)`}, ${j.roundsDone} of ${j.roundsTotal} rounds, priority ${j.priority} x task weight ${j.taskWeight}`,
    `model: ${fmtNum(j.parameters)} parameters, ${fmtFlops(j.flops)} a sample; metric ${j.metric}${j.roundsDone > 0 ? ` ${fmtMetric(j.metric, j.metricValue)}` : ''}`,
  ];
  if (j.failure) lines.push(`failed: ${j.failure}`);
  if (j.description) lines.push(`description: ${j.description}`);
  if (j.submittedBy) lines.push(`submitted by ${j.submittedBy}`);
  return lines;
}

/** The per-round table; a work-step job (`orderF1`) gets the out-of-order flag's F1 too. */
function history(rounds: RoundResult[], metric: string, orderF1 = false): string[] {
  if (rounds.length === 0) return ['no round completed yet'];
  const f1 = (r: RoundResult) => (orderF1 ? [r.valOrderF1.toFixed(3)] : []);
  return table([
    ['round', 'trainers', 'samples', 'train loss', 'val loss', metric === 'accuracy' ? (orderF1 ? 'step accuracy' : 'accuracy') : 'val metric', ...(orderF1 ? ['order F1'] : []), 'seconds'],
    ...rounds.map((r) => [String(r.round), `${r.participants}/${r.cohort}`, String(r.samples), r.trainLoss.toFixed(4), r.valLoss.toFixed(4), pct(r.valAccuracy), ...f1(r), r.durationSeconds.toFixed(1)]),
  ]);
}

/** Runs `actiquest <command> ...` for one of {@link JOB_COMMANDS}. */
export async function runJobCommand(command: keyof typeof JOB_COMMANDS, argv: string[], env: NodeJS.ProcessEnv = process.env, out: Out = (l) => process.stdout.write(`${l}\n`)): Promise<void> {
  const takesArg = command !== 'jobs';
  const [arg, ...flags]: [string | undefined, ...string[]] = takesArg && argv[0] && !argv[0].startsWith('--') ? [argv[0], ...argv.slice(1)] : [undefined, ...argv];
  const o = parseOptions(CLIENT_OPTIONS, flags, env, `actiquest ${command}${takesArg ? (command === 'submit' ? ' FILE' : ' ID') : ''} [options]`, JOB_COMMANDS[command]);
  if (takesArg && !arg) throw new ConfigError(command, command === 'submit' ? 'a job spec file' : 'a job id', 'nothing');
  const { tlsCa } = clientTlsOf(o);
  if (tlsCa) useTlsForClients(tlsCa);
  // Signed with the researcher's hotkey when one is given (a coordinator with --auth signed
  // takes nothing else).
  const hotkey = hotkeySourceOf(o, env);
  const signer = hotkey ? await loadSigner(hotkey) : null;
  const client = makeClient(JobsClient, o.coordinator, undefined, signer);
  const call = { timeoutMs: o.timeout * 1000 };
  try {
    switch (command) {
      case 'submit': {
        let spec: string;
        try {
          spec = fs.readFileSync(arg!, 'utf8');
        } catch (err) {
          throw new ConfigError('submit', 'a readable job spec file', `${arg} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
        }
        const j = await callUnary(client, 'SubmitJob', { spec }, call);
        if (o.json) return out(JSON.stringify(j));
        out(`submitted job ${j.jobId} (${j.task}): ${fmtNum(j.parameters)} parameters, ${fmtFlops(j.flops)} a sample, ${j.roundsTotal} rounds, priority ${j.priority}; ${j.state}`);
        out(`follow it with: actiquest job ${j.jobId}`);
        return;
      }
      case 'jobs': {
        const { jobs } = await callUnary(client, 'ListJobs', {}, call);
        if (o.json) return out(JSON.stringify(jobs));
        if (jobs.length === 0) return out('no jobs');
        for (const line of table([
          ['JOB', 'TASK', 'STATE', 'ROUNDS', 'METRIC', 'PRIORITY', 'SUBMITTED'],
          ...jobs.map((j) => [j.jobId, j.task, j.state, `${j.roundsDone}/${j.roundsTotal}`, j.roundsDone > 0 ? `${j.metric} ${fmtMetric(j.metric, j.metricValue)}` : j.metric,
            String(j.priority), new Date(j.submittedUnixMs).toISOString().slice(0, 16).replace('T', ' ')]),
        ])) out(line);
        return;
      }
      case 'job': {
        const r = await callUnary(client, 'GetJob', { jobId: arg }, call);
        if (!r.job) throw new InvalidFieldError('GetJobResponse.job', 'the job', 'nothing');
        if (o.json) return out(JSON.stringify({ ...r, config: JSON.parse(r.configJson), configJson: undefined }));
        for (const line of [...describe(r.job), '', ...history(r.history, r.job.metric, r.job.task === 'worksteps')]) out(line);
        return;
      }
      case 'cancel': {
        const j = await callUnary(client, 'CancelJob', { jobId: arg }, call);
        if (o.json) return out(JSON.stringify(j));
        out(`job ${j.jobId} cancelled after ${j.roundsDone} of ${j.roundsTotal} rounds`);
        return;
      }
      case 'download': {
        if (!o.out) throw new ConfigError('out', 'a folder to write the model into', 'nothing');
        const dir = path.resolve(o.out);
        fs.mkdirSync(dir, { recursive: true });
        const written: { name: string; bytes: number }[] = [];
        let asm: { name: string; a: BlobAssembler } | null = null;
        const finish = () => {
          if (!asm) return;
          const bytes = asm.a.finish();
          fs.writeFileSync(path.join(dir, `${asm.name}.tmp`), bytes);
          fs.renameSync(path.join(dir, `${asm.name}.tmp`), path.join(dir, asm.name));
          written.push({ name: asm.name, bytes: bytes.length });
          asm = null;
        };
        for await (const msg of callServerStream(client, 'DownloadModel', { jobId: arg, format: o.format }, call)) {
          if (msg.part === 'file' && msg.file) {
            const file = msg.file;
            finish();
            if (!/^\w[\w.-]*$/.test(file.name)) throw new InvalidFieldError('file.name', 'a plain file name', JSON.stringify(file.name));
            asm = { name: file.name, a: new BlobAssembler(file.blob, { maxBytes: 1 << 30 }) };
          } else if (asm && msg.chunk) {
            asm.a.push(msg.chunk);
          } else {
            throw new InvalidFieldError('DownloadModelResponse', 'a file header first', 'a chunk');
          }
        }
        finish();
        if (o.json) return out(JSON.stringify({ jobId: arg, dir, files: written }));
        for (const f of written) out(`${path.join(dir, f.name)}  ${fmtNum(f.bytes)} bytes, sha256 checked`);
        const kinds = [
          ...(written.some((f) => f.name === 'model.json') ? [`a TF.js layers model (tf.loadLayersModel on model.json${written.some((f) => f.name === 'aq-layers.js') ? ', after loading aq-layers.js, its layers for stock TF.js' : ''})`] : []),
          ...(written.some((f) => f.name === 'model.onnx') ? ['an ONNX model (model.onnx: input "input", output "output", opset in the card)'] : []),
        ];
        out(`model of job ${arg} written to ${dir}: ${kinds.join(', ')} and its model card`);
        return;
      }
    }
  } finally {
    client.close();
  }
}
