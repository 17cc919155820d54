#!/usr/bin/env node
// Runs the TypeScript CLI through tsx (a runtime dependency), so `npx i2i` needs no build step.
require('tsx/cjs');
require('../cli/i2i.ts')
  .main(process.argv.slice(2))
  .then((code) => process.exit(code));
