"""Pyroscope's query API over Connect: ``querier.v1.QuerierService`` and
``settings.v1.SettingsService`` (what Grafana's Pyroscope data source and the Profiles
Drilldown app call), on the same query layer as the native routes."""
