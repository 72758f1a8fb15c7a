"""The commonest short words of some Latin-script languages, for a second opinion on a short
request the detector leans on but cannot prove ("Une requête contient des paramètres" → French,
by "une" and "des"; "Calculate 7 times 5." → no French word at all).

Each list leaves out words that are also English words or common English abbreviations ("a",
"in", "die", "was", "son", "pour", "do", "no", "to", "as", "un", "com", "mit", "van", "per"), so
that an English request is not counted for another language; the
English list holds function words and the verbs requests start with. Lists are lower case; a text
is matched by its lower-cased words.
"""

from __future__ import annotations

import re

FUNCTION_WORDS: dict[str, frozenset[str]] = {
    lang: frozenset(words.split())
    for lang, words in {
        "en": "the of and to is are was were for with that this what how why who which does you "
        "your it be can will my from at by or an if have has should would could there their they "
        "we our about into when where give write list describe explain create generate find make "
        "tell name identify provide suggest",
        "es": "de el los las del una con por para que es está están como pero sobre entre muy más "
        "esta este estos se su sus y en ser",
        "fr": "de le la les des du une et est sont dans sur avec pas ne qui que ce cette ces au aux "
        "en se sa leur vous nous il elle être ou été",
        "de": "der das und ist sind nicht für auf ein eine einen dem zu wird wurde werden oder "
        "sein muss kann auch sich ich ihr wir sie es zum zur bei nach wie über noch nur dass",
        "pt": "de da das uma em na para por que não é ou se mais ao pelo pela seu sua ser está são",
        "it": "il gli le di del della dei delle che è sono anche più nel nella alla da questo "
        "questa",
        "nl": "de het een en ik je niet dat te met voor zijn maar om ook bij nog wordt worden "
        "deze naar uit",
        "ro": "și în de la pe cu este sunt care nu mai pentru se să lui cel",
        "ca": "el la els les de del que amb una és són en es als dels aquest",
        "sv": "och att det som en är på för av inte har jag du om ett",
        "da": "og det som en på af ikke har jeg du om et",
        "no": "og det som en på av ikke har jeg du om et",
        "pl": "w z na się nie jest że jak dla od po przez są czy",
        "tr": "ve bir bu için ile da de çok daha olarak olan gibi ne mi",
        "id": "yang di ke dari ini itu dengan untuk tidak adalah akan pada dalam juga atau saya "
        "anda",
        "tl": "ang ng mga sa na ay ito si ko mo niya",
        "af": "en nie het vir te dat wat",
    }.items()
}
# A word standing alone: not a part of an identifier ("order_by", "model_name") or a number.
_WORDS = re.compile(r"(?<!\w)[^\W\d_]+(?:['’][^\W\d_]+)?(?!\w)")
# Fewer distinct words of a language than this are a name or a loan ("La Niña"), not its grammar.
MIN_DISTINCT = 2


def words_of(text: str, lang: str) -> set[str]:
    """The distinct words of ``text`` on ``lang``'s list (empty when there is no list)."""
    listed = FUNCTION_WORDS.get(lang)
    if not listed:
        return set()
    return {word for word in _WORDS.findall(text.lower()) if word in listed}


def speaks_outside(text: str, kept: set[str]) -> bool:
    """Whether ``text`` uses the grammar words of a listed language outside ``kept`` (at least
    ``MIN_DISTINCT`` distinct ones) and none of a kept language's. False when a kept language has
    no list."""
    if not kept or any(k not in FUNCTION_WORDS for k in kept):
        return False
    if any(words_of(text, k) for k in kept):
        return False
    return any(
        len(words_of(text, lang)) >= MIN_DISTINCT for lang in FUNCTION_WORDS if lang not in kept
    )
