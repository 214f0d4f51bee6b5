export * from './behaviours.js';
export { startSimulator, connectToSimulator, generateFcmCertificate, DEFAULT_CONFIG, FCM_HOST } from './simulator.js';
export { SIMULATOR_FCM_ACCESS_TOKEN, SIMULATOR_TELNYX_API_KEY } from './client.js';
export { smsParts, type SmsParts } from './sms-parts.js';
export type { Simulator, SimulatorConfig, SimulatorOptions, SimulatorInfo, ReceivedSummary, ChannelSummary, ReceivedMessage, Channel } from './simulator.js';
export { createSigningKey, signingKeySeed, signTelnyxWebhook, telnyxEvent } from './webhooks.js';
export type { SigningKey, SignedHeaders, WebhookRecord, TelnyxEventData } from './webhooks.js';
