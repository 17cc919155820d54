/** The OpenAPI 3.1 document of the server; a test checks it against the routes the app mounts. */
import { streamPaths } from './streams';
import { VIDEO_JOB_SCHEMA, videoPaths } from './videos';

const error = { $ref: '#/components/schemas/Error' };
const errors = (codes: number[]) => Object.fromEntries(codes.map((c) => [String(c), { description: STATUS[c], content: { 'application/json': { schema: error } } }]));
const STATUS: Record<number, string> = {
  400: 'Undecodable, truncated or empty image or video, a body cut short, malformed multipart or JSON, or a bad parameter.', 401: 'Missing or wrong bearer token.', 403: 'A server path outside the operator\'s --video-dir (or none allowed).', 404: 'No such job or stream.',
  408: 'The body did not arrive before the deadline (--timeout-ms; --upload-timeout-ms for videos).', 409: 'The job has no result yet (or failed before any frame).', 413: 'Body or pixel count over the limit.',
  415: 'Not a media type this route reads (image/* for /segment, video/* for /videos, or multipart/form-data; application/json for JSON bodies).', 503: 'Queue full, no worker, draining, or no room to store an upload (see Retry-After).', 504: 'The deadline passed.',
};

export function openApiDocument(o: { auth: boolean; version: string; videos?: boolean; streams?: boolean }): object {
  const security = o.auth ? [{ bearer: [] }] : undefined;
  const withAuth = (codes: number[]) => errors([...codes, ...(o.auth ? [401] : [])].sort());
  const json = (schema: object) => ({ 'application/json': { schema } });
  return {
    openapi: '3.1.0',
    info: { title: 'i2i-adapt segmentation server', version: o.version, description: 'Semantic segmentation of dashcam frames by a domain-adapted model bundle.' },
    components: {
      schemas: {
        ...(o.videos ? { VideoJob: VIDEO_JOB_SCHEMA } : {}),
        Error: { type: 'object', required: ['error', 'hint'], properties: { error: { type: 'string' }, hint: { type: 'string' } } },
        Segmentation: {
          type: 'object', required: ['width', 'height', 'classes', 'fractions', 'mask', 'timings', 'drift'],
          properties: {
            width: { type: 'integer' }, height: { type: 'integer' },
            classes: { type: 'array', items: { type: 'object', properties: { id: { type: 'integer' }, name: { type: 'string' }, color: { type: 'array', items: { type: 'integer' } } } } },
            fractions: { type: 'object', additionalProperties: { type: 'number' }, description: 'Share of the frame\'s pixels per class name.' },
            mask: { type: 'string', contentEncoding: 'base64', description: 'Palette PNG of trainIds at the input\'s size (255 = void).' },
            timings: { type: 'object', properties: { decode: { type: 'number' }, queue: { type: 'number' }, infer: { type: 'number' }, encode: { type: 'number' } } },
            overlay: { type: 'string', contentEncoding: 'base64', description: 'With overlay=1: the frame blended with the class colours, a JPEG at the input\'s size.' },
            drift: { type: ['number', 'null'], description: '0 typical of the target domain; 1 = the calibration frames\' 95th percentile.' },
            model: { type: 'object', description: 'The model that computed this result: version (also in X-Model-Version), file, format, precision, sha256, why it was chosen.' },
          },
        },
      },
      securitySchemes: { ...(o.auth ? { bearer: { type: 'http', scheme: 'bearer' } } : {}), admin: { type: 'http', scheme: 'bearer', description: 'A token from --admin-token-file (reloads only).' } },
    },
    paths: {
      '/segment': {
        post: {
          summary: 'Segment one frame', security,
          parameters: [
            { name: 'format', in: 'query', schema: { type: 'string', enum: ['png', 'json', 'overlay', 'labels'], default: 'png' } },
            { name: 'alpha', in: 'query', schema: { type: 'number', minimum: 0, maximum: 1, default: 0.5 }, description: 'Overlay opacity of the class colours.' },
            { name: 'overlay', in: 'query', schema: { type: 'integer', enum: [0, 1], default: 0 }, description: 'With format=json: the overlay JPEG (at alpha) of the same inference, base64 in "overlay".' },
            { name: 'X-Timeout-Ms', in: 'header', schema: { type: 'integer', minimum: 1 }, description: 'Shortens the server\'s deadline for this request.' },
            { name: 'X-Request-Id', in: 'header', schema: { type: 'string' }, description: 'Echoed in the response and the logs.' },
          ],
          requestBody: { required: true, content: {
            'image/jpeg': { schema: { type: 'string', format: 'binary' } }, 'image/png': { schema: { type: 'string', format: 'binary' } }, 'image/webp': { schema: { type: 'string', format: 'binary' } },
            'multipart/form-data': { schema: { type: 'object', required: ['image'], properties: { image: { type: 'string', format: 'binary' } } } },
          } },
          responses: {
            200: { description: 'The segmentation; Server-Timing carries decode, queue, infer and encode.', content: {
              'image/png': { schema: { type: 'string', format: 'binary' } }, ...json({ $ref: '#/components/schemas/Segmentation' }),
              'image/jpeg': { schema: { type: 'string', format: 'binary' } }, 'application/octet-stream': { schema: { type: 'string', format: 'binary' }, description: 'format=labels: one uint8 trainId per pixel; X-Width and X-Height give the size.' },
            } },
            ...errors([400, ...(o.auth ? [401] : []), 408, 413, 415, 503, 504]),
          },
        },
      },
      '/': { get: { summary: 'A page to try the model in a browser: drop a frame, see the overlay, fractions and drift; live stream views; the model card', responses: { 200: { description: 'Self-contained HTML (no external requests).', content: { 'text/html': { schema: { type: 'string' } } } } } } },
      '/healthz': { get: { summary: 'Liveness', responses: { 200: { description: 'The process serves HTTP.' } } } },
      '/readyz': { get: { summary: 'Readiness: the model is loaded and warmed up, not draining', responses: { 200: { description: 'Ready.' }, 503: { description: 'Not ready.' } } } },
      '/v1/model': { get: { summary: 'The model card: classes, palette, input, precision, parity, drift calibration', security, responses: { 200: { description: 'The bundle manifest\'s public part.', content: json({ type: 'object' }) }, ...errors(o.auth ? [401] : []) } } },
      '/v1/model/reload': { post: { summary: 'Load a bundle (the --bundle path again, or {"bundle": NAME} under --bundle-root) in a new pool, warm it, switch; in-flight requests finish on the old model',
        security: [{ admin: [] }], requestBody: { required: false, content: json({ type: 'object', properties: { bundle: { type: 'string' } } }) },
        responses: { 200: { description: 'The active and previous model versions.', content: json({ type: 'object' }) }, ...errors([400, 401, 403, 404, 408, 409, 413, 415, 422]) } } },
      '/v1/model/rollback': { post: { summary: 'Reload the model served before the last reload', security: [{ admin: [] }],
        responses: { 200: { description: 'The active and previous model versions.', content: json({ type: 'object' }) }, ...errors([401, 403, 409, 422]) } } },
      '/metrics': { get: { summary: 'Prometheus metrics', security, responses: { 200: { description: 'Text exposition format.', content: { 'text/plain': { schema: { type: 'string' } } } }, ...errors(o.auth ? [401] : []) } } },
      '/openapi.json': { get: { summary: 'This document', responses: { 200: { description: 'OpenAPI 3.1.', content: json({ type: 'object' }) } } } },
      ...(o.videos ? videoPaths(security, withAuth) : {}),
      ...(o.streams ? streamPaths(security, withAuth) : {}),
    },
  };
}
