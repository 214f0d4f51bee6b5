/**
 * EKS cluster of one region, built from plain aws.eks/aws.iam resources (visible to the
 * unit tests): control plane with KMS-encrypted Kubernetes secrets, managed node groups
 * in the private subnets, an OIDC provider for workload identity (IRSA), and a
 * Kubernetes provider bound to the cluster through a generated kubeconfig.
 */
import * as aws from '@pulumi/aws';
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import type { StackConfig } from './config.js';
import type { Network } from './network.js';
import { inRegion, type RegionContext } from './region.js';

export interface ClusterArgs {
  ctx: RegionContext;
  network: Network;
  settings: StackConfig['cluster'];
}

const assumeRole = (service: string): string =>
  JSON.stringify({
    Version: '2012-10-17',
    Statement: [{ Effect: 'Allow', Principal: { Service: service }, Action: ['sts:AssumeRole', 'sts:TagSession'] }],
  });

export class Cluster extends pulumi.ComponentResource {
  readonly name: pulumi.Output<string>;
  readonly oidcProviderArn: pulumi.Output<string>;
  readonly oidcIssuer: pulumi.Output<string>;
  readonly kubeconfig: pulumi.Output<string>;
  readonly k8s: k8s.Provider;
  /** The cluster security group EKS creates: on every managed node, so on every pod's traffic. */
  readonly securityGroupId: pulumi.Output<string>;
  /** Resources that must exist before pods can be scheduled. */
  readonly nodeGroups: aws.eks.NodeGroup[];

  constructor(name: string, args: ClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super('herald:platform:Cluster', name, {}, opts);
    const { ctx, network, settings } = args;
    const o = (extra?: pulumi.CustomResourceOptions) => inRegion(ctx, this, extra);

    const secretsKey = new aws.kms.Key(
      ctx.name('eks-secrets-key'),
      { description: `${ctx.name('eks')} Kubernetes secrets envelope encryption`, enableKeyRotation: true, deletionWindowInDays: 30 },
      o(),
    );
    const controlPlaneRole = new aws.iam.Role(ctx.name('eks-role'), { assumeRolePolicy: assumeRole('eks.amazonaws.com') }, o());
    const clusterPolicy = new aws.iam.RolePolicyAttachment(
      ctx.name('eks-role-cluster-policy'),
      { role: controlPlaneRole.name, policyArn: 'arn:aws:iam::aws:policy/AmazonEKSClusterPolicy' },
      o(),
    );

    const clusterName = ctx.name('eks');
    const cluster = new aws.eks.Cluster(
      clusterName,
      {
        name: clusterName,
        version: settings.kubernetesVersion,
        roleArn: controlPlaneRole.arn,
        vpcConfig: {
          subnetIds: network.privateSubnetIds,
          endpointPrivateAccess: true,
          endpointPublicAccess: true,
          publicAccessCidrs: settings.publicAccessCidrs,
        },
        accessConfig: { authenticationMode: 'API', bootstrapClusterCreatorAdminPermissions: true },
        encryptionConfig: { resources: ['secrets'], provider: { keyArn: secretsKey.arn } },
        enabledClusterLogTypes: ['api', 'audit', 'authenticator'],
        tags: { Name: clusterName },
      },
      o({ dependsOn: [clusterPolicy] }),
    );

    // The VPC CNI enforces NetworkPolicies only with its network policy agent on (network-policies.ts).
    new aws.eks.Addon(
      ctx.name('vpc-cni'),
      {
        clusterName: cluster.name,
        addonName: 'vpc-cni',
        configurationValues: JSON.stringify({ enableNetworkPolicy: 'true' }),
        resolveConflictsOnCreate: 'OVERWRITE',
        resolveConflictsOnUpdate: 'OVERWRITE',
      },
      o(),
    );

    const nodeRole = new aws.iam.Role(ctx.name('node-role'), { assumeRolePolicy: assumeRole('ec2.amazonaws.com') }, o());
    const nodePolicies = ['AmazonEKSWorkerNodePolicy', 'AmazonEKS_CNI_Policy', 'AmazonEC2ContainerRegistryReadOnly'].map(
      (policy) =>
        new aws.iam.RolePolicyAttachment(
          ctx.name(`node-role-${policy}`),
          { role: nodeRole.name, policyArn: `arn:aws:iam::aws:policy/${policy}` },
          o(),
        ),
    );
    this.nodeGroups = settings.nodeGroups.map((group) => {
      // IMDSv2 only, one hop: a pod (one hop further than the node) cannot reach the metadata service and borrow the node's role
      const template = new aws.ec2.LaunchTemplate(
        ctx.name(`nodes-${group.name}`),
        {
          description: `${ctx.name(`nodes-${group.name}`)}: IMDSv2 with hop limit 1`,
          metadataOptions: { httpEndpoint: 'enabled', httpTokens: 'required', httpPutResponseHopLimit: 1 },
          tagSpecifications: [{ resourceType: 'instance', tags: { Name: ctx.name(`nodes-${group.name}`) } }],
          tags: { Name: ctx.name(`nodes-${group.name}`) },
        },
        o(),
      );
      return new aws.eks.NodeGroup(
          ctx.name(`nodes-${group.name}`),
          {
            clusterName: cluster.name,
            nodeGroupName: ctx.name(`nodes-${group.name}`),
            nodeRoleArn: nodeRole.arn,
            subnetIds: network.privateSubnetIds,
            instanceTypes: group.instanceTypes,
            capacityType: 'ON_DEMAND',
            scalingConfig: { minSize: group.minSize, desiredSize: group.desiredSize, maxSize: group.maxSize },
            updateConfig: { maxUnavailable: 1 },
            launchTemplate: { id: template.id, version: pulumi.interpolate`${template.latestVersion}` },
            labels: { 'herald.dev/node-group': group.name },
            tags: { Name: ctx.name(`nodes-${group.name}`) },
          },
          // the autoscaler / operators may move desiredSize; do not fight them
          o({ dependsOn: nodePolicies, ignoreChanges: ['scalingConfig.desiredSize'] }),
        );
    });

    // AWS's answer, read as possibly absent (the SDK's types say always there).
    const issuer = cluster.identities.apply((ids: { oidcs?: { issuer?: string }[] }[] | undefined) => {
      const url = ids?.[0]?.oidcs?.[0]?.issuer;
      if (!url) throw new Error(`cluster ${clusterName} has no OIDC issuer`);
      return url;
    });
    const oidc = new aws.iam.OpenIdConnectProvider(
      ctx.name('oidc'),
      { url: issuer, clientIdLists: ['sts.amazonaws.com'], tags: { Name: ctx.name('oidc') } },
      o(),
    );

    this.kubeconfig = pulumi
      .all([cluster.name, cluster.endpoint, cluster.certificateAuthority])
      .apply(([clusterId, endpoint, ca]: [string, string, { data?: string }]) => generateKubeconfig(clusterId, endpoint, ca.data ?? '', ctx.region));
    this.k8s = new k8s.Provider(
      ctx.name('k8s'),
      { kubeconfig: this.kubeconfig, enableServerSideApply: true },
      { parent: this, dependsOn: this.nodeGroups },
    );
    this.name = cluster.name;
    this.securityGroupId = cluster.vpcConfig.clusterSecurityGroupId;
    this.oidcProviderArn = oidc.arn;
    this.oidcIssuer = issuer;
    this.registerOutputs({ name: this.name, oidcProviderArn: this.oidcProviderArn });
  }
}

