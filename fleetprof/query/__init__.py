"""Query path: selectors, segment lookup through the index, vectorised merge."""

from fleetprof.query.select import (
    label_names,
    label_values,
    profile_types,
    select_merge,
    select_timeline,
    services,
)
from fleetprof.query.selector import Matcher, SelectorError, parse_matchers, parse_query

__all__ = [
    "Matcher", "SelectorError", "label_names", "label_values", "parse_matchers", "parse_query", "profile_types",
    "select_merge", "select_timeline", "services",
]
