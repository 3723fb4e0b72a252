"""Tests of the cloud: counters, store, ingest, API and command line."""
