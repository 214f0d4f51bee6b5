/**
 * One region of a stack: its AWS provider (tags applied by default to everything it
 * creates) and the naming rule every resource follows: herald-<stack>-<region>-<thing>.
 */
import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';
import type { RegionConfig, StackConfig } from './config.js';

export const PROJECT = 'herald';

export interface RegionContext {
  stack: string;
  region: string;
  config: RegionConfig;
  isPrimary: boolean;
  /** Workers consume and the database accepts writes here. */
  isActive: boolean;
  aws: aws.Provider;
  tags: Record<string, string>;
  name(thing: string): string;
}

export function resourceName(stack: string, region: string, thing: string): string {
  return `${PROJECT}-${stack}-${region}-${thing}`;
}

export function standardTags(stack: string, region: string): Record<string, string> {
  return { project: PROJECT, stack, region, 'managed-by': 'pulumi' };
}

export function regionContexts(cfg: StackConfig): RegionContext[] {
  return cfg.regions.map((r) => {
    const tags = standardTags(cfg.stack, r.name);
    const name = (thing: string): string => resourceName(cfg.stack, r.name, thing);
    return {
      stack: cfg.stack,
      region: r.name,
      config: r,
      isPrimary: r.name === cfg.primaryRegion,
      isActive: r.name === cfg.activeRegion,
      aws: new aws.Provider(name('aws'), { region: r.name, defaultTags: { tags } }),
      tags,
      name,
    };
  });
}

/** Options for a resource of a component in this region. */
export function inRegion(ctx: RegionContext, parent: pulumi.Resource, extra?: pulumi.CustomResourceOptions): pulumi.CustomResourceOptions {
  return { parent, provider: ctx.aws, ...extra };
}
