/**
 * A live stream as the server shows it (serve/streams.ts), run by streams/live.ts: the latest
 * overlay as JPEG frames for MJPEG viewers, and the latest statistics.
 */

export interface LiveStats {
  name: string;
  /** The source as given, credentials removed. */
  source: string;
  state: 'connecting' | 'live' | 'reconnecting' | 'ended' | 'stopped';
  /** Frames read from the source, segmented, and dropped (arrived while the engine was busy). */
  frames: { read: number; segmented: number; dropped: number };
  /** Segmented frames per second over the last few seconds, and the source's own rate. */
  fps: number;
  sourceFps: number;
  reconnects: number;
  /** Seconds from reading a frame to its overlay being ready (the latest frame). */
  latency: number | null;
  drift: number | null;
  /** Share of the latest frame's pixels per class name. */
  fractions: Record<string, number>;
  lastError?: string;
  /** The rolling segment file being written, where --out is given. */
  segment?: string;
}

export interface LiveFeed {
  readonly name: string;
  stats(): LiveStats;
  /** Calls `onFrame` with every new overlay JPEG until the returned function is called. */
  subscribe(onFrame: (jpeg: Buffer) => void): () => void;
  /** The latest overlay JPEG, if any (a new viewer sees it at once). */
  latest(): Buffer | undefined;
}
