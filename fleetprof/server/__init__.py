"""fleetprof HTTP server (issue 3): app factory, settings, auth, limits, routes, CLI."""
