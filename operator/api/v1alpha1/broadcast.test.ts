import { readFileSync } from 'node:fs';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { load } from 'js-yaml';
import { broadcastSpecSchema, customResourceDefinition, type BroadcastSpec, type BroadcastStatus, type Condition } from './broadcast.js';
import { CRD_PATH, renderCrd } from './generate-crd.js';

describe('the Broadcast type', () => {
  it('the committed CRD manifest is what generate-crd.ts writes (run `npx tsx operator/api/v1alpha1/generate-crd.ts`)', () => {
    expect(readFileSync(CRD_PATH, 'utf8')).toBe(renderCrd());
    expect(load(readFileSync(CRD_PATH, 'utf8'))).toEqual(customResourceDefinition());
  });

  it('TypeScript types come from the schema: enums, required fields and defaulted fields are exact', () => {
    expectTypeOf<BroadcastSpec['channel']>().toEqualTypeOf<'sms' | 'push'>();
    expectTypeOf<BroadcastSpec['priority']>().toEqualTypeOf<'normal' | 'urgent'>();
    expectTypeOf<BroadcastSpec['tenant']>().toEqualTypeOf<string>();
    // Defaults make these present on every stored object.
    expectTypeOf<BroadcastSpec['suspend']>().toEqualTypeOf<boolean>();
    expectTypeOf<BroadcastSpec['delivery']['expireAfter']>().toEqualTypeOf<string>();
    expectTypeOf<BroadcastSpec['delivery']['maxAttempts']>().toEqualTypeOf<number>();
    // Optional stays optional.
    expectTypeOf<BroadcastSpec['delivery']['ratePerSecond']>().toEqualTypeOf<number | undefined>();
    expectTypeOf<BroadcastSpec['audience']['contacts']>().toEqualTypeOf<string[] | undefined>();
    expectTypeOf<BroadcastSpec['message']>().toEqualTypeOf<{ text: string; title?: string }>();
    expectTypeOf<NonNullable<BroadcastStatus['phase']>>().toEqualTypeOf<'Pending' | 'Scheduled' | 'Sending' | 'Completed' | 'Failed' | 'Suspended'>();
    expectTypeOf<Condition['type']>().toEqualTypeOf<'Accepted' | 'Scheduled' | 'Progressing' | 'Complete' | 'Degraded'>();
  });

  it('every CEL rule carries a message, and every field a type (a structural schema)', () => {
    const visit = (s: Record<string, unknown>, path: string) => {
      expect(s.type, path).toBeDefined();
      for (const v of (s['x-kubernetes-validations'] as { rule: string; message?: string }[] | undefined) ?? []) {
        expect(v.message, `${path}: ${v.rule}`).toMatch(/\w{3,}/);
      }
      for (const [k, child] of Object.entries((s.properties as Record<string, Record<string, unknown>>) ?? {})) visit(child, `${path}.${k}`);
      if (s.items) visit(s.items as Record<string, unknown>, `${path}[]`);
    };
    visit(broadcastSpecSchema, 'spec');
  });
});
