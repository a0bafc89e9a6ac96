"""Token counting, prices and the meter that records every model call."""
