"""Network layer: VPC, public/private/isolated subnets per AZ, IGW, NAT, routes,
gateway + optional interface endpoints, VPC flow logs.

Contract: ``nat_per_az`` creates one NAT gateway per AZ and a private route table per AZ
(each private subnet egresses through the NAT in its own AZ); otherwise one NAT gateway in
the first AZ serves all private subnets. Isolated subnets have no internet route at all.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.common import encrypted_log_group, policy_document, service_role
from components.tags import tags

INTERFACE_ENDPOINT_SERVICES: tuple[str, ...] = ("ecr.api", "ecr.dkr", "logs", "ssm", "ssmmessages", "ec2messages", "sts")


@dataclass
class NetworkArgs:
    """Inputs of :class:`Network`."""

    tags: dict[str, str]
    region: str
    vpc_cidr: str
    az_count: int
    nat_per_az: bool
    interface_endpoints: bool
    flow_log_retention_days: int
    kms_key_arn: pulumi.Input[str]
    extra_interface_services: tuple[str, ...] = ()
    """Services needed only by some configurations (``xray`` for the collector sidecar): they get
    an interface endpoint with the others where ``interface_endpoints`` is on."""


def subnet_cidrs(vpc_cidr: str, az_count: int) -> dict[str, list[str]]:
    """Split the VPC into /20s (or 4 bits smaller than the VPC): public, private, isolated.

    Tier ``t`` in AZ ``i`` gets block ``4 * t + i`` so each tier is contiguous.
    """
    net = ipaddress.ip_network(vpc_cidr)
    blocks = list(net.subnets(prefixlen_diff=4))
    tiers = ("public", "private", "isolated")
    return {tier: [str(blocks[4 * t + i]) for i in range(az_count)] for t, tier in enumerate(tiers)}


class Network(pulumi.ComponentResource):
    """A three-tier VPC spanning ``az_count`` availability zones."""

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("fleetprof:network:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        zones = aws.get_availability_zones(state="available", opts=pulumi.InvokeOptions(parent=self))
        self.azs: list[str] = list(zones.names[: args.az_count])
        cidrs = subnet_cidrs(args.vpc_cidr, args.az_count)

        self.vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.vpc_cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags=tags(args.tags, f"{name}-vpc"),
            opts=child,
        )
        self.igw = aws.ec2.InternetGateway(
            f"{name}-igw", vpc_id=self.vpc.id, tags=tags(args.tags, f"{name}-igw"), opts=child
        )

        self.public_subnets: list[aws.ec2.Subnet] = []
        self.private_subnets: list[aws.ec2.Subnet] = []
        self.isolated_subnets: list[aws.ec2.Subnet] = []
        for tier, out in (
            ("public", self.public_subnets),
            ("private", self.private_subnets),
            ("isolated", self.isolated_subnets),
        ):
            for i, az in enumerate(self.azs):
                sname = f"{name}-{tier}-{az}"
                out.append(
                    aws.ec2.Subnet(
                        sname,
                        vpc_id=self.vpc.id,
                        cidr_block=cidrs[tier][i],
                        availability_zone=az,
                        map_public_ip_on_launch=False,
                        tags=tags(args.tags, sname, Tier=tier),
                        opts=child,
                    )
                )

        def route_table(tier: str, suffix: str, routes: list[dict] | None = None) -> aws.ec2.RouteTable:
            """Route table ``<name>-<tier>-rt<suffix>`` tagged with its tier."""
            rt_name = f"{name}-{tier}-rt{suffix}"
            return aws.ec2.RouteTable(rt_name, vpc_id=self.vpc.id, routes=routes, tags=tags(args.tags, rt_name, Tier=tier), opts=child)

        def associate(tier: str, az: str, subnet: aws.ec2.Subnet, rt: aws.ec2.RouteTable) -> None:
            aws.ec2.RouteTableAssociation(f"{name}-{tier}-rta-{az}", subnet_id=subnet.id, route_table_id=rt.id, opts=child)

        public_rt = route_table("public", "", [{"cidr_block": "0.0.0.0/0", "gateway_id": self.igw.id}])
        for subnet, az in zip(self.public_subnets, self.azs, strict=True):
            associate("public", az, subnet, public_rt)

        nat_azs = self.azs if args.nat_per_az else self.azs[:1]
        self.nat_gateways: list[aws.ec2.NatGateway] = []
        for i, az in enumerate(nat_azs):
            eip = aws.ec2.Eip(f"{name}-nat-eip-{az}", domain="vpc", tags=tags(args.tags, f"{name}-nat-eip-{az}"), opts=child)
            self.nat_gateways.append(
                aws.ec2.NatGateway(
                    f"{name}-nat-{az}",
                    allocation_id=eip.id,
                    subnet_id=self.public_subnets[i].id,
                    connectivity_type="public",
                    tags=tags(args.tags, f"{name}-nat-{az}"),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[self.igw]),
                )
            )

        self.private_route_tables: list[aws.ec2.RouteTable] = []
        for i, (subnet, az) in enumerate(zip(self.private_subnets, self.azs, strict=True)):
            nat = self.nat_gateways[i if args.nat_per_az else 0]
            rt = route_table("private", f"-{az}", [{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat.id}])
            associate("private", az, subnet, rt)
            self.private_route_tables.append(rt)

        isolated_rt = route_table("isolated", "")
        for subnet, az in zip(self.isolated_subnets, self.azs, strict=True):
            associate("isolated", az, subnet, isolated_rt)

        def endpoint(service: str, endpoint_type: str, **placement: object) -> aws.ec2.VpcEndpoint:
            """VPC endpoint ``<name>-<service slug>-endpoint`` for the regional ``service``."""
            ep_name = f"{name}-{service.replace('.', '-')}-endpoint"
            return aws.ec2.VpcEndpoint(
                ep_name,
                vpc_id=self.vpc.id,
                service_name=f"com.amazonaws.{args.region}.{service}",
                vpc_endpoint_type=endpoint_type,
                tags=tags(args.tags, ep_name),
                opts=child,
                **placement,
            )

        gateway_rts = [rt.id for rt in self.private_route_tables] + [isolated_rt.id]
        for service in ("s3", "dynamodb"):
            endpoint(service, "Gateway", route_table_ids=gateway_rts)

        if args.interface_endpoints:
            endpoint_sg = aws.ec2.SecurityGroup(
                f"{name}-endpoints-sg",
                vpc_id=self.vpc.id,
                description="Interface endpoints: HTTPS from inside the VPC",
                ingress=[{"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": [args.vpc_cidr], "description": "HTTPS from VPC"}],
                egress=[{"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": [args.vpc_cidr], "description": "HTTPS within VPC"}],
                tags=tags(args.tags, f"{name}-endpoints-sg"),
                opts=child,
            )
            for service in INTERFACE_ENDPOINT_SERVICES + args.extra_interface_services:
                endpoint(
                    service,
                    "Interface",
                    private_dns_enabled=True,
                    subnet_ids=[s.id for s in self.private_subnets],
                    security_group_ids=[endpoint_sg.id],
                )

        self.flow_log_group = encrypted_log_group(
            f"{name}-flow-logs", args.flow_log_retention_days, args.kms_key_arn, args.tags, child
        )
        flow_role = service_role(f"{name}-flow-logs-role", "vpc-flow-logs.amazonaws.com", args.tags, child)
        aws.iam.RolePolicy(
            f"{name}-flow-logs-policy",
            role=flow_role.id,
            policy=self.flow_log_group.arn.apply(
                lambda arn: policy_document(
                    [
                        {
                            "Effect": "Allow",
                            "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                            "Resource": [arn, f"{arn}:*"],
                        }
                    ]
                )
            ),
            opts=child,
        )
        aws.ec2.FlowLog(
            f"{name}-flow-log",
            vpc_id=self.vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=self.flow_log_group.arn,
            iam_role_arn=flow_role.arn,
            max_aggregation_interval=60,
            tags=tags(args.tags, f"{name}-flow-log"),
            opts=child,
        )

        self.register_outputs(
            {
                "vpcId": self.vpc.id,
                "publicSubnetIds": [s.id for s in self.public_subnets],
                "privateSubnetIds": [s.id for s in self.private_subnets],
                "isolatedSubnetIds": [s.id for s in self.isolated_subnets],
                "natGatewayIds": [n.id for n in self.nat_gateways],
            }
        )
