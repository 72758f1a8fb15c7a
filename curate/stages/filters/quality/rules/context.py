"""Missing context: an input that is only a URL, or a reference to an image/file/audio the record lacks."""

from __future__ import annotations

from typing import ClassVar

import pyarrow as pa
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
# A task about the address itself (its domain, owner, normal form): the URL is the whole input.
_ADDRESS_TASK = r"(?i)\b(?:sub)?domains?\b|\bhost ?names?\b|\btop-level\b|\bowner of\b|\bnormali[sz]e\b|\burl (?:structure|format|parameters?|path)\b"
# An encyclopedic topic page: the address names the topic, and a summary of it is general knowledge
# (a news article or a blog post, dated and specific, is not).
# A repository's home page: the address names the project ("github.com/google-research/bert").
_REPOSITORY = r"(?i)^\s*<?(?:https?://)?(?:www\.)?(?:github\.com|gitlab\.com|huggingface\.co)/[\w.-]+/[\w.-]+/?>?\s*$"
_TOPIC_PAGE = r"(?i)^\s*<?(?:https?://)?(?:[\w-]+\.)*(?:wikipedia\.org/wiki/|wikiart\.org/|britannica\.com/|[\w.-]+/(?:[\w-]+/)*(?:wiki|encyclopedia|topics)/)"
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


# A short input that stands in for the media ("[Image provided]", "Attach the photo", "(Link to
# photo)", "Photo of PersonX") rather than naming the subject ("The Starry Night").
_STANDS_IN = rf"(?i)\b(?:{_MEDIA}|img|attach\w*|link|insert|include|upload\w*)\b|[<\[(]"

# What is left of an input once attachments are set aside, to see whether it describes the media:
# a markdown image keeps its alt text when that is a phrase (a file name is not), placeholders,
# reference-style images and their link lines, URLs and query strings go; so do media nouns and
# labels ("Image 1:", the default alt "alt text") and the commonest function words.
_ALT_PHRASE = r"!\[([^\]\s]*\s[^\]]*)\]\([^)]*\)"
_SET_ASIDE = [
    r"!\[[^\]]*\](?:\([^)]*\)|\[[^\]]*\])",
    r"(?m)^\s*\[[^\]]+\]:\s*\S+",
    r"<[^>]{0,80}>",
    r"\[[^\]]{0,80}\]",
    r"(?i)\b(?:https?://|www\.)\S+",
    r"\S*[=&]\S*",
    rf"(?i)\b(?:{_MEDIA}|histogram|sketch|design|alt|text|with|and|the|for)\b",
]

# ...unless the task wants the page's own words (its first lines, a paragraph, its author).
_PAGE_TEXT_TASK = r"(?i)\b(?:first|opening|closing|last)\b.*\b(?:lines?|sentences?|paragraphs?)\b|\bauthors?\b|\bquotes?\b|\bverbatim\b"


# Tasks that need only the gist of the media, which a record that says what the media shows
# ("<photo of a sunset sky>", "![Image of Coffee Mug][1]") gives: a caption, a title, a hashtag.
_GIST_TASK = r"(?i)\b(?:caption|title|hashtags?|tagline|slogan|headline)\b"
# What a placeholder or an alt text says the media shows: "<image of a cotton fabric>" -> "a
# cotton fabric"; "![Image of Coffee Mug]" -> "Coffee Mug"; an alt text of several words.
_SHOWN = (
    rf"(?i)[<\[]\s*(?:{_VISUAL}|img)\s+(?:of|showing|depicting)\s+[^>\]]{{1,80}}[>\]]"
    r"|!\[[^\]\s]*\s[^\]]*\]"
)
# Tasks that build a tool for media (an algorithm, a program, a model): the media is the tool's
# input, not the record's ("Design an algorithm to identify birds in a photo. <Image of a bird>").
_TOOL_TASK = r"(?i)^\W*(?:design|develop|write|create|build|implement|train|propose)\s+(?:an?\s+|the\s+)?(?:\w+\s+)?(?:algorithm|program|script|function|code|model|classifier|system|app|application|neural network|pipeline)\b"


def shown_words(text: pa.Array) -> pa.Array:
    """Words (three letters or more, media nouns aside) that placeholders and alt texts of
    ``text`` say the media shows."""
    shown = pc.extract_regex(
        pc.replace_substring_regex(text, r"\s+", " "), r"(?P<shown>" + _SHOWN + ")"
    )
    said = pc.fill_null(pc.struct_field(shown, [0]), "")
    said = pc.replace_substring_regex(said, r"^[<\[!\s]+|[>\]\s]+$", " ")
    said = pc.replace_substring_regex(
        said, rf"(?i)\b(?:{_MEDIA}|img|alt|text|of|showing|depicting|the|and|with)\b", " "
    )
    return pc.count_substring_regex(said, r"(?i)\b[a-z]{3,}")


def described_words(text: pa.Array) -> pa.Array:
    """Describing words (three letters or more) of ``text`` outside attachments; alt text that is
    a phrase counts."""
    text = pc.replace_substring_regex(text, _ALT_PHRASE, r" \1 ")
    for pattern in _SET_ASIDE:
        text = pc.replace_substring_regex(text, pattern, " ")
    return pc.count_substring_regex(text, r"(?i)\b[a-z]{3,}")


