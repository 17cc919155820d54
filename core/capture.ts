/**
 * What video jobs and live streams (streams/) see of drift-driven capture: a sampler per job or
 * stream to offer decoded frames to. serve/capture.ts implements it (FrameCapture); streams/ knows
 * only these types, so it depends on the serving layer's engine alone.
 */

/** A decoded RGB frame. */
export interface RawFrame { data: Buffer; width: number; height: number }

/** One source's sampler: keeps a drifted frame at most every so often of the source's time (pts, seconds). */
export interface FrameSampler {
  offer(frame: RawFrame, drift: number | null, version: string, pts: number): boolean;
}

/** The capture a server hands to its jobs and streams. */
export interface FrameSink {
  sampler(source: string): FrameSampler;
}

/** A job runner or stream that captures once given a sink (after the server made both). */
export interface CaptureTarget { captureTo(capture: FrameSink): void }
