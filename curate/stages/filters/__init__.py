"""Filters built for instruction data: ``quality``, ``language`` and ``decontaminate``."""
