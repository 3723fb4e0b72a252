"""The time-series sink: raw readings, interval energies and counter corrections written as InfluxDB line
protocol to a time-series database (InfluxDB 2.x and 3, 1.8+, VictoriaMetrics), through a durable outbox in
the relational store."""
