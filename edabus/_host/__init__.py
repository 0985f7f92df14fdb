"""What a program runs: apps, the node that hosts them, and connect()."""
