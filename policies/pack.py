"""Adapters from :mod:`policies.rules` to ``pulumi_policy`` policies (all mandatory)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from policies.classes import class_config, stack_of_urn
from policies.rules import RULES, Res, Rule

PACK_NAME = "fleetprof-aws"


def _config(rule: Rule, given: Mapping[str, Any], urn: str) -> dict[str, Any]:
    """Strict defaults, then the given policy config, then the requirements of the class of
    the stack named in ``urn`` (which the given config cannot relax)."""
    given = {k: v for k, v in given.items() if k != "enforcementLevel"}
    return {**rule.defaults(), **given, **class_config(stack_of_urn(urn)).get(rule.name, {})}


def _policy_fields(rule: Rule) -> dict[str, Any]:
    """The arguments every policy of a rule shares: name, description, mandatory level, config schema."""
    return {
        "name": rule.name,
        "description": rule.description,
        "enforcement_level": EnforcementLevel.MANDATORY,
        "config_schema": PolicyConfigSchema(properties=dict(rule.config_schema)) if rule.config_schema else None,
    }


def _resource_policy(rule: Rule) -> ResourceValidationPolicy:
    check = rule.resource_check
    assert check is not None

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for message in check(args.resource_type, args.props, _config(rule, args.get_config(), args.urn)):
            report_violation(message)

    return ResourceValidationPolicy(validate=validate, **_policy_fields(rule))


def _stack_policy(rule: Rule) -> StackValidationPolicy:
    check = rule.stack_check
    assert check is not None

    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [
            Res(
                type=r.resource_type,
                name=r.name,
                urn=r.urn,
                props=r.props,
                deps={k: [d.urn for d in v] for k, v in r.property_dependencies.items()},
            )
            for r in args.resources
        ]
        stack_urn = resources[0].urn if resources else ""
        for urn, message in check(resources, _config(rule, args.get_config(), stack_urn)):
            report_violation(message, urn)

    return StackValidationPolicy(validate=validate, **_policy_fields(rule))


def build_policies() -> list:
    """One pulumi_policy policy per rule, in rule order."""
    return [_resource_policy(r) if r.resource_check else _stack_policy(r) for r in RULES]
