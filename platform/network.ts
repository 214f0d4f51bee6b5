/**
 * Network of one region: a VPC with public subnets (NAT gateways, internet-facing load
 * balancer) and private subnets (nodes, pods, databases) across three availability zones;
 * and the peering that lets secondary regions reach the primary database.
 */
import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';
import { inRegion, type RegionContext } from './region.js';

export interface NetworkArgs {
  ctx: RegionContext;
  natGatewayPerAz: boolean;
}

/** Subnet CIDRs carved from a /16: private /19s at .0, .32, .64; public /22s at .96, .100, .104. */
export function subnetCidrs(vpcCidr: string, zones: number): { privateCidrs: string[]; publicCidrs: string[] } {
  const m = /^(\d+)\.(\d+)\.0\.0\/16$/.exec(vpcCidr);
  if (!m) throw new Error(`vpcCidr '${vpcCidr}' is not a /16`);
  const prefix = `${m[1]}.${m[2]}`;
  const range = [...Array(zones).keys()];
  return {
    privateCidrs: range.map((i) => `${prefix}.${i * 32}.0/19`),
    publicCidrs: range.map((i) => `${prefix}.${96 + i * 4}.0/22`),
  };
}

export class Network extends pulumi.ComponentResource {
  readonly vpcId: pulumi.Output<string>;
  readonly cidr: string;
  /** Where nodes and pods are (and the database, RDS Proxy, EKS endpoint ENIs). */
  readonly privateCidrs: string[];
  /** Where the NAT gateways and the internet-facing load balancer are. */
  readonly publicCidrs: string[];
  readonly privateSubnetIds: pulumi.Output<string>[];
  readonly publicSubnetIds: pulumi.Output<string>[];
  readonly privateRouteTableIds: pulumi.Output<string>[];

  constructor(name: string, args: NetworkArgs, opts?: pulumi.ComponentResourceOptions) {
    super('herald:platform:Network', name, {}, opts);
    const { ctx } = args;
    const o = (extra?: pulumi.CustomResourceOptions) => inRegion(ctx, this, extra);
    const zones = ctx.config.availabilityZones.slice(0, 3);
    const { privateCidrs, publicCidrs } = subnetCidrs(ctx.config.vpcCidr, zones.length);
    this.cidr = ctx.config.vpcCidr;
    this.privateCidrs = privateCidrs;
    this.publicCidrs = publicCidrs;

    const vpc = new aws.ec2.Vpc(
      ctx.name('vpc'),
      { cidrBlock: ctx.config.vpcCidr, enableDnsHostnames: true, enableDnsSupport: true, tags: { Name: ctx.name('vpc') } },
      o(),
    );
    const igw = new aws.ec2.InternetGateway(ctx.name('igw'), { vpcId: vpc.id, tags: { Name: ctx.name('igw') } }, o());
    const publicRoutes = new aws.ec2.RouteTable(
      ctx.name('public-rt'),
      { vpcId: vpc.id, routes: [{ cidrBlock: '0.0.0.0/0', gatewayId: igw.id }], tags: { Name: ctx.name('public-rt') } },
      o(),
    );

    const publicSubnets = zones.map((az, i) => {
      const subnet = new aws.ec2.Subnet(
        ctx.name(`public-${az}`),
        {
          vpcId: vpc.id,
          availabilityZone: az,
          cidrBlock: publicCidrs[i]!,
          mapPublicIpOnLaunch: false,
          tags: { Name: ctx.name(`public-${az}`), 'kubernetes.io/role/elb': '1', tier: 'public' },
        },
        o(),
      );
      new aws.ec2.RouteTableAssociation(ctx.name(`public-${az}`), { subnetId: subnet.id, routeTableId: publicRoutes.id }, o());
      return subnet;
    });

    const natCount = args.natGatewayPerAz ? zones.length : 1;
    const nats = zones.slice(0, natCount).map((az, i) => {
      const eip = new aws.ec2.Eip(ctx.name(`nat-${az}`), { domain: 'vpc', tags: { Name: ctx.name(`nat-${az}`) } }, o());
      return new aws.ec2.NatGateway(
        ctx.name(`nat-${az}`),
        { allocationId: eip.id, subnetId: publicSubnets[i]!.id, tags: { Name: ctx.name(`nat-${az}`) } },
        o({ dependsOn: [igw] }),
      );
    });

    const privateRouteTables: aws.ec2.RouteTable[] = [];
    const privateSubnets = zones.map((az, i) => {
      const subnet = new aws.ec2.Subnet(
        ctx.name(`private-${az}`),
        {
          vpcId: vpc.id,
          availabilityZone: az,
          cidrBlock: privateCidrs[i]!,
          tags: { Name: ctx.name(`private-${az}`), 'kubernetes.io/role/internal-elb': '1', tier: 'private' },
        },
        o(),
      );
      const nat = nats[i % natCount]!;
      const rt = new aws.ec2.RouteTable(
        ctx.name(`private-rt-${az}`),
        { vpcId: vpc.id, routes: [{ cidrBlock: '0.0.0.0/0', natGatewayId: nat.id }], tags: { Name: ctx.name(`private-rt-${az}`) } },
        o(),
      );
      privateRouteTables.push(rt);
      new aws.ec2.RouteTableAssociation(ctx.name(`private-${az}`), { subnetId: subnet.id, routeTableId: rt.id }, o());
      return subnet;
    });

    this.vpcId = vpc.id;
    this.publicSubnetIds = publicSubnets.map((s) => s.id);
    this.privateSubnetIds = privateSubnets.map((s) => s.id);
    this.privateRouteTableIds = privateRouteTables.map((rt) => rt.id);
    this.registerOutputs({ vpcId: this.vpcId });
  }
}

