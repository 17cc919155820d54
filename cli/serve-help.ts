import * as os from 'node:os';

export const SERVE_HELP = `i2i serve --bundle DIR [--port 8080] [--host 127.0.0.1]
            [--runtime tflite|tfjs] [--precision fp32|int8|fp16|uint8]
            [--workers N] [--threads T] [--max-queue N] [--max-batch N] [--max-wait-ms MS]
            [--timeout-ms MS] [--max-bytes B] [--max-pixels P] [--token-file FILE] [--drain-timeout-ms MS] [--drain-delay-ms MS]
  POST /segment (image/jpeg|png|webp body or multipart field "image"; ?format=png|json|overlay|labels),
  GET /healthz /readyz /v1/model /metrics /openapi.json. Default model: the fastest file of the bundle
  whose parity stayed within 1 point of float32; default pool: one worker process per core (${os.availableParallelism()} here), 1 thread each.
  Logs JSON lines to stdout.
`;
