/**
 * The one import of TensorFlow.js for the project. The umbrella package registers the gradients
 * and chained ops that tfjs-core's Node bundle lacks (importing tfjs-core's dist/ files directly
 * would load a second, incompatible copy of its classes). Backends are chosen in core/backend.
 */
export * from '@tensorflow/tfjs';
