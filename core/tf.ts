/**
 * The one import of TensorFlow.js for the project: tfjs-core plus its gradient and chained-op
 * registrations (tfjs-core alone registers neither). Backends are chosen in core/backend.
 */
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops';
export * from '@tensorflow/tfjs-core';
