import { v5 as uuidv5 } from 'uuid';

// Fixed namespace: the same names give the same ids in every process and release,
// which is what makes planning and enqueueing idempotent.
const HERALD_NAMESPACE = '6f1d3c2a-5b7e-4c1a-9f3e-2d8b7a6c5e40';

export const occurrenceId = (broadcastId: string, key: string): string => uuidv5(`occurrence/${broadcastId}/${key}`, HERALD_NAMESPACE);
export const batchJobId = (occurrenceId: string, batchNo: number): string => uuidv5(`batch/${occurrenceId}/${batchNo}`, HERALD_NAMESPACE);
export const broadcastIdFor = (uid: string): string => uuidv5(`broadcast/${uid}`, HERALD_NAMESPACE);
