"""Missing context: an input that is only a URL, or a reference to an image/file/audio the record lacks."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curate.stages.filters.quality.rules import (
    Rule,
    RuleParams,
    RuleResult,
    TextView,
    clip,
    detail_on,
    first_match,
    matches_where,
    true_where,
)
from curate.stages.filters.quality.rules.grounding import answer_in_text, names_artwork, rows_where

_URL_ONLY = r"(?i)^\s*<?(https?://|www\.)\S+>?\s*$"
# A task about the address itself (its domain, owner, normal form): the URL is the whole input.
_ADDRESS_TASK = r"(?i)\b(?:sub)?domains?\b|\bhost ?names?\b|\btop-level\b|\bowner of\b|\bnormali[sz]e\b|\burl (?:structure|format|parameters?|path)\b"
# An encyclopedic topic page: the address names the topic, and a summary of it is general knowledge
# (a news article or a blog post, dated and specific, is not).
# A repository's home page: the address names the project ("github.com/google-research/bert").
_REPOSITORY = r"(?i)^\s*<?(?:https?://)?(?:www\.)?(?:github\.com|gitlab\.com|huggingface\.co)/[\w.-]+/[\w.-]+/?>?\s*$"
# Tasks that use the address without its page: a link or markup for it, code that requests it,
# blocking it, judging it as phishing, an id in it ("Make an API call to the given URL").
_ADDRESS_USE = r"(?i)\bblock\b|\bhtml\b|\bhyperlink|\b(?:create|make|insert|add|generate)\s+(?:an?\s+)?link\b|\bapi\b|\bhttp requests?\b|\bphishing\b|\bscam\b|\bmalicious\b|\btrust(?:worthy|able)\b|\blegit(?:imate)?\b|\bids?\b.*\burl\b"
# A reference page whose address names its topic, as an encyclopedia's does: a glossary entry, a
# how-to wiki, a dictionary entry.
_REFERENCE_PAGE = r"(?i)^\s*<?(?:https?://)?(?:[\w-]+\.)*(?:investopedia\.com/terms/|wikihow\.com/|merriam-webster\.com/dictionary/|dictionary\.com/browse/|dictionary\.cambridge\.org/)"
# Writing questions about a page: the questions need its subject, not its contents.
_QUESTION_WRITING = (
    r"(?i)\b(?:generate|write|create|come up with|list|ask|suggest)\b.*\bquestions\b"
)
# A site's home page or a section index (nytimes.com, nasa.gov/audience/forstudents/index.html):
# the address names the site, and what kind of site it is, or a line on what it offers, is general
# knowledge (a summary of its contents is not); placeholder domains (example.com) name nothing.
_HOME_PAGE = (
    r"(?i)^\s*<?(?:https?://)?(?:www\.)?[\w-]+(?:\.[\w-]+)+(?:/[a-z]+)*/?(?:index\.html?)?>?\s*$"
)
_PLACEHOLDER_SITE = r"(?i)^\s*<?(?:https?://)?(?:[\w-]+\.)*[\w-]*example"
_SITE_DESCRIPTION = r"(?i)\b(?:describ\w*|description|classify|categor\w*|type|kind|what it does)\b.*\b(?:web ?sites?|sites?|home ?page|web ?page)\b|\b(?:web ?sites?|sites?|home ?page|web ?page)\b.*\b(?:describ\w*|description|classify|categor\w*|type|kind|what it does)\b"
# ...unless the task judges the page itself, which needs the page.
_SITE_JUDGMENT = r"(?i)\b(?:improv\w*|evaluat\w*|review\w*|critique|rate|rating|design|layout|usab\w*|accessib\w*|user experience|optimi[sz]\w*|problems?|feedback|bias\w*|reliab\w*|navigation|search\w*|seo)\b"
# Tasks about art, where a file name naming a famous work stands for it.
_ART_TASK = r"(?i)\b(?:painting|paintings|art|artwork|artworks|work of art|piece|artist|painter|masterpiece)\b"
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
# A one-sentence account of the media: what a placeholder that describes it says is enough.
_ONE_LINER_TASK = (
    r"(?i)\bwhat happens\b|\bin (?:one|a single|1) sentence\b|\bone-line\b|\bone line\b"
)
# Tasks that build a tool for media (an algorithm, a program, a model): the media is the tool's
# input, not the record's ("Design an algorithm to identify birds in a photo. <Image of a bird>").
_TOOL_TASK = r"(?i)^\W*(?:design|develop|write|create|build|implement|train|propose)\s+(?:an?\s+|the\s+)?(?:\w+\s+)?(?:algorithm|program|script|function|code|model|classifier|system|app|application|neural network|pipeline)\b"


# A summary that repeats the slug ("The article discusses wellness at home") is not one either.
_PAGE_WORDS_TASK = (
    _PAGE_TEXT_TASK
    + r"|\btitles?\b|\bwho wrote\b|\bwritten\b|\bsummar\w*|\btweets?\b|\b(?:key|main) (?:ideas?|points?)\b"
)
# Tasks about markup, where "<img src=...>" is the text to work on.
_MARKUP_TASK = r"(?i)\b(?:html|xml|markup|css)\b"


def keep_read_off(params: RuleParams, fail: pa.Array, view: TextView, source: pa.Array) -> pa.Array:
    """``fail`` less the rows whose answer the record's own text about the media carries: a short
    answer read off ``source`` (``keep_answers_in_text``), or an art task on a file name that names
    a famous work (``keep_named_artworks``)."""
    if getattr(params, "keep_answers_in_text", False):
        # A title, an author, a quote or a summary is the page's own words: only it gives them.
        asks_label = pc.and_not(fail, matches_where(fail, view.instruction, _PAGE_WORDS_TASK))
        read_off = rows_where(asks_label, answer_in_text, view.output, source, view.instruction)
        fail = pc.and_not(fail, read_off)
    if getattr(params, "keep_named_artworks", False):
        art = matches_where(fail, view.instruction, _ART_TASK)
        fail = pc.and_not(fail, rows_where(art, names_artwork, source))
    return fail


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


def _shows_something(text: pa.Array) -> pa.Array:
    return pc.greater(shown_words(text), 0)


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
        keep_address_uses: bool = Field(
            False,
            description="Keep tasks that use the address without its page: a link or HTML for "
            "it, code that requests it, blocking it, judging it as phishing, an id in it.",
        )
        keep_reference_pages: bool = Field(
            False,
            description="Keep reference pages whose address names the topic, as keep_topic_pages "
            "does for encyclopedias: glossaries (investopedia.com/terms/), how-to wikis "
            "(wikihow.com), dictionaries.",
        )
        keep_question_writing: bool = Field(
            False,
            description="Keep tasks that write questions about a page: they need its subject, "
            "not its contents.",
        )
        keep_site_descriptions: bool = Field(
            False,
            description="Keep what kind of site a home page is, or a line on what it offers "
            "(nytimes.com: a news site); not a judgment of the page (its design, usability), and "
            "not a placeholder domain (example.com).",
        )
        keep_answers_in_text: bool = Field(
            False,
            description="Keep a short answer read off the address itself "
            "(…/news/business-54516605: 'business').",
        )
        keep_named_artworks: bool = Field(
            False,
            description="Keep art tasks whose address names a well-known painter and the work "
            "(…/Liberty_Leading_the_People.jpg by Delacroix): what it shows is general knowledge.",
        )

    params: Params

    def check(self, view: TextView) -> RuleResult:
        url_only = pc.match_substring_regex(view.input, _URL_ONLY)
        fail = url_only
        # The exceptions are looked for on the rows still failing only.
        if self.params.keep_address_tasks:
            fail = pc.and_not(fail, matches_where(fail, view.instruction, _ADDRESS_TASK))
        # Addresses that name their page's topic (an encyclopedia entry, a repository, a
        # reference page), unless the task wants the page's own words.
        naming = [
            pattern
            for keep, pattern in (
                (self.params.keep_topic_pages, _TOPIC_PAGE),
                (self.params.keep_repositories, _REPOSITORY),
                (self.params.keep_reference_pages, _REFERENCE_PAGE),
            )
            if keep
        ]
        if naming:
            named = "|".join(f"(?:{p})" for p in naming)
            fail = pc.and_not(
                fail,
                true_where(
                    fail,
                    lambda text, instruction: pc.and_not(
                        pc.match_substring_regex(text, named),
                        pc.match_substring_regex(instruction, _PAGE_TEXT_TASK),
                    ),
                    view.input,
                    view.instruction,
                ),
            )
        if self.params.keep_question_writing:
            fail = pc.and_not(fail, matches_where(fail, view.instruction, _QUESTION_WRITING))
        if self.params.keep_address_uses:
            fail = pc.and_not(fail, matches_where(fail, view.instruction, _ADDRESS_USE))
        if self.params.keep_site_descriptions:
            fail = pc.and_not(
                fail, true_where(fail, _site_description, view.input, view.instruction)
            )
        fail = keep_read_off(self.params, fail, view, view.input)
        detail = detail_on(
            fail,
            lambda text: pc.binary_join_element_wise("input is only a URL: ", clip(text, 60), ""),
            view.input,
        )
        return RuleResult(fail, {"quality_url_input": url_only}, detail)


def _site_description(text: pa.Array, instruction: pa.Array) -> pa.Array:
    """A real site's home page, and a task that describes the site without judging the page."""
    return pc.and_(
        pc.and_not(
            pc.match_substring_regex(text, _HOME_PAGE),
            pc.match_substring_regex(text, _PLACEHOLDER_SITE),
        ),
        pc.and_not(
            pc.match_substring_regex(instruction, _SITE_DESCRIPTION),
            pc.match_substring_regex(instruction, _SITE_JUDGMENT),
        ),
    )


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
        keep_described_one_liners: bool = Field(
            False,
            description="Keep a one-sentence account of media that a placeholder describes "
            "('Describe what happens in the photo. [Image of fireworks]').",
        )
        keep_tool_tasks: bool = Field(
            False,
            description="Keep tasks that build a tool for media ('Design an algorithm to "
            "identify birds in a photo'): they need no attachment.",
        )
        keep_markup_tasks: bool = Field(
            False,
            description="Keep tasks about HTML or markup, where an <img> tag is the input, not "
            "a missing image.",
        )
        keep_answers_in_text: bool = Field(
            False,
            description="Keep a short answer read off the record's own text about the media: a "
            "file name, a placeholder ('…/Flag_of_Denmark.svg': 'Denmark').",
        )
        keep_named_artworks: bool = Field(
            False,
            description="Keep art tasks whose file name names a well-known painter and the "
            "work (…/Piet_Mondrian,_1921,_Tableau_I.jpg): what it shows is general knowledge.",
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
                matches_where(stub, view.input, _STANDS_IN),
            )
            stub = pc.and_(stub, stands_in)
        refs = pa.array(np.zeros(view.num_rows, dtype=np.int64))
        if pc.any(stub).as_py():
            found = pc.count_substring_regex(view.instruction.filter(stub), ref)
            refs = pc.replace_with_mask(refs, stub, found.cast(pa.int64()))
        total = pc.add(markers, refs)
        fail = pc.greater(total, 0)
        # The exceptions below are computed on the rows still failing only.
        if self.params.described_input_words:
            least = self.params.described_input_words
            described = true_where(
                fail, lambda text: pc.greater_equal(described_words(text), least), view.input
            )
            fail = pc.and_not(fail, described)
        if self.params.keep_described_gist:
            gist_task = matches_where(fail, view.instruction, _GIST_TASK)
            fail = pc.and_not(fail, true_where(gist_task, _shows_something, prompt))
        if self.params.keep_described_one_liners:
            one_liner = matches_where(fail, view.instruction, _ONE_LINER_TASK)
            fail = pc.and_not(fail, true_where(one_liner, _shows_something, prompt))
        if self.params.keep_tool_tasks:
            fail = pc.and_not(fail, matches_where(fail, view.instruction, _TOOL_TASK))
        if self.params.keep_markup_tasks:
            fail = pc.and_not(fail, matches_where(fail, view.instruction, _MARKUP_TASK))
        fail = keep_read_off(self.params, fail, view, view.input)

        def explain(prompt: pa.Array, instruction: pa.Array) -> pa.Array:
            found = pc.coalesce(first_match(prompt, marker), first_match(instruction, ref))
            return pc.binary_join_element_wise(
                "refers to media the record lacks: ", pc.fill_null(found, ""), ""
            )

        detail = detail_on(fail, explain, prompt, view.instruction)
        return RuleResult(fail, {"quality_attachment_refs": total}, detail)
