"""Missing context: an input that is only a URL, or a reference to an image/file/audio the record lacks."""

from __future__ import annotations

from typing import ClassVar

import pyarrow.compute as pc
from pydantic import Field

from curate.stages.filters.quality.rules import (
    Rule,
    RuleParams,
    RuleResult,
    TextView,
    clip,
    detail_where,
    first_match,
)

_URL_ONLY = r"(?i)^\s*<?(https?://|www\.)\S+>?\s*$"
_MEDIA = r"(?:image|picture|photo|photograph|pic|painting|drawing|screenshot|video|audio|recording|sound ?clip|file|attachment|document|pdf|spreadsheet|chart|graph|diagram|figure|map|logo)s?"
_VISUAL = r"(?:image|picture|photo|photograph|pic|painting|drawing|screenshot|video|audio|recording|sound ?clip|figure)s?"

# Placeholders that stand for a missing attachment, wherever they appear in instruction or input.
_ATTACHMENT_MARKERS = [
    # <Picture Attached>, <image>, <image of a chart showing a trend>, <audio file>, <img src=...>
    rf"<\s*(?:{_VISUAL}|img|attachment)\b[^>]{{0,80}}>",
    # [Image], [Attached photo], [insert image here]
    rf"\[\s*(?:(?:insert|attached|attach|see)\s+)?(?:{_VISUAL}|attachment)(?:\s+(?:here|attached|below|above))?\s*\]",
    # Markdown images: ![alt](url)
    r"!\[[^\]]*\]\([^)]*\)",
    # "attached photo", "image attached", "see the attached file"
    rf"\battached\s+{_MEDIA}\b",
    rf"\b{_MEDIA}\s+(?:is\s+)?attached\b",
    # A bare media link: https://…/cat.jpg
    r"\bhttps?://\S+\.(?:png|jpe?g|gif|bmp|webp|svg|mp3|wav|ogg|mp4|mov|avi|pdf)\b",
]
# An instruction that talks about "the photo"/"this image" while the input is empty or a stub.
# The media noun is lower case (not a title: "The Picture of Dorian Gray") and must end the phrase:
# "the video gaming industry" or "the photo of a cat" are topics, not references. (RE2 has no
# look-ahead, so the words that may follow are listed.)
_VISUAL_LOWER = r"(?:image|picture|photo|photograph|pic|painting|drawing|screenshot|video|audio|recording|sound clip)s?"
_REF_END = r"(?:\s*(?:[.,;:?!)]|$)|\s+(?:and|to|below|above|provided|attached|here|shown|that|which|in|into|with|for|as|from|you|is|are|has|shows|depicts|contains)\b)"
_INSTRUCTION_REF = rf"\b(?i:the|this|these|following|given|provided|attached|above|below|uploaded)\s+(?:[a-z]+\s+)?{_VISUAL_LOWER}{_REF_END}"


class UrlOnlyInput(Rule):
    """The input is only a URL: the record relies on a page the model never sees.

    Score: ``quality_url_input`` (true when the whole input is one URL).
    """

    name: ClassVar[str] = "url_only_input"
    order: ClassVar[int] = 40
    description: ClassVar[str] = "Rejects rows whose input is only a URL (url_only_input)."

    class Params(RuleParams):
        pass

    def check(self, view: TextView) -> RuleResult:
        fail = pc.match_substring_regex(view.input, _URL_ONLY)
        detail = pc.binary_join_element_wise("input is only a URL: ", clip(view.input, 60), "")
        return RuleResult(fail, {"quality_url_input": fail}, detail_where(fail, detail))


class MissingAttachment(Rule):
    """The instruction or input refers to an attached image/file/audio the record does not contain.

    Matches attachment placeholders ("<Picture Attached>", "[Image]", "Attached photo"), markdown
    images and media links anywhere in instruction or input; and an instruction that talks about
    "the photo"/"this image"/"the audio" while the input is empty or shorter than
    ``stub_input_words`` words. Score: ``quality_attachment_refs`` (number of references found).
    """

    name: ClassVar[str] = "missing_attachment"
    order: ClassVar[int] = 50
    description: ClassVar[str] = (
        "Rejects prompts referring to an image, file or audio the record lacks (missing_attachment)."
    )

    class Params(RuleParams):
        stub_input_words: int = Field(
            4, ge=0, description="An input this short cannot hold the media."
        )

    params: Params

    def check(self, view: TextView) -> RuleResult:
        marker = r"(?i)(?P<m>" + "|".join(f"(?:{p})" for p in _ATTACHMENT_MARKERS) + ")"
        prompt = pc.binary_join_element_wise(view.instruction, view.input, "\n")
        markers = pc.count_substring_regex(prompt, marker)
        ref = r"(?P<m>" + _INSTRUCTION_REF + ")"
        stub = pc.less(view.words("input"), self.params.stub_input_words)
        refs = pc.if_else(stub, pc.count_substring_regex(view.instruction, ref), 0)
        total = pc.add(markers, refs)
        fail = pc.greater(total, 0)
        found = pc.coalesce(first_match(prompt, marker), first_match(view.instruction, ref))
        detail = pc.binary_join_element_wise(
            "refers to media the record lacks: ", pc.fill_null(found, ""), ""
        )
        return RuleResult(fail, {"quality_attachment_refs": total}, detail_where(fail, detail))
