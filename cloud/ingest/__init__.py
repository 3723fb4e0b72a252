"""The ingest: telemetry, health events and status from the broker into the relational store (with interval
energies and counter corrections) and, when configured, into the time-series database; docs/ingest.md."""
