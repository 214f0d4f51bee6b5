/**
 * The public entry point of the api (provider webhooks, device registration):
 * per region the AWS Load Balancer Controller (Helm, IRSA) and an ACM certificate
 * validated in Route 53; globally, Route 53 health checks per region and failover
 * records that send `api.<zone>` to the active region while it is healthy.
 * (The Kubernetes Ingress object itself belongs to the workloads: see workloads.ts.)
 */
import * as aws from '@pulumi/aws';
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import type { StackConfig } from './config.js';
import { workloadIdentityRole, type Cluster } from './cluster.js';
import type { Network } from './network.js';
import { inRegion, type RegionContext } from './region.js';

export const LOAD_BALANCER_CONTROLLER_CHART_VERSION = '1.13.4';
export const INGRESS_CLASS = 'alb';

/** The regional name of the api, health-checked by Route 53: `<region>.<apiHostname>`. */
export function regionalHostname(domain: StackConfig['domain'], region: string): string {
  return `${region}.${domain.apiHostname}`;
}

/** The tag the controller puts on everything it creates (its value: the cluster's name). */
const CLUSTER_TAG = 'elbv2.k8s.aws/cluster';
const created = { Null: { [`aws:RequestTag/${CLUSTER_TAG}`]: 'false' } };
const owned = { Null: { [`aws:ResourceTag/${CLUSTER_TAG}`]: 'false' } };
const retagOwned = { Null: { [`aws:RequestTag/${CLUSTER_TAG}`]: 'true', [`aws:ResourceTag/${CLUSTER_TAG}`]: 'false' } };
const LB_ARNS = ['targetgroup/*/*', 'loadbalancer/net/*/*', 'loadbalancer/app/*/*'].map((r) => `arn:aws:elasticloadbalancing:*:*:${r}`);
const LISTENER_ARNS = ['listener/net/*/*/*', 'listener/app/*/*/*', 'listener-rule/net/*/*/*', 'listener-rule/app/*/*/*'].map((r) => `arn:aws:elasticloadbalancing:*:*:${r}`);
const SG_ARN = 'arn:aws:ec2:*:*:security-group/*';

/**
 * The controller's published IAM policy (aws-load-balancer-controller
 * docs/install/iam_policy.json, v2.13): every action named, no service wildcard; what
 * changes or deletes a load balancer, target group or security group does so only on
 * those carrying the controller's cluster tag, and it can create them only tagged.
 */
