"""Modbus for the edge agent, in layers: `decode` (registers to values), `profiles` (device register maps
as data), `plan` (which requests a poll needs), `link` (the transport to one device)."""
