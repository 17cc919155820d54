/**
 * --drain-delay-ms: during the delay only readiness flips (the load balancer stops routing here);
 * requests that still arrive are served. After it, new work is refused.
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import sharp from 'sharp';
import { startServer } from '../../serve/server';
import { tmpDir } from '../helpers';
import { makeBundle } from './fixture';

const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };

describe('serve: the drain delay keeps serving while /readyz says 503', function () {
  this.timeout(120000);
  it('during the delay /readyz is 503 and POST /segment is 200; after it, /segment is refused or the listener is closed', async () => {
    const bundle = path.join(tmpDir(), 'b');
    await makeBundle(bundle);
    const s = await startServer({ bundle, port: 0, workers: 1, drainDelayMs: 1500, log: silent });
    const png = await sharp({ create: { width: 64, height: 32, channels: 3, background: { r: 200, g: 0, b: 0 } } }).png().toBuffer();
    const segment = () => fetch(`${s.url}/segment`, { method: 'POST', body: png, headers: { 'Content-Type': 'image/png' } }).then((r) => r.status, () => 'refused');
    assert.equal(await segment(), 200);
    const t0 = Date.now();
    const closed = s.close();
    const ready = await fetch(`${s.url}/readyz`);
    assert.equal(ready.status, 503);
    assert.equal((await ready.json() as { draining: boolean }).draining, true);
    assert.equal(await segment(), 200, 'served inside the delay');
    assert.ok(Date.now() - t0 < 1500, 'the checks ran inside the delay');
    await new Promise((r) => setTimeout(r, 1700 - (Date.now() - t0)));
    assert.notEqual(await segment(), 200, 'refused after the delay');
    assert.equal(await closed, true);
  });
});
