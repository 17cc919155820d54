/** One tiny bundle and an engine of one worker on it, for a describe block (before/after hooks). */
import * as path from 'node:path';
import { Engine } from '../../serve/engine/engine';
import { tmpDir } from '../helpers';
import { makeBundle } from '../serve/fixture';

export function bundleEngine(): { root: string; bundle: string; engine: () => Engine } {
  const root = tmpDir();
  const bundle = path.join(root, 'bundle');
  let engine: Engine | undefined;
  before(async () => {
    await makeBundle(bundle, { height: 32, width: 64 });
    engine = await Engine.start({ bundle, workers: 1 });
  });
  after(async () => { await engine?.close(); });
  return { root, bundle, engine: () => engine! };
}
