"""Where traffic from a subnet goes, as the VPC router decides: route tables, the internet
gateway, NAT gateways, gateway endpoints (S3, DynamoDB) and interface endpoints with
private DNS.

Contract: a subnet uses the route table associated with it (a subnet without an
association uses the VPC's main table, which this program never gives routes: local
only). Traffic to the internet leaves through the table's default route: an internet
gateway works only for an ENI with a public address; a NAT gateway works when its own
subnet routes to an internet gateway. Private DNS of an interface endpoint needs the VPC's
DNS support and DNS hostnames.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.aws_model.graph import Graph, as_list
from components.mockrun import MockResource

T_SUBNET = "aws:ec2/subnet:Subnet"
T_VPC = "aws:ec2/vpc:Vpc"
T_RT = "aws:ec2/routeTable:RouteTable"
T_ROUTE = "aws:ec2/route:Route"
T_RTA = "aws:ec2/routeTableAssociation:RouteTableAssociation"
T_NAT = "aws:ec2/natGateway:NatGateway"
T_IGW = "aws:ec2/internetGateway:InternetGateway"
T_ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"

DEFAULT_ROUTE = "0.0.0.0/0"


@dataclass(frozen=True)
class Hop:
    """How one subnet reaches a destination: ``via`` names the gateway/endpoint, or
    ``blocked`` says why it cannot."""

    via: str = ""
    blocked: str = ""
    endpoint: MockResource | None = None


class Router:
    """Route lookups over one graph."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self._table_of = {
            a.inputs["subnetId"]: a.inputs["routeTableId"]
            for a in graph.of_type(T_RTA)
            if a.inputs.get("subnetId")
        }

    def subnet(self, subnet_id: str) -> MockResource | None:
        found = self.graph.ref(subnet_id)
        return found if found is not None and found.type == T_SUBNET else None

    def cidr(self, subnet_id: str) -> str | None:
        s = self.subnet(subnet_id)
        return s.inputs.get("cidrBlock") if s else None

    def table(self, subnet_id: str) -> str | None:
        """Route table id of a subnet (None: the VPC's main table, local routes only)."""
        return self._table_of.get(subnet_id)

    def routes(self, table_id: str | None) -> list[dict]:
        """Inline routes of the table plus standalone ``aws:ec2/route:Route`` resources."""
        if table_id is None:
            return []
        table = self.graph.ref(table_id)
        inline = as_list(table.inputs.get("routes")) if table is not None else []
        standalone = [
            {**r.inputs, "cidrBlock": r.inputs.get("destinationCidrBlock")}
            for r in self.graph.of_type(T_ROUTE)
            if r.inputs.get("routeTableId") == table_id
        ]
        return inline + standalone

    def default_target(self, subnet_id: str) -> tuple[str, str] | None:
        """(kind, id) of the subnet's default route: ``igw`` or ``nat`` (None: none)."""
        for route in self.routes(self.table(subnet_id)):
            if route.get("cidrBlock") != DEFAULT_ROUTE:
                continue
            if route.get("natGatewayId"):
                return "nat", route["natGatewayId"]
            if str(route.get("gatewayId", "")).startswith("igw-"):
                return "igw", route["gatewayId"]
        return None

    def _live(self, kind: str, ident: str) -> bool:
        found = self.graph.ref(ident)
        return found is not None and found.type == (T_IGW if kind == "igw" else T_NAT)

    def internet(self, subnet_id: str, public_ip: bool) -> Hop:
        """How an ENI in ``subnet_id`` (with or without a public address) reaches the internet."""
        target = self.default_target(subnet_id)
        if target is None:
            return Hop(blocked=f"subnet {self.name(subnet_id)} has no default route")
        kind, ident = target
        subnet = self.name(subnet_id)
        if not self._live(kind, ident):
            return Hop(
                blocked=f"subnet {subnet} routes to {ident}, which this stack does not create"
            )
        if kind == "igw":
            if public_ip:
                return Hop(via="internet gateway")
            return Hop(
                blocked=f"subnet {subnet} routes to the internet gateway; the ENI has no public IP"
            )
        nat = self.graph.ref(ident)
        if nat.inputs.get("connectivityType", "public") != "public" or not nat.inputs.get(
            "allocationId"
        ):
            return Hop(blocked=f"NAT gateway {nat.name} has no public (Elastic IP) address")
        upstream = self.default_target(nat.inputs["subnetId"])
        if upstream is None or upstream[0] != "igw" or not self._live(*upstream):
            where = self.name(nat.inputs["subnetId"])
            return Hop(
                blocked=f"NAT gateway {nat.name}: its subnet {where} has no route to an internet gateway"
            )
        return Hop(via=f"NAT gateway {nat.name}")

    def gateway_endpoint(self, subnet_id: str, service: str) -> MockResource | None:
        """The gateway endpoint of ``service`` (``s3``, ``dynamodb``) on the subnet's table."""
        table = self.table(subnet_id)
        for ep in self.graph.of_type(T_ENDPOINT):
            if ep.inputs.get("vpcEndpointType") == "Gateway" and ep.inputs.get(
                "serviceName", ""
            ).endswith(f".{service}"):
                if table is not None and table in as_list(ep.inputs.get("routeTableIds")):
                    return ep
        return None

    def interface_endpoint(self, vpc_id: str, service: str) -> MockResource | None:
        """The interface endpoint whose private DNS answers for ``service`` in the VPC."""
        vpc = self.graph.ref(vpc_id)
        if vpc is None or not (
            vpc.inputs.get("enableDnsSupport", True) and vpc.inputs.get("enableDnsHostnames")
        ):
            return None
        for ep in self.graph.of_type(T_ENDPOINT):
            if (
                ep.inputs.get("vpcEndpointType") == "Interface"
                and ep.inputs.get("vpcId") == vpc_id
                and ep.inputs.get("privateDnsEnabled") is True
                and ep.inputs.get("serviceName", "").endswith(f".{service}")
            ):
                return ep
        return None

    def vpc_of(self, subnet_id: str) -> str | None:
        s = self.subnet(subnet_id)
        return s.inputs.get("vpcId") if s else None

    def name(self, subnet_id: str) -> str:
        s = self.subnet(subnet_id)
        return s.name if s else subnet_id
