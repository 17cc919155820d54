import * as os from 'node:os';

export const SERVE_HELP = `i2i serve --bundle DIR [--port 8080] [--host 127.0.0.1]
            [--runtime tflite|tfjs] [--precision fp32|int8|fp16|uint8]
            [--workers N] [--threads T] [--max-queue N] [--max-batch N] [--max-wait-ms MS]
            [--timeout-ms MS] [--max-bytes B] [--max-pixels P] [--token-file FILE] [--drain-timeout-ms MS] [--drain-delay-ms MS]
            [--admin-token-file FILE] [--bundle-root DIR] [--capture DIR [--capture-drift 1] [--capture-max 2000] [--capture-max-bytes 2147483648] [--capture-per-min 60] [--capture-every 5]]
  POST /segment (image/jpeg|png|webp body or multipart field "image"; ?format=png|json|overlay|labels),
  GET /healthz /readyz /v1/model /metrics /openapi.json. Default model: the fastest file of the bundle
  whose parity stayed within 1 point of float32; default pool: one worker process per core (${os.availableParallelism()} here), 1 thread each.
  Video jobs: POST /videos (video/* body or multipart "video") -> 202 {id}; GET /videos[/ID[/result[?stats=1]]];
  DELETE /videos/ID. In-process (--video-concurrency 1, --video-backlog 16, --video-store DIR, default a
  temporary directory; jobs do not survive a restart; --video-store-max-bytes 21474836480: finished
  jobs go oldest first to make room, a video that still does not fit is refused with 503), --video-dir DIR lets clients name files in DIR
  ({"path"}), --max-video-bytes (2 GiB), --max-video-pixels (4096x2304 = 9437184 per frame),
  --upload-timeout-ms (10 min), --no-videos turns it off. Playlists, still images and containers
  other than MP4/MOV, MKV/WebM, AVI, MPEG-TS and FLV are refused (400).
  Scale-out: --redis redis://HOST:PORT [--queue i2i-videos] [--store DIR] [--segment-seconds 60] [--retire-after 300] puts
  /videos jobs on BullMQ, split on keyframes into segments for any number of i2i worker processes.
  A video runs on the bundle served when it was queued: after a reload new videos wait for workers
  of the new bundle, the old bundle's workers finish the old ones; videos of a bundle no server
  serves and no worker has run for --retire-after seconds (300) fail, saying so.
  Live streams: --stream NAME=URL (repeatable; rtsp://, http(s)://, or a file played at its rate, --loop)
  -> GET /streams/NAME.mjpeg and /streams/NAME; --stream-out DIR keeps rolling MP4s (--stream-segment-seconds 60).
  Model versions: every response names its model (X-Model-Version: the served file's sha256, 12 hex);
  SIGHUP reloads the --bundle path (switch a symlink, then signal), POST /v1/model/reload (admin token
  from --admin-token-file; {"bundle": NAME} under --bundle-root) and POST /v1/model/rollback load the
  new model in a new pool, warm it and switch; requests in flight finish on the old one; a bundle that
  fails leaves the old one serving (422). The input size and classes must stay the same.
  Capture: --capture DIR keeps uploaded frames whose drift is at least --capture-drift (re-encoded
  without metadata, with capture.jsonl: drift, time, model version), at most --capture-per-min a
  minute, --capture-max frames and --capture-max-bytes on disk (oldest removed); i2i train --from RUN
  --target-frames DIR adapts to them. Video jobs and --stream sources offer their decoded frames too
  (PNG; source: the job or stream and the frame's pts), at most one per --capture-every seconds of
  each video or stream.
  Logs JSON lines to stdout.
`;

export const STREAM_HELP = `i2i segment-stream <url|file> --bundle DIR [--out DIR] [--segment-seconds 60] [--name NAME]
            [--serve [--port 8080] [--host 127.0.0.1]] [--loop] [--runtime R] [--precision P] [--workers N]
            [--threads T] [--alpha A] [--json]
  reads RTSP / HTTP / ... or a file at its native rate through ffmpeg, segments the newest frame
  whenever the engine is free and drops the rest (counted), reconnects with backoff when the source
  drops. --out: rolling MP4 segments with the overlay, each with its .jsonl stats lines. --serve: the
  overlay at GET /streams/NAME.mjpeg and its stats at GET /streams/NAME beside POST /segment.
  Prints a stats line every 5 s (--json: JSON lines). Ctrl-C stops with the current segment playable.
`;

export const WORKER_HELP = `i2i worker --bundle DIR --redis redis://HOST:PORT [--queue i2i-videos] [--store DIR] [--concurrency 1]
            [--workers N] [--threads T] [--runtime tflite|tfjs] [--precision P] [--lock-ms 30000]
            [--segment-timeout-ms 300000] [--segment-ms-per-frame 2000] [--redis-wait 60]
            [--capture DIR [--capture-drift 1] [--capture-max 2000] [--capture-max-bytes B] [--capture-per-min 60] [--capture-every 5]]
  takes /videos segments off the BullMQ queue of i2i serve --redis (any number of workers, on any
  machine that sees --store), segments them on its own engine and joins finished videos. Takes the
  segments of its own bundle only; refuses to start (exit 2) when the servers serve other bundles
  and none of its segments waits, and stops once that holds (its bundle was rolled out and its
  segments are done). SIGTERM / Ctrl-C finishes the segments in hand.
  A segment running longer than max(--segment-timeout-ms, its frames x --segment-ms-per-frame) is
  stopped (its ffmpeg killed) and retried; inputs that fail for a reason that would recur fail at once.
  A Redis that does not answer at start is reported on stderr at once and retried for --redis-wait
  seconds (0: for ever), then the worker exits 2 naming the URL. --capture keeps the segments'
  drifted frames as i2i serve --capture does (one folder per worker; pts are the video's).
`;
