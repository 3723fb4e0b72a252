"""Simulated school devices: a physical model of each school (PV, load, grid meter) over Modbus TCP and RTU."""
