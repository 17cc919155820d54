/** Digit domains by name, read from their real formats and preprocessed as in section 5.1. */
import { UserError } from '../../core/errors';
import { readImageFolder } from './image-folder';
import { defaultMnistRoot, readMnist } from './mnist';
import { readOptdigits } from './optdigits';
import { readSvhn } from './svhn';
import { preprocess, take } from './transforms';
import type { ImageSet } from './types';
import { readUsps } from './usps';

export type DigitDomain = 'mnist' | 'usps' | 'svhn' | 'optdigits' | 'folder';

export interface DomainRequest {
  domain: DigitDomain;
  root?: string;
  split: 'train' | 'test';
  size: number;
  channels: 1 | 3;
  limit?: number;
  /** Which command-line flag supplies the root, for error messages. */
  flag: string;
}

export async function loadDigitDomain(r: DomainRequest): Promise<ImageSet> {
  const need = () => {
    if (!r.root) throw new UserError(`The ${r.domain} domain has no built-in copy.`, `Pass ${r.flag} <folder> holding the ${r.domain} files.`);
    return r.root;
  };
  let set: ImageSet;
  switch (r.domain) {
    case 'mnist': set = readMnist(r.root ?? defaultMnistRoot(), r.split); break;
    case 'usps': set = readUsps(need(), r.split); break;
    case 'svhn': set = readSvhn(need(), r.split); break;
    case 'optdigits': set = readOptdigits(need(), r.split); break;
    case 'folder': set = await readImageFolder(need(), { height: r.size, width: r.size, grayscale: r.channels === 1 }); break;
  }
  return preprocess(take(set, r.limit), { size: r.size, channels: r.channels });
}
