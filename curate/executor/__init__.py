"""Executors own parallelism, batching, checkpoints and paths; stages know none of that."""