/** A kubeconfig that authenticates with `aws eks get-token` (no static credentials in it). */
export function generateKubeconfig(clusterName: string, endpoint: string, caData: string, region: string): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: clusterName, cluster: { server: endpoint, 'certificate-authority-data': caData } }],
    contexts: [{ name: clusterName, context: { cluster: clusterName, user: clusterName } }],
    'current-context': clusterName,
    users: [
      {
        name: clusterName,
        user: {
          exec: {
            apiVersion: 'client.authentication.k8s.io/v1beta1',
            command: 'aws',
            args: ['eks', 'get-token', '--cluster-name', clusterName, '--region', region, '--output', 'json'],
          },
        },
      },
    ],
  });
}

export interface WorkloadIdentityArgs {
  ctx: RegionContext;
  cluster: Cluster;
  namespace: string;
  serviceAccount: string;
  /** IAM policy document (JSON) granted to the service account. */
  policy: pulumi.Input<string>;
}

/** An IAM role that exactly one Kubernetes service account can assume (IRSA). */
export function workloadIdentityRole(thing: string, args: WorkloadIdentityArgs, parent: pulumi.Resource): aws.iam.Role {
  const { ctx, cluster, namespace, serviceAccount } = args;
  const trust = pulumi.all([cluster.oidcProviderArn, cluster.oidcIssuer]).apply(([arn, issuerUrl]) => {
    const host = issuerUrl.replace(/^https:\/\//, '');
    return JSON.stringify({
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Principal: { Federated: arn },
          Action: 'sts:AssumeRoleWithWebIdentity',
          Condition: {
            StringEquals: {
              [`${host}:sub`]: `system:serviceaccount:${namespace}:${serviceAccount}`,
              [`${host}:aud`]: 'sts.amazonaws.com',
            },
          },
        },
      ],
    });
  });
  const role = new aws.iam.Role(ctx.name(`${thing}-irsa`), { assumeRolePolicy: trust }, inRegion(ctx, parent));
  new aws.iam.RolePolicy(ctx.name(`${thing}-irsa`), { role: role.id, policy: args.policy }, inRegion(ctx, parent));
  return role;
}
