/**
 * The Release resource: which version of the workers runs, and how a new one replaces
 * the old (blue-green or canary steps, judged from the delivery rows each lane made).
 * As with Broadcast, the OpenAPI schema (defaults and CEL rules next to the fields they
 * guard) is what the API server enforces, generate-crd.ts writes it into the CRD
 * manifest, and the operator's types are derived from the same objects.
 */
import { GROUP, VERSION, API_VERSION, type FromSchema, type ObjectMeta } from './broadcast.js';

export const RELEASE_KIND = 'Release';
export const RELEASE_PLURAL = 'releases';
/** Promote past the current pause or preview: `kubectl annotate release/workers herald.dev/promote=$(date +%s) --overwrite`; the value `full` skips every step left. */
export const PROMOTE_ANNOTATION = 'herald.dev/promote';

const validations = (...rules: { rule: string; message: string }[]) => ({ 'x-kubernetes-validations': rules });
const duration = (field: string, description: string) => ({
  type: 'string' as const,
  description,
  maxLength: 20,
  ...validations({
    rule: "self.matches('^([0-9]+(h|m|s))+$') && duration(self) >= duration('1s') && duration(self) <= duration('24h')",
    message: `${field} must be a duration from 1s to 24h, written like 30s, 5m or 1h30m`,
  }),
});
const tenants = {
  type: 'array',
  description: 'The synthetic (load-test) tenants the new version serves alone; no real tenant reaches it.',
  items: { type: 'string', minLength: 1, maxLength: 63, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$' },
  minItems: 1,
  maxItems: 10,
  'x-kubernetes-list-type': 'set',
} as const;

/** When a lane's figures over the analysis window fail the new version (Flagger's checks, on the delivery rows). */
export const analysisSchema = {
  type: 'object',
  description: 'Judge the new version from the provider attempts each lane recorded over the same database-clock window.',
  default: {},
  properties: {
    window: { ...duration('analysis.window', 'How far back each evaluation looks (default 30s).'), default: '30s' },
    interval: { ...duration('analysis.interval', 'How often an analysis step evaluates (default 5s).'), default: '5s' },
    minSample: { type: 'integer', description: "Attempts of the new version's lane needed before a verdict.", minimum: 1, maximum: 100000, default: 50 },
    sampleTimeout: { ...duration('analysis.sampleTimeout', 'A step without minSample attempts by then is Degraded, never passed (default 2m).'), default: '2m' },
    threshold: { type: 'integer', description: 'Failed evaluations that abort the release (as in Flagger).', minimum: 1, maximum: 100, default: 1 },
    successfulEvaluations: { type: 'integer', description: 'Passing evaluations an analysis step needs.', minimum: 1, maximum: 100, default: 1 },
    maxProviderFailurePercent: { type: 'integer', description: 'Provider-level failures (the provider or our credentials) per 100 attempts.', minimum: 0, maximum: 100, default: 5 },
    maxRecipientFailurePointsOverStable: { type: 'integer', description: "Recipient-level failure rate above the stable lane's, in percentage points.", minimum: 0, maximum: 100, default: 5 },
    maxPossibleDuplicates: { type: 'integer', description: 'Rows the new version left possibly sent twice.', minimum: 0, default: 0 },
    maxOrphanedRows: { type: 'integer', description: "Rows left in flight by the new version's crashed workers.", minimum: 0, default: 0 },
    maxCallP95Ms: { type: 'integer', description: 'Provider call duration p95, milliseconds.', minimum: 1, maximum: 600000, default: 2000 },
  },
} as const;

// A step's analysis overrides only the thresholds it names, so neither it nor its fields
// have defaults: the API server would fill every field in and hide the Release-wide ones.
const { default: _analysisDefault, properties: analysisProperties, ...analysisStepRest } = analysisSchema;
const analysisStepSchema = {
  ...analysisStepRest,
  properties: Object.fromEntries(Object.entries(analysisProperties).map(([k, { default: _d, ...field }]) => [k, field])),
};

const stepSchema = {
  type: 'object',
  description: 'Exactly one of preview, setWeight, pause, analysis.',
  properties: {
    preview: {
      type: 'object',
      description: 'The new version serves only these synthetic tenants and waits for a promote (the first step only).',
      required: ['tenants'],
      properties: { tenants },
    },
    setWeight: { type: 'integer', description: "The new version's share of every tenant's work, 0-100.", minimum: 0, maximum: 100 },
    pause: {
      type: 'object',
      description: 'Wait: for duration, or (without one) for a promote.',
      properties: { duration: duration('pause.duration', 'How long to wait; leave it out to wait for a promote.') },
    },
    analysis: { ...analysisStepSchema, description: 'Evaluate the new version (the Release-wide thresholds, or these).' },
  },
  ...validations({
    rule: '(has(self.preview) ? 1 : 0) + (has(self.setWeight) ? 1 : 0) + (has(self.pause) ? 1 : 0) + (has(self.analysis) ? 1 : 0) == 1',
    message: 'each canary step sets exactly one of preview, setWeight, pause or analysis',
  }),
} as const;

export const releaseSpecSchema = {
  type: 'object',
  description: 'The worker version to run and how to move to it.',
  required: ['version', 'image', 'strategy'],
  properties: {
    version: { type: 'string', description: 'The version (the workers register it with their heartbeat).', minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9][-A-Za-z0-9_.+]*$' },
    image: {
      type: 'string',
      description: 'The worker image of that version: by digest in the cloud stacks (the policy pack refuses a mutable tag); locally built images may use a local tag.',
      minLength: 1,
      maxLength: 512,
    },
    replicas: { type: 'integer', description: "Workers of the new color to wait for before it gets any work (its ScaledObject's minimum).", minimum: 1, maximum: 100, default: 2 },
    maxReplicas: { type: 'integer', description: "The new color's ScaledObject maximum.", minimum: 1, maximum: 500, default: 10 },
    progressDeadline: { ...duration('spec.progressDeadline', 'How long the new color may take to be ready before the Release is Degraded (default 5m).'), default: '5m' },
    scaleDownDelay: { ...duration('spec.scaleDownDelay', 'How long a color left at weight 0 keeps its workers (default 30s).'), default: '30s' },
    paused: { type: 'boolean', description: 'Hold the rollout where it is (weights stay).', default: false },
    abort: { type: 'boolean', description: 'Give the new version weight 0 at once and stop (set false with a new version to try again).', default: false },
    analysis: analysisSchema,
    strategy: {
      type: 'object',
      description: 'Exactly one of blueGreen or canary.',
      properties: {
        blueGreen: {
          type: 'object',
          description: 'The new color serves only previewTenants, then takes all the work at once.',
          required: ['previewTenants'],
          properties: {
            previewTenants: tenants,
            autoPromotionSeconds: { type: 'integer', description: 'Promote on its own this long after the preview passed; leave it out to wait for a promote.', minimum: 0, maximum: 86400 },
            prePromotionAnalysis: { type: 'boolean', description: 'Judge the preview (the synthetic tenants) before promotion.', default: true },
            postPromotionAnalysis: { type: 'boolean', description: 'Judge the new version after it took the work; failing it rolls back.', default: true },
          },
        },
        canary: {
          type: 'object',
          required: ['steps'],
          properties: {
            steps: {
              type: 'array',
              items: stepSchema,
              minItems: 1,
              maxItems: 32,
              ...validations({
                rule: 'self.all(s, !has(s.preview)) || (has(self[0].preview) && self.filter(s, has(s.preview)).size() == 1)',
                message: 'a preview step can only be the first canary step',
              }),
            },
          },
        },
      },
      ...validations({
        rule: 'has(self.blueGreen) != has(self.canary)',
        message: 'strategy sets exactly one of blueGreen or canary',
      }),
    },
  },
} as const;

const count = { type: 'integer', minimum: 0 } as const;

export const laneFiguresSchema = {
  type: 'object',
  properties: {
    color: { type: 'string' },
    version: { type: 'string' },
    weight: count,
    attempts: count,
    providerFailurePercent: { type: 'number' },
    recipientFailurePercent: { type: 'number' },
    possibleDuplicates: count,
    orphanedRows: count,
    callP95Ms: { type: 'number' },
  },
} as const;

const conditionSchema = {
  type: 'object',
  required: ['type', 'status', 'lastTransitionTime', 'reason', 'message'],
  properties: {
    type: { type: 'string', maxLength: 316, enum: ['Progressing', 'Paused', 'Healthy', 'Degraded', 'Aborted'] },
    status: { type: 'string', enum: ['True', 'False', 'Unknown'] },
    observedGeneration: { type: 'integer', minimum: 0 },
    lastTransitionTime: { type: 'string', format: 'date-time' },
    reason: { type: 'string', maxLength: 1024, minLength: 1, pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$' },
    message: { type: 'string', maxLength: 32768 },
  },
} as const;

export const releaseStatusSchema = {
  type: 'object',
  description: 'What the operator observed and did, as of observedGeneration.',
  properties: {
    phase: { type: 'string', enum: ['Progressing', 'Paused', 'Healthy', 'Degraded', 'Aborted'] },
    observedGeneration: { type: 'integer', minimum: 0, description: 'The generation this status is about: a client that wrote spec.version waits for it.' },
    message: { type: 'string' },
    stableVersion: { type: 'string' },
    stableColor: { type: 'string' },
    canaryVersion: { type: 'string', description: 'The version under trial (the one the verdict in phase and analysis is about).' },
    canaryColor: { type: 'string' },
    currentStep: { type: 'integer', minimum: 0, description: 'Index of the canary step in progress (blue-green: 0 preview, 1 promoted).' },
    currentStepName: { type: 'string' },
    stepStartedAt: { type: 'string', format: 'date-time' },
    weights: { type: 'object', additionalProperties: { type: 'integer' }, description: 'Each color\'s weight, as the lanes table has it.' },
    weightsSummary: { type: 'string', description: 'The weights as one line, such as "blue=90 green=10".' },
    ready: { type: 'object', properties: { wanted: count, ready: count } },
    failedEvaluations: count,
    passedEvaluations: count,
    lastEvaluatedAt: { type: 'string', format: 'date-time' },
    analysis: {
      type: 'object',
      description: 'The last evaluation: per-lane figures over one database-clock window.',
      properties: {
        windowStart: { type: 'string', format: 'date-time' },
        windowEnd: { type: 'string', format: 'date-time' },
        verdict: { type: 'string', enum: ['Passed', 'Failed', 'Inconclusive'] },
        failedChecks: { type: 'array', items: { type: 'string' } },
        lanes: { type: 'array', items: laneFiguresSchema },
      },
    },
    abortReason: { type: 'string' },
    promoteHandled: { type: 'string', description: 'The herald.dev/promote annotation value already acted on.' },
    scaleDownAt: { type: 'string', format: 'date-time', description: 'When the color left at weight 0 is scaled to 0.' },
    scaleDownColor: { type: 'string' },
    conditions: {
      type: 'array',
      items: conditionSchema,
      maxItems: 8,
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['type'],
    },
  },
} as const;

export type ReleaseSpec = FromSchema<typeof releaseSpecSchema>;
export type ReleaseStatus = FromSchema<typeof releaseStatusSchema> & { weights?: Record<string, number> };
export type ReleasePhase = NonNullable<ReleaseStatus['phase']>;
export type AnalysisSpec = FromSchema<typeof analysisSchema>;
export type CanaryStep = FromSchema<typeof stepSchema>;
export type LaneFigures = FromSchema<typeof laneFiguresSchema>;
export type ReleaseCondition = FromSchema<typeof conditionSchema>;

export interface Release {
  apiVersion: typeof API_VERSION;
  kind: typeof RELEASE_KIND;
  metadata: ObjectMeta;
  spec: ReleaseSpec;
  status?: ReleaseStatus;
}

export const releasePrinterColumns = [
  { name: 'Version', type: 'string', jsonPath: '.spec.version' },
  { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
  { name: 'Step', type: 'string', jsonPath: '.status.currentStepName' },
  { name: 'Stable', type: 'string', jsonPath: '.status.stableVersion' },
  { name: 'Canary', type: 'string', jsonPath: '.status.canaryVersion' },
  { name: 'Weights', type: 'string', jsonPath: '.status.weightsSummary' },
  { name: 'Reason', type: 'string', jsonPath: '.status.abortReason', priority: 1 },
  { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
] as const;

export function releaseCustomResourceDefinition() {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${RELEASE_PLURAL}.${GROUP}` },
    spec: {
      group: GROUP,
      names: { kind: RELEASE_KIND, listKind: `${RELEASE_KIND}List`, plural: RELEASE_PLURAL, singular: 'release', shortNames: ['rel'], categories: ['herald'] },
      scope: 'Namespaced',
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: releasePrinterColumns,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: 'A worker release: the version to run, and how it replaces the one running (blue-green or canary).',
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                spec: releaseSpecSchema,
                status: releaseStatusSchema,
              },
            },
          },
        },
      ],
    },
  };
}
