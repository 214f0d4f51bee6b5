import { countSegments } from '../../core/delivery/segments.js';
import { previewAudience } from '../../core/delivery/reads.js';
import { rfc3339 } from '../conditions.js';
import type { Reconciling } from './reconciling.js';

/** segments × price, in exact decimal arithmetic (micro-units), rounded to cents. */
export function estimateCost(segments: number, pricePerSegment: string, currency: string): string {
  const m = /^(\d+)(?:\.(\d{1,6}))?$/.exec(pricePerSegment.trim());
  if (!m) throw new Error(`price per segment "${pricePerSegment}" is not a decimal such as 0.0040`);
  const micros = BigInt(m[1]!) * 1_000_000n + BigInt((m[2] ?? '').padEnd(6, '0'));
  const totalMicros = micros * BigInt(segments);
  const cents = (totalMicros + 5_000n) / 10_000n;
  return `${cents / 100n}.${String(cents % 100n).padStart(2, '0')} ${currency}`;
}

/**
 * Dry run: plan nothing and send nothing; show what sending would do now — the
 * audience, who would be skipped (opted out, inline numbers without consent, invalid numbers), SMS parts in total
 * and their estimated cost. Computed once per generation.
 */
export async function dryRun(r: Reconciling): Promise<void> {
  const fresh = r.bc.status?.observedGeneration === r.generation && r.bc.status.preview !== undefined;
  if (!fresh) {
    const spec = r.spec;
    const p = await previewAudience(r.deps.pool, spec.tenant, spec.channel, {
      segment: spec.audience.segment,
      contacts: spec.audience.contacts,
      topic: spec.audience.topic,
    });
    const seg = spec.channel === 'sms' ? countSegments(spec.message.text) : undefined;
    const segments = seg ? seg.segments * p.sendable : 0;
    const { pricePerSegment, currency } = r.deps.settings;
    r.status.audienceSize = p.audienceSize;
    r.status.counts = { queued: 0, sending: 0, sent: 0, delivered: 0, failed: 0, skipped: p.optedOut + p.noConsent + p.invalid, expired: 0, cancelled: 0, possibleDuplicates: 0 };
    r.status.segments = segments;
    r.status.preview = {
      sendable: p.sendable,
      optedOut: p.optedOut,
      noConsent: p.noConsent,
      invalid: p.invalid,
      ...(seg ? { segmentsPerMessage: seg.segments, encoding: seg.encoding, pricePerSegment: `${pricePerSegment} ${currency}` } : {}),
    };
    if (seg) r.status.estimatedCost = estimateCost(segments, pricePerSegment, currency);
    else delete r.status.estimatedCost;
    const summary =
      `dry run: ${p.audienceSize} recipients, ${p.optedOut + p.noConsent + p.invalid} would be skipped (${p.optedOut} opted out, ${p.noConsent} without consent, ${p.invalid} invalid)` +
      (seg ? `; ${segments} SMS parts (${seg.segments} per message, ${seg.encoding}), estimated cost ${r.status.estimatedCost}` : '');
    r.event('Normal', 'DryRunComplete', 'Preview', summary);
    if (p.audienceSize === 0) r.event('Warning', 'EmptyAudience', 'Preview', 'the audience has no recipient: check the segment tags, contacts or topic');
    r.condition('Complete', 'True', 'DryRunComplete', summary);
  }
  r.condition('Scheduled', 'False', 'DryRun', 'dry run: nothing is planned');
  r.condition('Progressing', 'False', 'DryRun', 'dry run: nothing is sent');
  if (!r.status.conditions?.some((c) => c.type === 'Complete' && c.status === 'True')) {
    r.condition('Complete', 'True', 'DryRunComplete', 'dry run complete');
  }
  if ((r.status.audienceSize ?? 0) === 0) r.degrade('EmptyAudience', 'the audience has no recipient');
  delete r.status.nextRunAt;
  r.status.completedAt ??= rfc3339(r.now);
}

/** Once a Broadcast is live, the preview no longer describes it. */
export function clearPreview(r: Reconciling): void {
  if (r.status.preview === undefined) return;
  delete r.status.completedAt;
  delete r.status.preview;
  delete r.status.estimatedCost;
}
