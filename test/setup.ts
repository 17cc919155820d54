/** Mocha root hooks: pick the backend once (wasm here, unless I2I_BACKEND says otherwise). */
import { initBackend } from '../core/backend';

export const mochaHooks = {
  async beforeAll(this: Mocha.Context) {
    this.timeout(60000);
    const b = await initBackend({ quiet: true });
    process.stderr.write(`tests run on the ${b.choice} backend\n`);
  },
};
