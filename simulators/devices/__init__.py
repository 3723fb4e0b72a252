"""Simulated Modbus devices of a school: register images built from the school model at request time."""
