/**
 * `i2i weights <densenet121|resnet50> [--from FILE] [--out DIR]`: installs Keras Applications'
 * ImageNet weights of an encoder (the file gta5-cityscapes starts from), validated against the
 * encoder first. Parses only; train/weights/install.ts does the work.
 */
import { parseArgs } from 'node:util';
import { initBackend } from '../core/backend';
import { UserError } from '../core/errors';
import { IMAGENET } from '../train/weights/imagenet';
import { installWeights } from '../train/weights/install';

export const WEIGHTS_HELP = `i2i weights <${Object.keys(IMAGENET).join('|')}> [--from FILE] [--out DIR]
  installs Keras Applications' ImageNet weights of the encoder (*_notop.h5) into the weights cache
  (.cache/weights/, or I2I_WEIGHTS_DIR; --out DIR elsewhere), after checking that every layer maps
  onto the encoder; gta5-cityscapes starts from them by default. Without --from it downloads
  Keras' file and checks Keras' MD5; offline, download it elsewhere and pass --from FILE:
${Object.values(IMAGENET).map((p) => `    ${p.url}\n      about ${p.approxMB} MB, MD5 ${p.md5}`).join('\n')}
`;

export async function cmdWeights(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args: argv, strict: true, allowPositionals: true, options: { from: { type: 'string' }, out: { type: 'string' } } });
  if (positionals.length !== 1) throw new UserError('weights needs one encoder name.', `Run i2i weights ${Object.keys(IMAGENET).join(' | ')} [--from FILE].`);
  await initBackend({ quiet: true });
  const file = await installWeights({ encoder: positionals[0], from: values.from, out: values.out });
  process.stdout.write(`${file}\n`);
}
