"""Compare profiles: the CI regression gate (:mod:`fleetprof.compare.regress`)."""

from fleetprof.compare.regress import RegressReport, function_shares, regress

__all__ = ["RegressReport", "function_shares", "regress"]
