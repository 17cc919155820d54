import { loadDigitDomain } from '../train/data/digits';
(async () => { const t = Date.now(); const s = await loadDigitDomain({ domain: 'mnist', split: 'train', size: 32, channels: 1, flag: '' }); console.log(s.n, Date.now() - t, 'ms', s.images[500]); })();