export const loadBalancerControllerPolicy = {
  Version: '2012-10-17',
  Statement: [
    { Effect: 'Allow', Action: ['iam:CreateServiceLinkedRole'], Resource: '*', Condition: { StringEquals: { 'iam:AWSServiceName': 'elasticloadbalancing.amazonaws.com' } } },
    {
      Effect: 'Allow',
      Action: [
        'ec2:DescribeAccountAttributes', 'ec2:DescribeAddresses', 'ec2:DescribeAvailabilityZones', 'ec2:DescribeInternetGateways',
        'ec2:DescribeVpcs', 'ec2:DescribeVpcPeeringConnections', 'ec2:DescribeSubnets', 'ec2:DescribeSecurityGroups',
        'ec2:DescribeInstances', 'ec2:DescribeNetworkInterfaces', 'ec2:DescribeTags', 'ec2:GetCoipPoolUsage', 'ec2:DescribeCoipPools',
        'ec2:GetSecurityGroupsForVpc', 'ec2:DescribeIpamPools', 'ec2:DescribeRouteTables',
        'elasticloadbalancing:DescribeLoadBalancers', 'elasticloadbalancing:DescribeLoadBalancerAttributes', 'elasticloadbalancing:DescribeListeners',
        'elasticloadbalancing:DescribeListenerCertificates', 'elasticloadbalancing:DescribeSSLPolicies', 'elasticloadbalancing:DescribeRules',
        'elasticloadbalancing:DescribeTargetGroups', 'elasticloadbalancing:DescribeTargetGroupAttributes', 'elasticloadbalancing:DescribeTargetHealth',
        'elasticloadbalancing:DescribeTags', 'elasticloadbalancing:DescribeTrustStores', 'elasticloadbalancing:DescribeListenerAttributes',
        'elasticloadbalancing:DescribeCapacityReservation',
      ],
      Resource: '*',
    },
    {
      Effect: 'Allow',
      Action: [
        'cognito-idp:DescribeUserPoolClient', 'acm:ListCertificates', 'acm:DescribeCertificate', 'iam:ListServerCertificates', 'iam:GetServerCertificate',
        'waf-regional:GetWebACL', 'waf-regional:GetWebACLForResource', 'waf-regional:AssociateWebACL', 'waf-regional:DisassociateWebACL',
        'wafv2:GetWebACL', 'wafv2:GetWebACLForResource', 'wafv2:AssociateWebACL', 'wafv2:DisassociateWebACL',
        'shield:GetSubscriptionState', 'shield:DescribeProtection', 'shield:CreateProtection', 'shield:DeleteProtection',
      ],
      Resource: '*',
    },
    { Effect: 'Allow', Action: ['ec2:AuthorizeSecurityGroupIngress', 'ec2:RevokeSecurityGroupIngress'], Resource: '*' },
    { Effect: 'Allow', Action: ['ec2:CreateSecurityGroup'], Resource: '*' },
    {
      Effect: 'Allow',
      Action: ['ec2:CreateTags'],
      Resource: SG_ARN,
      Condition: { StringEquals: { 'ec2:CreateAction': 'CreateSecurityGroup' }, ...created },
    },
    { Effect: 'Allow', Action: ['ec2:CreateTags', 'ec2:DeleteTags'], Resource: SG_ARN, Condition: retagOwned },
    { Effect: 'Allow', Action: ['ec2:AuthorizeSecurityGroupIngress', 'ec2:RevokeSecurityGroupIngress', 'ec2:DeleteSecurityGroup'], Resource: '*', Condition: owned },
    { Effect: 'Allow', Action: ['elasticloadbalancing:CreateLoadBalancer', 'elasticloadbalancing:CreateTargetGroup'], Resource: '*', Condition: created },
    {
      Effect: 'Allow',
      Action: ['elasticloadbalancing:CreateListener', 'elasticloadbalancing:DeleteListener', 'elasticloadbalancing:CreateRule', 'elasticloadbalancing:DeleteRule'],
      Resource: '*',
    },
    { Effect: 'Allow', Action: ['elasticloadbalancing:AddTags', 'elasticloadbalancing:RemoveTags'], Resource: LB_ARNS, Condition: retagOwned },
    { Effect: 'Allow', Action: ['elasticloadbalancing:AddTags', 'elasticloadbalancing:RemoveTags'], Resource: LISTENER_ARNS },
    {
      Effect: 'Allow',
      Action: [
        'elasticloadbalancing:ModifyLoadBalancerAttributes', 'elasticloadbalancing:SetIpAddressType', 'elasticloadbalancing:SetSecurityGroups',
        'elasticloadbalancing:SetSubnets', 'elasticloadbalancing:DeleteLoadBalancer', 'elasticloadbalancing:ModifyTargetGroup',
        'elasticloadbalancing:ModifyTargetGroupAttributes', 'elasticloadbalancing:DeleteTargetGroup', 'elasticloadbalancing:ModifyListenerAttributes',
        'elasticloadbalancing:ModifyCapacityReservation', 'elasticloadbalancing:ModifyIpPools',
      ],
      Resource: '*',
      Condition: owned,
    },
    {
      Effect: 'Allow',
      Action: ['elasticloadbalancing:AddTags'],
      Resource: LB_ARNS,
      Condition: { StringEquals: { 'elasticloadbalancing:CreateAction': ['CreateTargetGroup', 'CreateLoadBalancer'] }, ...created },
    },
    { Effect: 'Allow', Action: ['elasticloadbalancing:RegisterTargets', 'elasticloadbalancing:DeregisterTargets'], Resource: 'arn:aws:elasticloadbalancing:*:*:targetgroup/*/*' },
    {
      Effect: 'Allow',
      Action: [
        'elasticloadbalancing:SetWebAcl', 'elasticloadbalancing:ModifyListener', 'elasticloadbalancing:AddListenerCertificates',
        'elasticloadbalancing:RemoveListenerCertificates', 'elasticloadbalancing:ModifyRule', 'elasticloadbalancing:SetRulePriorities',
      ],
      Resource: '*',
    },
  ],
};

export interface IngressArgs {
  ctx: RegionContext;
  cluster: Cluster;
  network: Network;
  domain: StackConfig['domain'];
}

export class Ingress extends pulumi.ComponentResource {
  /** ARN of the validated certificate for the api's global and regional names. */
  readonly certificateArn: pulumi.Output<string>;
  readonly hostnames: string[];
  /** The controller (and its webhooks) must be running before Services and Ingresses. */
  readonly ready: pulumi.Resource[];

