"""Domain logic: plain typed Python, no I/O, testable in microseconds and reused by the simulator."""
