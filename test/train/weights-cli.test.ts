/**
 * `i2i weights` and gta5-cityscapes' ImageNet default, through the installed bin as a user runs them:
 * install a Keras-layout DenseNet121 file with --from, train gta5-cityscapes from it by default, the
 * error when it is missing, --init none, and downloads that cannot happen (no outside host is called:
 * a closed loopback port, and a loopback server with the wrong file).
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { readCheckpointMeta } from '../../train/checkpoint';
import { IMAGENET } from '../../train/weights/imagenet';
import { h5pyAvailable, writeDenseNet121H5 } from '../fixtures/keras-h5/h5py';
import { tmpDir } from '../helpers';

const BIN = path.resolve(__dirname, '../../bin/i2i.js');
const FILE = IMAGENET.densenet121.file;

function i2i(args: string[], env: Record<string, string> = {}): Promise<{ status: number | null; stdout: string; stderr: string }> {
  // Asynchronous: the loopback server of a test answers in this process meanwhile.
  return new Promise((resolve) => {
    const { spawn } = require('node:child_process') as typeof import('node:child_process');
    const p = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, I2I_BACKEND: 'wasm', ...env } });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    p.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

describe('i2i weights, and gta5-cityscapes starting from ImageNet', function () {
  this.timeout(600000);
  const tmp = tmpDir('i2i-weights-');
  const src = path.join(tmp, 'gta5'), tgt = path.join(tmp, 'cityscapes');
  const keras = path.join(tmp, 'keras', FILE);
  const cache = path.join(tmp, 'cache'), empty = path.join(tmp, 'empty');
  const train = (out: string, extra: string[] = []) => ['train', '--task', 'gta5-cityscapes', '--method', 'source-only', '--out', path.join(tmp, out), '--steps', '1', '--batch-size', '1',
    '--source-root', src, '--target-root', tgt, '--set', 'data.imageSize=32', ...extra];
  before(function () {
    if (!h5pyAvailable()) this.skip();
    fs.mkdirSync(path.dirname(keras));
    writeDenseNet121H5(keras, 3);
    for (const [out, domain, seed] of [[src, 'source', '1'], [tgt, 'target', '2']]) {
      const r = spawnSync(process.execPath, [BIN, 'synth', '--out', out, '--domain', domain, '--count', '2', '--size', '64x128', '--seed', seed], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
    }
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('without the weights installed, training gta5-cityscapes fails at once naming i2i weights, --init FILE and --init none', async () => {
    const r = await i2i(train('missing'), { I2I_WEIGHTS_DIR: empty });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /ImageNet weights of densenet121 are not installed/);
    assert.match(r.stderr, /i2i weights densenet121/);
    assert.match(r.stderr, /--init FILE/);
    assert.match(r.stderr, /--init none/);
    assert.ok(!fs.existsSync(path.join(tmp, 'missing', 'checkpoint')));
  });

  it('--init none trains from scratch and is recorded in the run\'s config', async () => {
    const r = await i2i(train('scratch', ['--init', 'none']), { I2I_WEIGHTS_DIR: empty });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /--init none: the encoder starts from random weights/);
    const c = readCheckpointMeta(path.join(tmp, 'scratch')).config;
    assert.deepEqual([c.model.encoder, c.model.init, c.model.inputNorm], ['densenet121', 'none', 'none']);
  });

  it('i2i weights densenet121 --from installs a file that maps completely; gta5-cityscapes then starts from it by default', async () => {
    const inst = await i2i(['weights', 'densenet121', '--from', keras], { I2I_WEIGHTS_DIR: cache });
    assert.equal(inst.status, 0, inst.stderr);
    const installed = path.join(cache, FILE);
    assert.equal(inst.stdout.trim(), installed);
    assert.deepEqual(fs.readFileSync(installed), fs.readFileSync(keras));
    assert.deepEqual(fs.readdirSync(cache), [FILE], 'no temporary file left');
    assert.match(inst.stderr, /not that of Keras' published file/);
    assert.match(inst.stderr, /604 tensors map onto the encoder/);

    const r = await i2i(train('imagenet'), { I2I_WEIGHTS_DIR: cache });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(r.stderr.includes(`[init] 604 tensors from ${installed}`), r.stderr);
    const c = readCheckpointMeta(path.join(tmp, 'imagenet')).config;
    assert.deepEqual([c.model.init, c.model.inputNorm], [installed, 'torch']);
  });

  it('a file that is not the encoder\'s is refused, naming the weight that does not fit, and nothing is installed', async () => {
    const r = await i2i(['weights', 'resnet50', '--from', keras], { I2I_WEIGHTS_DIR: empty });
    assert.equal(r.status, 2, r.stderr);
    // Both files name a layer conv2_block1_1_conv (DenseNet's bottleneck, ResNet's first 1x1): its shape gives it away.
    assert.ok(r.stderr.includes(`conv2_block1_1_conv/kernel has shape [1,1,64,128] in ${keras}, the encoder expects [1,1,64,64]`), r.stderr);
    assert.ok(!fs.existsSync(empty) || fs.readdirSync(empty).length === 0);
  });

  it('without a network, the download fails naming the URL, the manual download and --from', async () => {
    const server = http.createServer();
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    const port = (server.address() as AddressInfo).port;
    await new Promise((ok) => server.close(ok));  // a port nothing listens on
    const url = `http://127.0.0.1:${port}/keras/${FILE}`;
    const r = await i2i(['weights', 'densenet121'], { I2I_WEIGHTS_DIR: empty, I2I_WEIGHTS_BASE_URL: `http://127.0.0.1:${port}/keras/` });
    assert.equal(r.status, 2, r.stderr);
    assert.ok(r.stderr.includes(`downloading ${url} (about 29 MB)`), r.stderr);
    assert.ok(r.stderr.includes(`Could not download ${url} (ECONNREFUSED)`), r.stderr);
    assert.ok(r.stderr.includes(`curl -LO ${url}`) && r.stderr.includes('i2i weights densenet121 --from FILE'), r.stderr);
    assert.ok(!fs.existsSync(empty) || fs.readdirSync(empty).length === 0);
  });

  it('a download whose MD5 is not Keras\' is refused, and nothing is installed', async () => {
    const server = http.createServer((req, res) => {
      if (req.url !== `/${FILE}`) { res.writeHead(404).end(); return; }
      res.writeHead(200, { 'content-length': fs.statSync(keras).size });
      fs.createReadStream(keras).pipe(res);
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    try {
      const r = await i2i(['weights', 'densenet121'], { I2I_WEIGHTS_DIR: empty, I2I_WEIGHTS_BASE_URL: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`has MD5 [0-9a-f]{32}, Keras publishes ${IMAGENET.densenet121.md5}`));
      assert.ok(!fs.existsSync(empty) || fs.readdirSync(empty).length === 0);
    } finally { await new Promise((ok) => server.close(ok)); }
  });
});
