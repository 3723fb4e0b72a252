"""Reference data shipped with the simulators (the school calendar)."""