export interface PeeringArgs {
  primary: { ctx: RegionContext; network: Network };
  secondary: { ctx: RegionContext; network: Network };
}

/**
 * Cross-region VPC peering primary <-> secondary, with routes in every private route
 * table and DNS resolution across it, so standby workers reach the primary database.
 */
export class RegionPeering extends pulumi.ComponentResource {
  readonly peeringId: pulumi.Output<string>;

  constructor(name: string, args: PeeringArgs, opts?: pulumi.ComponentResourceOptions) {
    super('herald:platform:RegionPeering', name, {}, opts);
    const { primary, secondary } = args;
    const thing = `peering-${secondary.ctx.region}`;
    const request = new aws.ec2.VpcPeeringConnection(
      primary.ctx.name(thing),
      {
        vpcId: primary.network.vpcId,
        peerVpcId: secondary.network.vpcId,
        peerRegion: secondary.ctx.region,
        autoAccept: false,
        tags: { Name: primary.ctx.name(thing) },
      },
      inRegion(primary.ctx, this),
    );
    const accept = new aws.ec2.VpcPeeringConnectionAccepter(
      secondary.ctx.name(`peering-${primary.ctx.region}`),
      { vpcPeeringConnectionId: request.id, autoAccept: true, tags: { Name: secondary.ctx.name(`peering-${primary.ctx.region}`) } },
      inRegion(secondary.ctx, this),
    );
    new aws.ec2.PeeringConnectionOptions(
      primary.ctx.name(`${thing}-dns`),
      { vpcPeeringConnectionId: accept.id, requester: { allowRemoteVpcDnsResolution: true } },
      inRegion(primary.ctx, this),
    );
    new aws.ec2.PeeringConnectionOptions(
      secondary.ctx.name(`peering-${primary.ctx.region}-dns`),
      { vpcPeeringConnectionId: accept.id, accepter: { allowRemoteVpcDnsResolution: true } },
      inRegion(secondary.ctx, this),
    );
    const routes = (side: typeof primary, other: typeof primary): void => {
      side.network.privateRouteTableIds.forEach((rt, i) => {
        new aws.ec2.Route(
          side.ctx.name(`to-${other.ctx.region}-${i}`),
          { routeTableId: rt, destinationCidrBlock: other.network.cidr, vpcPeeringConnectionId: accept.id },
          inRegion(side.ctx, this),
        );
      });
    };
    routes(primary, secondary);
    routes(secondary, primary);
    this.peeringId = accept.id;
    this.registerOutputs({ peeringId: this.peeringId });
  }
}
