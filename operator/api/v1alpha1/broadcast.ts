/**
 * The Broadcast resource, in one place: the OpenAPI schema below (with its defaults
 * and CEL rules, each next to the field it guards) is what the API server enforces,
 * `generate-crd.ts` writes it into the CRD manifest, and the TypeScript types the
 * operator uses are derived from the same objects, so the three cannot drift.
 */
import { TENANT_TOPIC_MAX } from '../../../lib/tenancy/topic.js';

export const GROUP = 'herald.dev';
export const VERSION = 'v1alpha1';
export const KIND = 'Broadcast';
export const PLURAL = 'broadcasts';
export const API_VERSION = `${GROUP}/${VERSION}`;
/** Deletion waits for this finalizer: every delivery not yet sent is cancelled first. */
export const FINALIZER = 'herald.dev/cancel-deliveries';

/** Carriers refuse more than 10 parts; 10 GSM-7 parts carry 1,530 characters. */
export const SMS_MAX_CHARACTERS = 1530;
export const MAX_INLINE_CONTACTS = 1000;
export const E164_PATTERN = '^\\+[1-9][0-9]{6,14}$';

/**
 * Every Broadcast occurrence costs the operator a plan and the tenant's audience a
 * message: a cron fires at most every 5 minutes. CEL reads the minute field: one
 * minute, minutes at least 5 apart around the hour (0,30), or a step that lands at
 * least 5 minutes apart across the hour too (*\/15). Anything else (*, ranges) is
 * refused, even where the hour field would space it out: the message says what passes.
 */
const CRON_MINUTE = String.raw`self.find('\\S+')`;
// Minutes from b forward to a, around the hour; checked for every ordered pair, so both ways.
const minuteGap = String.raw`(int(a) - int(b) + 60) % 60`;
export const CRON_AT_MOST_EVERY_5_MINUTES =
  `${CRON_MINUTE}.matches('^[0-9]{1,2}(,[0-9]{1,2})*$') ` +
  `? ${CRON_MINUTE}.split(',').all(a, ${CRON_MINUTE}.split(',').all(b, a == b || ${minuteGap} >= 5)) ` +
  String.raw`: ${CRON_MINUTE}.matches('^\\*/(5|6|10|12|15|20|3[0-9]|4[0-9]|5[0-5])$')`;
export const CRON_TOO_OFTEN =
  'schedule.cron runs more often than every 5 minutes: its minute field must be one minute (0), minutes at least 5 apart (0,30) or a step of 5 or more that keeps them 5 apart across the hour (*/15)';

const validations = (...rules: { rule: string; message: string }[]) => ({ 'x-kubernetes-validations': rules });
const immutable = (field: string) =>
  validations({ rule: 'self == oldSelf', message: `${field} cannot be changed; create a new Broadcast instead` });

