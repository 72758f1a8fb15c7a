"""The langdetect scorer's words skip steps that cannot change a text (no "http", no "@", ASCII
text): the words are the ones every step in full gives."""

from __future__ import annotations

import random

from curate.lib.langid.langdetect_nb import LangdetectProfiles, _clean_latin

TEXTS = [
    "Write an e-mail to bob@example.com about https://example.com/page?x=1 today.",
    "Tiếng Việt có dấu: Việt Nam, người, được",  # precomposed
    "Vie\u0323\u0302t Nam with combining marks",  # decomposed Vietnamese
    "要在数据库中查询 JSONField 和 ForeignKey",  # non-Latin letters outnumber Latin
    "Привет, как дела? Hello!",
    "plain ASCII words, numbers 123 and punctuation!?",
    "mail@@ http:// www.example.org café naïve",
    "",
]


def every_step(profiles: LangdetectProfiles, text: str) -> list[str]:
    text = profiles.url_re.sub(" ", text)
    text = profiles.mail_re.sub(" ", text)
    text = profiles.normalize_vi(text)
    text = text.translate(profiles.table)
    return _clean_latin(text).split()


def test_words_equal_every_step_applied() -> None:
    profiles = LangdetectProfiles.shared()
    rng = random.Random(1)
    pieces = [w for t in TEXTS for w in t.split()]
    texts = TEXTS + [" ".join(rng.choice(pieces) for _ in range(8)) for _ in range(300)]
    for text in texts:
        assert profiles.words(text) == every_step(profiles, text), text
    assert profiles.words("mail me at bob@example.com") == ["mail", "me", "at"]