class UrlOnlyInput(Rule):
    """The input is only a URL: the record relies on a page the model never sees.

    Score: ``quality_url_input`` (true when the whole input is one URL).
    """

    name: ClassVar[str] = "url_only_input"
    order: ClassVar[int] = 40
    description: ClassVar[str] = "Rejects rows whose input is only a URL (url_only_input)."

    class Params(RuleParams):
        keep_address_tasks: bool = Field(
            False,
            description="Keep tasks about the address itself (its domain, owner, normal form).",
        )
        keep_topic_pages: bool = Field(
            False,
            description="Keep encyclopedic topic pages (Wikipedia, /wiki/, /encyclopedia/, "
            "/topics/): the address names the topic.",
        )
        keep_repositories: bool = Field(
            False,
            description="Keep a repository's home page (github.com/<owner>/<name>) as the whole "
            "input: the address names the project.",
        )

    params: Params

    def check(self, view: TextView) -> RuleResult:
        url_only = pc.match_substring_regex(view.input, _URL_ONLY)
        fail = url_only
        if self.params.keep_address_tasks:
            fail = pc.and_not(fail, pc.match_substring_regex(view.instruction, _ADDRESS_TASK))
        if self.params.keep_topic_pages:
            topic = pc.and_not(
                pc.match_substring_regex(view.input, _TOPIC_PAGE),
                pc.match_substring_regex(view.instruction, _PAGE_TEXT_TASK),
            )
            fail = pc.and_not(fail, topic)
        if self.params.keep_repositories:
            repository = pc.and_not(
                pc.match_substring_regex(view.input, _REPOSITORY),
                pc.match_substring_regex(view.instruction, _PAGE_TEXT_TASK),
            )
            fail = pc.and_not(fail, repository)
        detail = pc.binary_join_element_wise("input is only a URL: ", clip(view.input, 60), "")
        return RuleResult(fail, {"quality_url_input": url_only}, detail_where(fail, detail))


class MissingAttachment(Rule):
    """The instruction or input refers to an attached image/file/audio the record does not contain.

    Matches attachment placeholders ("<Picture Attached>", "[Image]", "Attached photo"), markdown
    images and media links anywhere in instruction or input; and an instruction that talks about
    "the photo"/"this image"/"the audio" while the input is empty or shorter than
    ``stub_input_words`` words. With ``described_input_words`` set, an input that describes the
    media in at least that many words of its own (outside placeholders and links; a markdown
    image's alt text counts) is answerable and kept; ``keep_described_gist`` keeps a caption, title
    or hashtag for media a placeholder or alt text describes, and ``keep_tool_tasks`` a task that
    builds a tool (an algorithm, a program) for such media. Score: ``quality_attachment_refs`` (number of
    references found).
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
        keep_named_subject: bool = Field(
            False,
            description="A short input that names the subject instead of standing in for the "
            "media ('The Starry Night', not '[Image provided]') is not a stub.",
        )
        described_input_words: int = Field(
            0,
            ge=0,
            description="Keep rows whose input describes the media in at least this many words "
            "of its own (0: off).",
        )
        keep_described_gist: bool = Field(
            False,
            description="Keep captions, titles and hashtags for media that a placeholder or alt "
            "text describes ('<photo of a sunset sky>').",
        )
        keep_tool_tasks: bool = Field(
            False,
            description="Keep tasks that build a tool for media ('Design an algorithm to "
            "identify birds in a photo'): they need no attachment.",
        )

    params: Params

    def check(self, view: TextView) -> RuleResult:
        marker = r"(?i)(?P<m>" + "|".join(f"(?:{p})" for p in _ATTACHMENT_MARKERS) + ")"
        prompt = pc.binary_join_element_wise(view.instruction, view.input, "\n")
        markers = pc.count_substring_regex(prompt, marker)
        ref = r"(?P<m>" + _INSTRUCTION_REF + ")"
        input_words = view.words("input")
        stub = pc.less(input_words, self.params.stub_input_words)
        if self.params.keep_named_subject:
            stands_in = pc.or_(
                pc.equal(input_words, 0),
                pc.match_substring_regex(view.input, _STANDS_IN),
            )
            stub = pc.and_(stub, stands_in)
        refs = pc.if_else(stub, pc.count_substring_regex(view.instruction, ref), 0)
        total = pc.add(markers, refs)
        fail = pc.greater(total, 0)
        if self.params.described_input_words:
            described = pc.greater_equal(
                described_words(view.input), self.params.described_input_words
            )
            fail = pc.and_not(fail, described)
        if self.params.keep_described_gist:
            gist = pc.and_(
                pc.match_substring_regex(view.instruction, _GIST_TASK),
                pc.greater(shown_words(prompt), 0),
            )
            fail = pc.and_not(fail, gist)
        if self.params.keep_tool_tasks:
            fail = pc.and_not(fail, pc.match_substring_regex(view.instruction, _TOOL_TASK))
        found = pc.coalesce(first_match(prompt, marker), first_match(view.instruction, ref))
        detail = pc.binary_join_element_wise(
            "refers to media the record lacks: ", pc.fill_null(found, ""), ""
        )
        return RuleResult(fail, {"quality_attachment_refs": total}, detail_where(fail, detail))
