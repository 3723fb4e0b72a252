#!/bin/bash
# Runs once, on InfluxDB's first start (an empty volume), after the image has created the organisation, the
# bucket and the admin token from DOCKER_INFLUXDB_INIT_*; the influx CLI is already logged in as the admin.
#
# 1. The InfluxQL (v1) mapping the dashboards query: database $INFLUXDB_V1_DATABASE, retention policy
#    "autogen" -> the bucket.
# 2. Grafana's login for InfluxQL: a v1 user that may only read the bucket.
set -euo pipefail

influx v1 dbrp create \
  --org "${DOCKER_INFLUXDB_INIT_ORG}" \
  --bucket-id "${DOCKER_INFLUXDB_INIT_BUCKET_ID}" \
  --db "${INFLUXDB_V1_DATABASE}" \
  --rp autogen \
  --default

influx v1 auth create \
  --org "${DOCKER_INFLUXDB_INIT_ORG}" \
  --username "${INFLUXDB_GRAFANA_USER}" \
  --password "${INFLUXDB_GRAFANA_PASSWORD}" \
  --read-bucket "${DOCKER_INFLUXDB_INIT_BUCKET_ID}" \
  --description "Grafana, InfluxQL, read only"
