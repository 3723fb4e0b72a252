"""The city's MQTT broker: its certificate authority, the users and passwords of the schools and services, the
access control list generated from the site files, and the `lokalnie broker ...` commands that write them.

Everything here writes files for Mosquitto and for the schools' Raspberry Pis into a secrets directory that
lives outside the repository; `docs/deploy.md` explains the security model and the layout.
"""
