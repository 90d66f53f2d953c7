/**
 * The Jobs gRPC service: researchers submit job specs, list and follow jobs, cancel them, and
 * download a finished job's model (TF.js files and model card) as chunk streams.
 */
import { serverStream, unary, encodeBlob, type GetJobResponse, type JobInfo, type ModelFileHeader, type BlobChunk, callerOf, type JobsHandlers } from '../src/wire/index.js';
import { InvalidFieldError, ShuttingDownError } from '../src/errors.js';
import { ID_RULE, isId, type Logger } from '../src/util/index.js';
import { MODEL_FORMATS, parseJobSpec, type JobManager, type ModelFormat } from '../src/jobs/index.js';

/** What the service needs. */
export interface JobsServiceDeps {
  jobs: JobManager;
  log: Logger;
  closing: () => boolean;
}


function checkJobId(v: string): void {
  if (!isId(v)) throw new InvalidFieldError('job_id', `a job id (${ID_RULE})`, JSON.stringify(v));
}

type DownloadPart = { part: 'file'; file: ModelFileHeader } | { part: 'chunk'; chunk: BlobChunk };

/** Builds the handlers of `actiquest.v1.Jobs`. */
export function jobsServiceImpl(deps: JobsServiceDeps): JobsHandlers {
  const { jobs, log } = deps;
  return {
    SubmitJob: unary(log, 'SubmitJob', async (req: { spec: string }): Promise<JobInfo> => {
      if (deps.closing()) throw new ShuttingDownError('coordinator');
      if (!req.spec.trim()) throw new InvalidFieldError('spec', 'a YAML or JSON job spec', 'an empty string');
      const { config, description } = parseJobSpec(req.spec);
      const job = await jobs.start(config, { builtin: false, description, submittedBy: callerOf(req) });
      log.info('job submitted', { jobId: config.jobId, task: config.task, parameters: job.cost?.params, flops: job.cost?.flops, priority: config.priority });
      return jobs.info(job);
    }),

    ListJobs: unary(log, 'ListJobs', () => ({ jobs: jobs.list().map((j) => jobs.info(j)) })),

    GetJob: unary(log, 'GetJob', (req: { jobId: string }): GetJobResponse => {
      checkJobId(req.jobId);
      const j = jobs.get(req.jobId);
      // Everything but the validation seed: whoever knows it can regenerate the held-out data.
      const { validationSeed: _secret, ...config } = j.config;
      return { job: jobs.info(j), history: jobs.historyOf(j), configJson: JSON.stringify(config) };
    }),

    CancelJob: unary(log, 'CancelJob', async (req: { jobId: string }): Promise<JobInfo> => {
      checkJobId(req.jobId);
      const j = await jobs.cancel(req.jobId);
      log.info('job cancelled', { jobId: req.jobId });
      return jobs.info(j);
    }),

    DownloadModel: serverStream<{ jobId: string; format: string }, DownloadPart>(log, 'DownloadModel', async (req, send, signal) => {
      checkJobId(req.jobId);
      const format = req.format || 'all';
      if (!Object.hasOwn(MODEL_FORMATS, format)) throw new InvalidFieldError('format', `one of ${Object.keys(MODEL_FORMATS).join(', ')} (or empty for all)`, JSON.stringify(format.slice(0, 40)));
      for (const f of jobs.modelFiles(req.jobId, format as ModelFormat)) {
        const { header, chunks } = encodeBlob(f.bytes);
        await send({ part: 'file', file: { name: f.name, blob: header } });
        for (const chunk of chunks) {
          if (signal.aborted) return;
          await send({ part: 'chunk', chunk });
        }
      }
    }),
  };
}