export const broadcastSpecSchema = {
  type: 'object',
  description: 'What to send, to whom and when.',
  required: ['tenant', 'channel', 'message', 'audience'],
  properties: {
    tenant: {
      type: 'string',
      description: 'The organization that sends, as known to the platform database.',
      minLength: 1,
      maxLength: 63,
      pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$',
      ...immutable('spec.tenant'),
    },
    channel: {
      type: 'string',
      description: 'sms (Telnyx) or push (Firebase Cloud Messaging).',
      enum: ['sms', 'push'],
      ...immutable('spec.channel'),
    },
    message: {
      type: 'object',
      required: ['text'],
      properties: {
        text: {
          type: 'string',
          description: `The message. SMS: at most ${SMS_MAX_CHARACTERS} characters (10 parts); the exact part count shows in status.segments.`,
          minLength: 1,
          maxLength: 4000,
        },
        title: { type: 'string', description: 'Notification title (push only).', minLength: 1, maxLength: 200 },
      },
    },
    audience: {
      type: 'object',
      description: 'Who receives it: at least one source. A topic stands alone.',
      properties: {
        segment: {
          type: 'object',
          description: "The tenant's contacts (SMS) or devices (push) carrying any of these tags, or all of them.",
          properties: {
            tags: {
              type: 'array',
              items: { type: 'string', minLength: 1, maxLength: 63 },
              minItems: 1,
              maxItems: 50,
              'x-kubernetes-list-type': 'set',
            },
            all: { type: 'boolean' },
          },
          ...validations({
            rule: 'has(self.tags) != (has(self.all) && self.all)',
            message: 'audience.segment needs either tags or all: true (not both)',
          }),
        },
        contacts: {
          type: 'array',
          description: `A short inline list of phone numbers in E.164 form (at most ${MAX_INLINE_CONTACTS}).`,
          items: { type: 'string', maxLength: 16 },
          minItems: 1,
          maxItems: MAX_INLINE_CONTACTS,
          ...validations({
            rule: `self.all(c, c.matches('${E164_PATTERN.replaceAll('\\', '\\\\')}'))`,
            message: 'audience.contacts must be phone numbers in E.164 form, such as +15551234567',
          }),
        },
        topic: {
          type: 'string',
          description: "An FCM topic of the tenant's (push only; never with other sources or a local-time schedule). Sent as `<tenant>.<topic>`: the devices subscribe to that name, and no tenant can reach another's topic.",
          minLength: 1,
          maxLength: TENANT_TOPIC_MAX,
          pattern: '^[a-zA-Z0-9-_.~%]+$',
        },
      },
      ...validations(
        {
          rule: 'has(self.segment) || has(self.contacts) || has(self.topic)',
          message: 'audience needs at least one source: segment, contacts or topic',
        },
        {
          rule: '!has(self.topic) || (!has(self.segment) && !has(self.contacts))',
          message: 'audience.topic cannot be combined with segment or contacts: FCM delivers a topic to its own subscribers',
        },
      ),
    },
    schedule: {
      type: 'object',
      description: 'When to send: leave it out to send now, or set exactly one of sendAt, localTime with date, cron with timeZone.',
      properties: {
        sendAt: { type: 'string', format: 'date-time', description: 'One instant, such as 2026-11-29T15:00:00Z.' },
        localTime: {
          type: 'string',
          description: "HH:MM on `date` in each recipient's own time zone (else the tenant's).",
          pattern: '^([01][0-9]|2[0-3]):[0-5][0-9]$',
        },
        date: { type: 'string', format: 'date', description: 'The day of a localTime schedule, YYYY-MM-DD.' },
        cron: {
          type: 'string',
          description: 'A recurring schedule: minute hour day-of-month month day-of-week, such as "0 9 * * 0".',
          maxLength: 100,
          ...validations(
            {
              rule: "self.matches('^\\\\s*\\\\S+(\\\\s+\\\\S+){4}\\\\s*$')",
              message: 'schedule.cron needs five fields (minute hour day-of-month month day-of-week), such as "0 9 * * 0"',
            },
            { rule: CRON_AT_MOST_EVERY_5_MINUTES, message: CRON_TOO_OFTEN },
          ),
        },
        timeZone: { type: 'string', description: 'The IANA time zone cron is read in, such as America/Chicago.', minLength: 1, maxLength: 64 },
      },
      ...validations(
        {
          rule: '(has(self.sendAt) ? 1 : 0) + (has(self.localTime) ? 1 : 0) + (has(self.cron) ? 1 : 0) == 1',
          message: 'schedule must set exactly one of sendAt, localTime (with date) or cron (with timeZone); leave schedule out to send now',
        },
        {
          rule: 'has(self.localTime) == has(self.date)',
          message: "schedule.localTime and schedule.date go together: the wall-clock time, and the day to send it in each recipient's time zone",
        },
        {
          rule: 'has(self.cron) == has(self.timeZone)',
          message: 'schedule.cron and schedule.timeZone go together: timeZone (such as America/Chicago) is the zone cron is read in',
        },
      ),
    },
    delivery: {
      type: 'object',
      default: {},
      properties: {
        ratePerSecond: { type: 'integer', description: 'At most this many sends per second for this broadcast.', minimum: 1, maximum: 1000 },
        maxAttempts: { type: 'integer', description: 'Attempts per delivery before it is failed.', minimum: 1, maximum: 20, default: 5 },
        expireAfter: {
          type: 'string',
          description: 'A delivery not sent within this long of its due time is expired, not sent (such as 6h or 90m).',
          maxLength: 20,
          default: '6h',
          ...validations({
            rule: "self.matches('^([0-9]+(h|m|s))+$') && duration(self) >= duration('1m') && duration(self) <= duration('168h')",
            message: 'delivery.expireAfter must be a duration from 1m to 168h, written like 6h, 90m or 1h30m',
          }),
        },
      },
    },
    suspend: { type: 'boolean', description: 'Pause sending; false resumes.', default: false },
    dryRun: {
      type: 'boolean',
      description: 'Plan nothing, send nothing: status shows the audience, what would be skipped, SMS parts and estimated cost. Can be turned off (to send), not on.',
      default: false,
      ...validations({ rule: 'oldSelf || !self', message: 'spec.dryRun cannot be turned on once a Broadcast is live; create a new Broadcast to preview' }),
    },
    priority: { type: 'string', description: 'urgent outranks all normal work and ignores quiet hours.', enum: ['normal', 'urgent'], default: 'normal' },
  },
  ...validations(
    { rule: "!has(self.audience.topic) || self.channel == 'push'", message: 'audience.topic is for channel push only' },
    { rule: "!has(self.message.title) || self.channel == 'push'", message: 'message.title is for channel push only' },
    {
      rule: '!has(self.audience.topic) || !has(self.schedule) || !has(self.schedule.localTime)',
      message: 'audience.topic cannot use schedule.localTime: the time zones of a topic\'s subscribers are unknown',
    },
    {
      rule: `self.channel != 'sms' || size(self.message.text) <= ${SMS_MAX_CHARACTERS}`,
      message: `message.text is longer than ${SMS_MAX_CHARACTERS} characters, more than 10 SMS parts can carry`,
    },
  ),
} as const;

