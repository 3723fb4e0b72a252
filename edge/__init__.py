"""The edge agent: runs at each school, reads its Modbus devices, keeps every reading in a durable outbox
and publishes it to the city's MQTT broker."""

__version__ = "0.1.0"
