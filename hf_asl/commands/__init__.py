"""One module per `hf-asl` subcommand; each exposes `register(subparsers)`.

Command modules import heavy libraries (torch, faiss, datasets) inside their `run` function so
that `hf-asl --help` and light commands start fast.
"""
