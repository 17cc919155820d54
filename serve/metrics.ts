/**
 * Prometheus metrics of one server (its own registry, so tests can run several): requests by route
 * and status, per-stage latency (decode, queue, infer, encode, total: Triton's split of queue and
 * compute time), batch sizes, queue depth, frames dropped and why, drift, worker count, and
 * prom-client's process and event-loop-lag metrics.
 */
import * as fs from 'node:fs';
import * as client from 'prom-client';

export type Stage = 'decode' | 'queue' | 'infer' | 'encode' | 'total';

export interface ServeMetrics {
  registry: client.Registry;
  requests: client.Counter<'route' | 'status'>;
  stage: client.Histogram<'stage'>;
  batch: client.Histogram;
  queueDepth: client.Gauge;
  dropped: client.Counter<'reason'>;
  drift: client.Histogram;
  workers: client.Gauge;
  inProgress: client.Gauge;
  workerRss: client.Gauge<'worker'>;
  frames: client.Counter<'version'>;
  reloads: client.Counter<'result'>;
  model: client.Gauge<'version' | 'file' | 'precision'>;
  captured: client.Counter;
}

/** `capture`: the frame capture's counts (i2i serve --capture), read at each scrape: frames of /segment, video jobs and live streams alike. */
export function createMetrics(capture?: () => { kept: number }): ServeMetrics {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 });
  const r = [registry];
  return {
    registry,
    requests: new client.Counter({ name: 'i2i_http_requests_total', help: 'HTTP requests by route and status.', labelNames: ['route', 'status'], registers: r }),
    stage: new client.Histogram({ name: 'i2i_request_stage_seconds', help: 'Time per request stage: decode, queue (waiting for a worker), infer (the model call), encode, total.', labelNames: ['stage'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: r }),
    batch: new client.Histogram({ name: 'i2i_batch_size', help: 'Frames per model call.', buckets: [1, 2, 4, 8, 16, 32], registers: r }),
    queueDepth: new client.Gauge({ name: 'i2i_queue_depth', help: 'Frames waiting for an inference worker.', registers: r }),
    dropped: new client.Counter({ name: 'i2i_frames_dropped_total', help: 'Frames not computed: deadline (expired in the queue), queue-full, aborted (client went away), closed, worker-lost.', labelNames: ['reason'], registers: r }),
    drift: new client.Histogram({ name: 'i2i_drift', help: 'Per-frame drift from the target domain (0 typical, 1 = 95th percentile of the calibration frames).', buckets: [0.25, 0.5, 1, 1.5, 2, 3, 5, 10], registers: r }),
    workers: new client.Gauge({ name: 'i2i_workers_ready', help: 'Inference worker processes that are ready.', registers: r }),
    workerRss: new client.Gauge({ name: 'i2i_worker_resident_memory_bytes', help: 'Resident memory of each inference worker process (where a leak in a model runtime would show).', labelNames: ['worker'], registers: r }),
    frames: new client.Counter({ name: 'i2i_frames_total', help: 'Frames segmented by POST /segment, by the model version that computed them.', labelNames: ['version'], registers: r }),
    reloads: new client.Counter({ name: 'i2i_model_reloads_total', help: 'Model reloads (SIGHUP, POST /v1/model/reload or rollback) by result: ok, failed (the served model kept).', labelNames: ['result'], registers: r }),
    model: new client.Gauge({ name: 'i2i_model_info', help: 'The active model (value 1), by version, file and precision.', labelNames: ['version', 'file', 'precision'], registers: r }),
    captured: new client.Counter({ name: 'i2i_frames_captured_total', help: 'Frames kept by --capture (drift at or above --capture-drift, within the rate), from POST /segment, video jobs and live streams.', registers: r,
      collect() { if (capture) { this.reset(); this.inc(capture().kept); } } }),
    inProgress: new client.Gauge({ name: 'i2i_segment_requests_in_progress', help: 'POST /segment requests being read, decoded, queued, computed or encoded.', registers: r }),
  };
}

/** A process's resident memory from /proc (Linux); undefined where it cannot be read. */
export function residentBytes(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch { return undefined; }
}
