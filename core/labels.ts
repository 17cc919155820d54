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

/**
 * Colours of Cityscapes labelIds 0..33 (cityscapesScripts helpers/labels.py), in labelId order: what
 * `_color.png` files (and colour-coded GTA5 copies) hold. Void ids share black; polegroup (18)
 * shares pole's colour and the licence plate (id -1) car's, so those colours read as the train class.
 */
export const CITYSCAPES_LABEL_COLOURS: [number, number, number][] = [
  [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0], [111, 74, 0], [81, 0, 81], [128, 64, 128],
  [244, 35, 232], [250, 170, 160], [230, 150, 140], [70, 70, 70], [102, 102, 156], [190, 153, 153], [180, 165, 180], [150, 100, 100],
  [150, 120, 90], [153, 153, 153], [153, 153, 153], [250, 170, 30], [220, 220, 0], [107, 142, 35], [152, 251, 152], [70, 130, 180],
  [220, 20, 60], [255, 0, 0], [0, 0, 142], [0, 0, 70], [0, 60, 100], [0, 0, 90], [0, 0, 110], [0, 80, 100],
  [0, 0, 230], [119, 11, 32],
];

const rgbKey = (r: number, g: number, b: number) => (r << 16) | (g << 8) | b;

/** Colour (r<<16|g<<8|b) -> trainId; the 19 class colours win where a void id shares one. */
const COLOUR_TO_TRAIN: Map<number, number> = (() => {
  const m = new Map<number, number>();
  CITYSCAPES_LABEL_COLOURS.forEach(([r, g, b]) => m.set(rgbKey(r, g, b), IGNORE));
  CITYSCAPES_PALETTE.forEach(([r, g, b], train) => m.set(rgbKey(r, g, b), train));
  return m;
})();

/** trainId of a Cityscapes colour; 255 for void colours and colours outside the table. */
export function colourToTrainId(r: number, g: number, b: number): number {
  return COLOUR_TO_TRAIN.get(rgbKey(r, g, b)) ?? IGNORE;
}

/** Values that are trainIds already (`_labelTrainIds.png`): 0..18 kept, everything else 255. */
export function trainIdValues(v: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(v.length);
  for (let i = 0; i < v.length; i++) out[i] = v[i] < CITYSCAPES_CLASSES.length ? v[i] : IGNORE;
  return out;
}
