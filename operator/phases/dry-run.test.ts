import { describe, expect, it } from 'vitest';
import { durationSeconds } from '../delivery-record.js';
import { estimateCost } from './dry-run.js';

describe('estimateCost', () => {
  it('multiplies exactly and rounds to cents', () => {
    expect(estimateCost(98_211 * 2, '0.0040', 'USD')).toBe('785.69 USD');
    expect(estimateCost(0, '0.0040', 'USD')).toBe('0.00 USD');
    expect(estimateCost(3, '0.1', 'EUR')).toBe('0.30 EUR');
    expect(estimateCost(1, '0.004999', 'USD')).toBe('0.00 USD');
    expect(estimateCost(1, '0.005', 'USD')).toBe('0.01 USD');
    expect(() => estimateCost(1, 'cheap', 'USD')).toThrow(/not a decimal/);
  });
});

describe('durationSeconds', () => {
  it('reads the durations the CRD admits', () => {
    expect(durationSeconds('6h')).toBe(21_600);
    expect(durationSeconds('90m')).toBe(5_400);
    expect(durationSeconds('1h30m')).toBe(5_400);
    expect(durationSeconds('45s')).toBe(45);
    expect(() => durationSeconds('6 hours')).toThrow(/not a duration/);
    expect(() => durationSeconds('')).toThrow(/not a duration/);
  });
});
