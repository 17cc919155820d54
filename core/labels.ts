/**
 * Label sets shared by every stage: Cityscapes' 19 training classes (GTA5 uses the same labelIds),
 * their palette, and the labelId -> trainId table. Everything else maps to 255 (ignored).
 */
export const IGNORE = 255;

export const CITYSCAPES_CLASSES = [
  'road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light', 'traffic sign', 'vegetation',
  'terrain', 'sky', 'person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle', 'bicycle',
] as const;

export const CITYSCAPES_PALETTE: [number, number, number][] = [
  [128, 64, 128], [244, 35, 232], [70, 70, 70], [102, 102, 156], [190, 153, 153], [153, 153, 153],
  [250, 170, 30], [220, 220, 0], [107, 142, 35], [152, 251, 152], [70, 130, 180], [220, 20, 60],
  [255, 0, 0], [0, 0, 142], [0, 0, 70], [0, 60, 100], [0, 80, 100], [0, 0, 230], [119, 11, 32],
];

/** labelIds of the 19 classes, in trainId order. */
export const TRAIN_LABEL_IDS = [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33];

/** A 256-entry lookup: labelId -> trainId (255 for every id that is not one of the 19). */
export const LABEL_TO_TRAIN: Uint8Array = (() => {
  const lut = new Uint8Array(256).fill(IGNORE);
  TRAIN_LABEL_IDS.forEach((id, train) => { lut[id] = train; });
  return lut;
})();

export function labelIdsToTrainIds(ids: Uint8Array): Uint8Array {
  const out = new Uint8Array(ids.length);
  for (let i = 0; i < ids.length; i++) out[i] = LABEL_TO_TRAIN[ids[i]];
  return out;
}
