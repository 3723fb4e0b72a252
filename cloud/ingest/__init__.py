"""The ingest: telemetry from the broker into the relational store, with interval energies."""
