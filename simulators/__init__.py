"""Simulated school devices: a physical model of each school (PV, load, grid meter) on Modbus TCP and RTU."""