const count = { type: 'integer', minimum: 0 } as const;

const conditionSchema = {
  type: 'object',
  required: ['type', 'status', 'lastTransitionTime', 'reason', 'message'],
  properties: {
    type: { type: 'string', maxLength: 316, enum: ['Accepted', 'Scheduled', 'Progressing', 'Complete', 'Degraded'] },
    status: { type: 'string', enum: ['True', 'False', 'Unknown'] },
    observedGeneration: { type: 'integer', minimum: 0 },
    lastTransitionTime: { type: 'string', format: 'date-time' },
    reason: { type: 'string', maxLength: 1024, minLength: 1, pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$' },
    message: { type: 'string', maxLength: 32768 },
  },
} as const;

export const broadcastStatusSchema = {
  type: 'object',
  description: 'What the operator observed, as of observedGeneration.',
  properties: {
    phase: { type: 'string', enum: ['Pending', 'Scheduled', 'Sending', 'Completed', 'Failed', 'Suspended'] },
    observedGeneration: { type: 'integer', minimum: 0 },
    audienceSize: count,
    counts: {
      type: 'object',
      properties: {
        queued: count,
        sending: count,
        sent: count,
        delivered: count,
        failed: count,
        skipped: count,
        expired: count,
        cancelled: count,
        possibleDuplicates: count,
      },
    },
    segments: { ...count, description: 'SMS parts sent (dry run: parts that would be sent).' },
    estimatedCost: { type: 'string', description: 'Dry run: segments × the configured price per segment, such as "392.84 USD".' },
    preview: {
      type: 'object',
      description: 'Dry run: what sending would do now.',
      properties: {
        sendable: count,
        optedOut: count,
        noConsent: { ...count, description: 'Inline numbers that are not a contact of the tenant with SMS consent: skipped.' },
        invalid: count,
        segmentsPerMessage: count,
        encoding: { type: 'string' },
        pricePerSegment: { type: 'string' },
      },
    },
    startedAt: { type: 'string', format: 'date-time' },
    completedAt: { type: 'string', format: 'date-time' },
    nextRunAt: { type: 'string', format: 'date-time', description: 'The next occurrence not yet planned.' },
    lastScheduleTime: { type: 'string', format: 'date-time', description: 'When the latest occurrence was due.' },
    occurrences: { ...count, description: 'Occurrences planned so far.' },
    conditions: {
      type: 'array',
      items: conditionSchema,
      maxItems: 8,
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['type'],
    },
  },
} as const;

// ---------------------------------------------------------------------------------------
// TypeScript types derived from the schema objects above.

type RequiredKeys<S, P> =
  | (S extends { required: readonly (infer R)[] } ? R : never)
  | { [K in keyof P]: P[K] extends { default: unknown } ? K : never }[keyof P];
type Simplify<T> = { [K in keyof T]: T[K] } & {};
type ObjectFrom<P, R> = Simplify<
  { -readonly [K in keyof P as K extends R ? K : never]: FromSchema<P[K]> } & {
    -readonly [K in keyof P as K extends R ? never : K]?: FromSchema<P[K]>;
  }
>;

/** The value an OpenAPI schema object describes, after the API server applied its defaults. */
export type FromSchema<S> = S extends { enum: readonly (infer E)[] }
  ? E
  : S extends { type: 'string' }
    ? string
    : S extends { type: 'integer' | 'number' }
      ? number
      : S extends { type: 'boolean' }
        ? boolean
        : S extends { type: 'array'; items: infer I }
          ? FromSchema<I>[]
          : S extends { type: 'object'; properties: infer P }
            ? ObjectFrom<P, RequiredKeys<S, P>>
            : unknown;

export type BroadcastSpec = FromSchema<typeof broadcastSpecSchema>;
export type BroadcastStatus = FromSchema<typeof broadcastStatusSchema>;
export type BroadcastPhase = NonNullable<BroadcastStatus['phase']>;
export type Condition = FromSchema<typeof conditionSchema>;
export type ConditionType = Condition['type'];
export type Counts = NonNullable<BroadcastStatus['counts']>;
export type Schedule = NonNullable<BroadcastSpec['schedule']>;

export interface ObjectMeta {
  name: string;
  namespace: string;
  uid: string;
  resourceVersion: string;
  generation: number;
  creationTimestamp: string;
  deletionTimestamp?: string;
  finalizers?: string[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface Broadcast {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: ObjectMeta;
  spec: BroadcastSpec;
  status?: BroadcastStatus;
}

/** What `kubectl apply` accepts: defaults may be left out. */
export interface BroadcastManifest {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec: Omit<BroadcastSpec, 'delivery' | 'suspend' | 'dryRun' | 'priority'> & {
    delivery?: Partial<BroadcastSpec['delivery']>;
    suspend?: boolean;
    dryRun?: boolean;
    priority?: BroadcastSpec['priority'];
  };
}

export const printerColumns = [
  { name: 'Tenant', type: 'string', jsonPath: '.spec.tenant' },
  { name: 'Channel', type: 'string', jsonPath: '.spec.channel' },
  { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
  { name: 'Audience', type: 'integer', jsonPath: '.status.audienceSize' },
  { name: 'Sent', type: 'integer', jsonPath: '.status.counts.sent' },
  { name: 'Failed', type: 'integer', jsonPath: '.status.counts.failed' },
  { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
] as const;

/** The CustomResourceDefinition, as the API server receives it. */
export function customResourceDefinition() {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${PLURAL}.${GROUP}` },
    spec: {
      group: GROUP,
      names: { kind: KIND, listKind: `${KIND}List`, plural: PLURAL, singular: 'broadcast', shortNames: ['bc'], categories: ['herald'] },
      scope: 'Namespaced',
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: printerColumns,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: 'A message broadcast: what to send (SMS or push), to whom, and when.',
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                spec: broadcastSpecSchema,
                status: broadcastStatusSchema,
              },
            },
          },
        },
      ],
    },
  };
}
