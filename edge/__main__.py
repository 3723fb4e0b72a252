"""``python -m edge``: the edge agent's commands without the other roles' imports.

On a school's Raspberry Pi the agent shares the memory with the kiosk's browser; ``lokalnie edge ...`` loads
every role installed beside it, ``python -m edge ...`` only the agent (firmware-config/pi/ runs it so).
"""

from edge.cli import app

app(prog_name="python -m edge")
