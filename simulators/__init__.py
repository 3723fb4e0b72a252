"""Simulated school devices: a physical model of each school (PV, load, grid meter) served over Modbus TCP."""
