"""Planning: safety checks, pump settings, the next-course forecast and the main simulation job."""
