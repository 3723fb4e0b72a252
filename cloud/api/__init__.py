"""The cloud's HTTP API: the schools, their live readings and their 15-minute energies."""
