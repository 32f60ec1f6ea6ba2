/** Metric analysis for progressive delivery: providers, the measure activity, the worker's configuration (README.md beside this file). */
export {
  analysisProblems,
  createAnalysisActivities,
  measureOnce,
  providerFor,
  type AnalysisActivityDeps,
} from './activities.ts';
export {
  AnalysisConfigError,
  AnalysisConfigSchema,
  loadAnalysisConfig,
  parseAnalysisConfig,
  urlAllowed,
  type AnalysisConfig,
  type AnalysisConfigInput,
} from './config.ts';
export {
  MeasurementError,
  type AnalysisActivities,
  type MeasureInput,
  type MeasureResult,
  type Provider,
  type ProviderAnswer,
} from './types.ts';
