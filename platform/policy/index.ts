import { PolicyPack } from '@pulumi/policy';
import { heraldPolicies } from './policies.js';

new PolicyPack('herald', { enforcementLevel: 'mandatory', policies: heraldPolicies });
