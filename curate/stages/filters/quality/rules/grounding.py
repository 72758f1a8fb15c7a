"""What a record says about media or a page it does not contain: the words of its addresses, file
names and placeholders. Two context rules use this to tell a record that needs the unseen content
from one whose answer the record already carries:

- an answer read off the record's own text: ``…/Flag_of_Denmark.svg`` → "This is the flag of
  Denmark."; ``bbc.com/news/business-54516605`` → "business";
- a well-known work of art named by its file name or slug (``Liberty_Leading_the_People``,
  ``picasso-girl-before-a-mirror``): what it shows is general knowledge, as for a Wikipedia page.

Both run in Python over the few rows a rule already rejects, never over a whole batch.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import unquote

import pyarrow as pa

from curate.stages.filters.quality.rules import true_where

_WORD = re.compile(r"[a-z]{3,}")
_NUMBER = re.compile(r"\d+")
# An answer that is itself an address or an image ("![Edited](https://…)") is not read off one.
_ADDRESS = re.compile(r"https?://|www\.|!\[")
# Words that carry no subject: function words, and the parts every address or placeholder has.
_NOT_SUBJECT_WORDS = """
    the and for with from this that these those are was were has have had its it's into onto
    about than then there their they them his her our your you not but can will would could
    should may also very more most some any all one two three which what who whom whose when
    where why how given following below above here just only such each other both being been
    does did done http https www com org net edu gov html htm php asp aspx jpg jpeg png gif svg
    webp bmp pdf mp3 wav mp4 mov upload uploads wiki wikipedia wikimedia commons thumb files
    file image images img photo photos photograph picture pic painting drawing figure alt text
    attached attachment media static content assets cdn px auto format fit crop compress
"""
_NOT_SUBJECT = frozenset(_NOT_SUBJECT_WORDS.split())
# An answer longer than this is an account of the media, not a label read off an address.
ANSWER_MAX_WORDS = 25
# At least this share of the answer's own words (those the instruction does not already give) must
# appear in the record's text about the media.
ANSWER_MIN_SHARE = 0.5


def subject_words(text: str) -> set[str]:
    """Lower-case words (three letters or more) of ``text``, addresses decoded (``%2C`` → ``,``)
    and split at ``_``, ``-``, ``/``; words every address or placeholder has are left out."""
    return set(_WORD.findall(unquote(text).lower())) - _NOT_SUBJECT


def answer_in_text(output: str, source: str, instruction: str) -> bool:
    """Whether a short ``output`` is read off ``source`` (the record's addresses, file names and
    placeholders): most of its own words, those ``instruction`` does not give, are in it, and it
    states no number ``source`` lacks and is not itself an address. An answer made only of the
    instruction's words (one of its options) counts when ``source`` names all of them."""
    if len(output.split()) > ANSWER_MAX_WORDS or _ADDRESS.search(output):
        return False
    # A number the record does not give is a fact from the unseen page ("over 200,000 cases").
    if set(_NUMBER.findall(output)) - set(_NUMBER.findall(unquote(source))):
        return False
    asked = subject_words(instruction)
    said = subject_words(output)
    own = said - asked
    if not own:
        # The answer is among the instruction's options, and the record's text picks it
        # ("Classify the photo as a car, animal or flower." + "Attached photo of a car" → "Car").
        return bool(said) and said <= subject_words(source)
    found = own & (subject_words(source) - asked)
    return bool(found) and len(found) / len(own) >= ANSWER_MIN_SHARE


# Painters whose works are general knowledge, by the words of their names as file names and URL
# slugs spell them. A name alone ("Edgar_Degas_059") does not name a work; a name with words of a
# title ("Piet_Mondrian,_1921,_Tableau_I") does.
_PAINTER_NAMES = """
    leonardo da vinci, michelangelo buonarroti, raphael sanzio, sandro botticelli, titian
    vecellio, caravaggio merisi, peter paul rubens, rembrandt van rijn, johannes jan vermeer,
    diego velazquez, francisco goya, hieronymus bosch, pieter bruegel brueghel, albrecht durer,
    jan van eyck, hans holbein, frans hals, el greco, nicolas poussin, jacques louis david,
    eugene delacroix, theodore gericault, william turner, john constable, caspar david
    friedrich, gustave courbet, edouard manet, claude monet, edgar degas, pierre auguste renoir,
    camille pissarro, alfred sisley, berthe morisot, mary cassatt, paul cezanne, paul gauguin,
    vincent van gogh, georges seurat, henri toulouse lautrec, henri rousseau, gustav klimt, egon
    schiele, edvard munch, henri matisse, pablo picasso, georges braque, wassily kandinsky, paul
    klee, piet mondrian, kazimir malevich, marc chagall, amedeo modigliani, salvador dali, rene
    magritte, joan miro, frida kahlo, diego rivera, georgia okeeffe, edward hopper, grant wood,
    andrew wyeth, jackson pollock, mark rothko, willem de kooning, andy warhol, roy
    lichtenstein, jean michel basquiat, keith haring, david hockney, katsushika hokusai, utagawa
    hiroshige, james abbott mcneill whistler, john singer sargent, winslow homer, jan steen,
    johannes vermeer
"""
PAINTERS: tuple[str, ...] = tuple(name.strip() for name in _PAINTER_NAMES.split(","))
# The surname-like word that identifies each painter in a slug ("gogh", "mondrian").
_PAINTER_KEYS = frozenset(
    word for name in PAINTERS for word in [name.split()[-1]] if word not in {"greco", "wood"}
) | {"greco", "leonardo", "michelangelo", "raphael", "caravaggio", "titian", "rembrandt"}
_PAINTER_NAME_WORDS = frozenset(word for name in PAINTERS for word in name.split())


def names_artwork(source: str) -> bool:
    """Whether ``source`` (a file name or URL) names a well-known painter and words of a title."""
    words = subject_words(source)
    if not words & _PAINTER_KEYS:
        return False
    return bool(words - _PAINTER_NAME_WORDS)


def rows_where(candidates: pa.Array, test: Callable[..., bool], *columns: pa.Array) -> pa.Array:
    """A boolean array: ``test(*values)`` (Python values, null as "") on the rows where
    ``candidates`` is true, false elsewhere."""

    def test_rows(*taken: pa.Array) -> pa.Array:
        rows = zip(*(column.to_pylist() for column in taken), strict=True)
        return pa.array([test(*(value or "" for value in row)) for row in rows], pa.bool_())

    return true_where(candidates, test_rows, *columns)
