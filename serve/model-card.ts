/** What the server says of its model: the card at GET /v1/model, and which model computed a result. */
import * as path from 'node:path';
import type { Manifest, ModelFile } from '../core/bundle';
import type { Engine, ModelVersion } from './engine/engine';

/** Which model answers: its version (the file's sha256, shortened), file, precision and why it was chosen. */
export function modelIdentity(v: ModelVersion): { version: string; file: string; format: string; precision: string; sha256: string; why: string; bundle: string; loadedAt: string } {
  return { version: v.version, file: v.file.file, format: v.file.format, precision: v.file.precision, sha256: v.file.sha256, why: v.why, bundle: path.basename(v.realDir), loadedAt: v.loadedAt };
}

/** The model card: what a client needs to read the results, nothing of the training machine. */
export function modelCard(engine: Engine, bundleId?: string): object {
  const m: Manifest = engine.manifest, file: ModelFile = engine.file;
  return {
    bundle: bundleId, task: m.task, kind: m.kind, createdAt: m.createdAt,
    classes: m.classes, void: 255, input: m.input,
    version: engine.model.version,
    model: { ...modelIdentity(engine.model), bytes: file.bytes, runtime: engine.runtime, batch: engine.batchLimit },
    previous: engine.previous ? modelIdentity(engine.previous) : null,
    // Nothing of the converting machine (its paths): names and counts only.
    parity: m.parity, evaluation: m.evaluation && { ...m.evaluation, source: path.basename(m.evaluation.source) },
    calibration: m.calibration ? { frames: m.calibration.frames } : undefined, check: m.check && { frames: m.check.frames },
    drift: file.drift ? { feature: file.drift.feature, frames: file.drift.frames, meaning: file.drift.meaning } : null,
  };
}
