"""CLI command groups; each module exposes register(subparsers) and handler functions."""