  constructor(name: string, args: IngressArgs, opts?: pulumi.ComponentResourceOptions) {
    super('herald:platform:Ingress', name, {}, opts);
    const { ctx, cluster, network, domain } = args;
    const role = workloadIdentityRole(
      'lb-controller',
      { ctx, cluster, namespace: 'kube-system', serviceAccount: 'aws-load-balancer-controller', policy: JSON.stringify(loadBalancerControllerPolicy) },
      this,
    );
    const release = new k8s.helm.v3.Release(
      ctx.name('lb-controller'),
      {
        name: 'aws-load-balancer-controller',
        chart: 'aws-load-balancer-controller',
        version: LOAD_BALANCER_CONTROLLER_CHART_VERSION,
        repositoryOpts: { repo: 'https://aws.github.io/eks-charts' },
        namespace: 'kube-system',
        atomic: true,
        values: {
          clusterName: cluster.name,
          region: ctx.region,
          vpcId: network.vpcId,
          replicaCount: 2,
          serviceAccount: { name: 'aws-load-balancer-controller', annotations: { 'eks.amazonaws.com/role-arn': role.arn } },
          resources: { requests: { cpu: '50m', memory: '128Mi' }, limits: { cpu: '500m', memory: '256Mi' } },
        },
      },
      { parent: this, provider: cluster.k8s },
    );

    this.hostnames = [domain.apiHostname, regionalHostname(domain, ctx.region)];
    const cert = new aws.acm.Certificate(
      ctx.name('api-cert'),
      {
        domainName: domain.apiHostname,
        subjectAlternativeNames: [regionalHostname(domain, ctx.region)],
        validationMethod: 'DNS',
        tags: { Name: ctx.name('api-cert') },
      },
      inRegion(ctx, this),
    );
    const validationRecords = this.hostnames.map((host, i) => {
      const option = cert.domainValidationOptions.apply((opts) => {
        const found = opts.find((o) => o.domainName === host);
        if (!found) throw new Error(`${ctx.name('api-cert')}: no DNS validation option for ${host}`);
        return found;
      });
      return new aws.route53.Record(
        ctx.name(`api-cert-validation-${i}`),
        {
          zoneId: domain.hostedZoneId,
          name: option.apply((o) => o.resourceRecordName),
          type: option.apply((o) => o.resourceRecordType),
          records: [option.apply((o) => o.resourceRecordValue)],
          ttl: 300,
          // ACM uses the same validation record for a name in every region
          allowOverwrite: true,
        },
        inRegion(ctx, this),
      );
    });
    const validation = new aws.acm.CertificateValidation(
      ctx.name('api-cert'),
      { certificateArn: cert.arn, validationRecordFqdns: validationRecords.map((r) => r.fqdn) },
      inRegion(ctx, this),
    );
    this.certificateArn = validation.certificateArn;
    this.ready = [release];
    this.registerOutputs({ certificateArn: this.certificateArn });
  }
}

export interface RegionalEndpoint {
  ctx: RegionContext;
  /** The ALB's DNS name (from the api Ingress status). */
  loadBalancerHostname: pulumi.Input<string>;
}

export interface ApiDnsArgs {
  /** Route 53 is global; its resources are created through this region's provider. */
  home: RegionContext;
  domain: StackConfig['domain'];
  activeRegion: string;
  endpoints: RegionalEndpoint[];
}

/** Health-checked failover of `apiHostname`: PRIMARY = active region, SECONDARY = the next one. */
export class ApiDns extends pulumi.ComponentResource {
  readonly url: string;

  constructor(name: string, args: ApiDnsArgs, opts?: pulumi.ComponentResourceOptions) {
    super('herald:platform:ApiDns', name, {}, opts);
    const { home, domain } = args;
    const o = () => inRegion(home, this);
    const active = args.endpoints.find((e) => e.ctx.region === args.activeRegion);
    const standby = args.endpoints.find((e) => e.ctx.region !== args.activeRegion);
    if (!active || !standby) throw new Error('ApiDns needs the active region and at least one other');

    const checks = new Map<string, aws.route53.HealthCheck>();
    for (const e of args.endpoints) {
      const host = regionalHostname(domain, e.ctx.region);
      new aws.route53.Record(
        e.ctx.name('api-regional'),
        { zoneId: domain.hostedZoneId, name: host, type: 'CNAME', ttl: 60, records: [e.loadBalancerHostname] },
        o(),
      );
      checks.set(
        e.ctx.region,
        new aws.route53.HealthCheck(
          e.ctx.name('api-health'),
          {
            type: 'HTTPS',
            fqdn: host,
            port: 443,
            resourcePath: '/readyz',
            requestInterval: 10,
            failureThreshold: 3,
            measureLatency: true,
            tags: { Name: e.ctx.name('api-health'), region: e.ctx.region },
          },
          o(),
        ),
      );
    }
    for (const [role, e] of [['PRIMARY', active], ['SECONDARY', standby]] as const) {
      new aws.route53.Record(
        e.ctx.name(`api-failover-${role.toLowerCase()}`),
        {
          zoneId: domain.hostedZoneId,
          name: domain.apiHostname,
          type: 'CNAME',
          ttl: 60,
          records: [e.loadBalancerHostname],
          setIdentifier: e.ctx.region,
          failoverRoutingPolicies: [{ type: role }],
          healthCheckId: checks.get(e.ctx.region)!.id,
        },
        o(),
      );
    }
    this.url = `https://${domain.apiHostname}`;
    this.registerOutputs({ url: this.url });
  }
}
