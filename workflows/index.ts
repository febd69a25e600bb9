/** Every workflow the lifecycle worker serves; the worker bundles this file. */
export { planeProbe } from './plane-probe/workflow';
export { hostLifecycle } from './host/workflow';
