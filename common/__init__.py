"""What every part of lokalnie shares: the wire contract, the clock, the site files and logging."""
