"""Direct flame-graph paths that skip the canonical profile model when it adds nothing:
plain folded bytes → pruned call tree (:mod:`fleetprof.flame.folded_tree`) → SVG."""
