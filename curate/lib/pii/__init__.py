"""Personal data and secrets: detectors (:mod:`.detectors`) and span scanning and redaction
(:mod:`.scanner`), used by the ``pii`` stage."""
