"""fleetprof HTTP server: app factory, settings, auth, limits, routes, CLI."""
