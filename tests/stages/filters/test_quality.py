"""Quality rules on real examples of each instruction-data defect (mostly verbatim from Alpaca/Dolly)."""

from __future__ import annotations

import pyarrow as pa
import pytest
from testutils import records_table

from curate.errors import StageError
from curate.records import RECORD_SCHEMA
from curate.stages import Quality, get_stage
from curate.stages.filters.quality.rules.refusal import load_phrases

from .conftest import DATA, make_table

GOOD = [
    {"instruction": "Name a popular messaging app.", "output": "Telegram"},
    {"instruction": "What is 2 + 2?", "output": "4"},
    {
        "instruction": "Is the sentence positive or negative?",
        "input": "I love it.",
        "output": "Positive",
    },
    {
        "instruction": "Rearrange the words to make a sentence.",
        "input": "nothing, is, better, than, something",
        "output": "Something is better than nothing.",
    },
    {
        "instruction": "Correct the grammar.",
        "input": "She go to school.",
        "output": "She goes to school.",
    },
    {
        "instruction": 'Rewrite this sentence in a positive way: "I cannot do it".',
        "output": "I will be able to do it.",
    },
    {"instruction": "List three primary colors.", "output": "- Red\n- Yellow\n- Blue"},
    {
        "instruction": "Explain the concept of a GPT language model.",
        "output": "A GPT language model is a type of neural network used for natural language processing.",
    },
    {"instruction": "Who wrote The Picture of Dorian Gray in 1891?", "output": "Oscar Wilde"},
    {
        "instruction": "How has the video gaming industry evolved over the years?",
        "output": "It grew from arcades to consoles, PCs and phones.",
    },
    {
        "instruction": "Write a test plan.",
        "output": "If the model is being used as an AI assistant, evaluate how it completes tasks.",
    },
]


def reasons(
    rows: list[dict[str, str]], stage: Quality | None = None, **params: object
) -> list[str | None]:
    table = make_table(rows)
    result = (stage or Quality(**params)).run(table)
    by_id = dict(
        zip(
            result.rejected.column("id").to_pylist(),
            result.rejected.column("reason").to_pylist(),
            strict=True,
        )
    )
    return [by_id.get(f"r{i}") for i in range(len(rows))]


def test_registered_under_recipe_key() -> None:
    # The recipe key resolves to quality_v4 (audited defaults); these tests pin v1's rules.
    assert get_stage("quality_v1") is Quality
    assert get_stage("quality").name == "quality_v4"


def test_v2_keeps_correct_answers_that_copy_the_input() -> None:
    rows = [
        {
            "instruction": "Sort this list in ascending order.",
            "input": "1, 2, 3, 4, 5",
            "output": "1, 2, 3, 4, 5",
        },
        {
            "instruction": "Transcribe the following sentence.",
            "input": "The cat sat on the mat.",
            "output": "The cat sat on the mat.",
        },
        {"instruction": "Spell the proper noun correctly: Tyrese", "output": "Tyrese"},
        {
            "instruction": "Write a song using only the notes A and G.",
            "output": "A G A G\nA G A G\nA G A G\nA G A G\nA G A G\nA G A G",
        },
        {
            "instruction": "Create a looping GIF of a cat.",
            "output": "Create a looping GIF of a cat.",
        },
    ]
    table = records_table(rows)
    v1 = get_stage("quality_v1")().run(table)
    v2 = get_stage("quality")().run(table)
    assert set(v1.rejected.column("reason").to_pylist()) >= {"echo"}
    # v2: only the output that repeats the instruction is an echo
    assert v2.rejected.column("instruction").to_pylist() == ["Create a looping GIF of a cat."]
    assert v2.rejected.column("reason").to_pylist() == ["echo"]


def test_good_records_are_kept() -> None:
    assert reasons(GOOD) == [None] * len(GOOD)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (
            {"instruction": 'What year was the movie "La La Land" released?', "output": "   "},
            "empty_output",
        ),
        (
            {
                "instruction": "Design a logo for the given company.",
                "input": "Example Company",
                "output": "<No output>",
            },
            "placeholder_output",
        ),
        (
            {"instruction": "Generate an illustration of a cartoon dog", "output": "<nooutput>"},
            "placeholder_output",
        ),
        (
            {
                "instruction": "Render a 3D model of a house",
                "output": "<nooutput> This type of instruction cannot be fulfilled by a GPT model.",
            },
            "placeholder_output",
        ),
        ({"instruction": "Give the capital.", "output": "N/A"}, "placeholder_output"),
        ({"instruction": "Test", "output": "Mike"}, "instruction_too_short"),
        (
            {
                "instruction": "Summarize the following article",
                "input": "https://www.nytimes.com/2010/07/05/business/global/05phone.html",
                "output": "This article discusses mobile phones.",
            },
            "url_only_input",
        ),
        (
            {
                "instruction": "Evaluate the following website for its usability.",
                "input": "www.example.com",
                "output": "The website is user-friendly.",
            },
            "url_only_input",
        ),
        (
            {
                "instruction": "Name the boat depicted in the provided photo.",
                "input": "Attached photo",
                "output": "The boat in the photo is a sailboat.",
            },
            "missing_attachment",
        ),
        (
            {
                "instruction": "Guess which two people met in this location.",
                "input": "<image of a train station>",
                "output": "A traveler and a station attendant.",
            },
            "missing_attachment",
        ),
        (
            {
                "instruction": "Identify the shapes in the figure.",
                "input": "![Figure](https://i.imgur.com/1YKCp9a.png)",
                "output": "A triangle and a square.",
            },
            "missing_attachment",
        ),
        (
            {
                "instruction": "Describe this image.",
                "input": "<Picture Attached>",
                "output": "A cat on a mat.",
            },
            "missing_attachment",
        ),
        (
            {
                "instruction": "Generate a funny caption for the following photo.",
                "output": "When your date says they want to stay in.",
            },
            "missing_attachment",
        ),
        (
            {
                "instruction": "Why does the sky appear blue?",
                "output": "Because of Rayleigh scattering.\n\n14. Instruction: Name a fruit.\n14. Input:\n<noinput>\n14. Output:\nApple",
            },
            "instruction_leak",
        ),
        (
            {
                "instruction": "What is the best sport?",
                "output": "It depends on who you ask, but as an AI language model, I cannot determine which sport is the best.",
            },
            "refusal",
        ),
        (
            {
                "instruction": "Which building is the highest?",
                "output": "As of my knowledge cutoff of September 2021, it is the Burj Khalifa.",
            },
            "refusal",
        ),
        (
            {
                "instruction": "Construct a timeline of humankind",
                "output": "This task requires constructing a timeline which cannot be done by a GPT model.",
            },
            "refusal",
        ),
        (
            {"instruction": "Who made you?", "output": "I am ChatGPT, a model trained by OpenAI."},
            "refusal",
        ),
        (
            {
                "instruction": "Edit the highlighted locations in the sentence.",
                "input": "I live in the USA, but I'm from Canada.",
                "output": "I live in the USA, but I'm from Canada.",
            },
            "echo",
        ),
        (
            {
                "instruction": "Repeat after me: the quick brown fox.",
                "output": "Repeat after me: the quick brown fox.",
            },
            "echo",
        ),
        (
            {
                "instruction": "Write a poem about love.",
                "output": "\n".join(["I love you more than words can say today."] * 12),
            },
            "repetition",
        ),
        (
            {
                "instruction": "Write a story.",
                "output": " ".join(["the cat sat on the mat and"] * 12),
            },
            "repetition",
        ),
    ],
)
def test_each_defect_has_its_reason(row: dict[str, str], reason: str) -> None:
    assert reasons([row]) == [reason]


def test_multi_turn_refusal_in_an_earlier_assistant_turn() -> None:
    row = {
        "instruction": "Thanks!",
        "output": "You're welcome.",
        "messages": [
            {"role": "user", "content": "Tell me a secret."},
            {"role": "assistant", "content": "I'm sorry, but I cannot share that."},
            {"role": "user", "content": "Thanks!"},
            {"role": "assistant", "content": "You're welcome."},
        ],
    }
    assert reasons([row]) == ["refusal"]


def test_scores_are_written_on_kept_rows_and_detail_explains() -> None:
    table = make_table(
        [
            GOOD[0],
            {"instruction": "Who made you?", "output": "As an AI language model, I am an AI."},
        ]
    )
    kept, rejected = Quality().run(table)
    assert kept.column("quality_refusal_matches").to_pylist() == [0]
    assert kept.column("quality_output_chars").to_pylist() == [8]
    assert kept.column("quality_echo").type == pa.float64()
    assert rejected.column("detail").to_pylist() == [
        "refusal/identity phrase: As an AI language model"
    ]
    assert rejected.column("stage").to_pylist() == ["quality_v1"]


def test_first_failing_rule_wins_and_others_are_listed() -> None:
    table = make_table([{"instruction": "Paint", "output": ""}])
    rejected = Quality().run(table).rejected
    assert rejected.column("reason").to_pylist() == ["empty_output"]
    assert "also: instruction_too_short" in rejected.column("detail")[0].as_py()


def test_rules_switch_off_and_on_from_params() -> None:
    echo = {
        "instruction": "Repeat after me: the quick brown fox.",
        "output": "Repeat after me: the quick brown fox.",
    }
    assert reasons([echo], echo=False) == [None]
    assert reasons([echo], echo={"enabled": False}) == [None]
    long_answer = {
        "instruction": "Summarize the following text in one line, please, for me now.",
        "input": " ".join(["word"] * 20),
        "output": " ".join(["answer"] * 2000),
    }
    assert reasons([long_answer], length_ratio=True, repetition=False) == ["length_ratio"]
    assert reasons([long_answer], repetition=False) == [None]


def test_optional_char_ratio_and_regex_rules() -> None:
    symbols = {
        "instruction": "Draw a box.",
        "output": "+--------------+\n|              |\n+--------------+",
    }
    assert reasons([symbols]) == [None]
    assert reasons([symbols], char_ratio=True) == ["char_ratio"]
    row = {
        "instruction": "Tell me a joke.",
        "output": "Sure! Here's one: why did the chicken cross the road?",
    }
    assert reasons([row], regex={"enabled": True, "patterns": [r"^sure!"]}) == ["regex"]
    with pytest.raises(StageError, match="patterns"):
        Quality(regex={"enabled": True, "patterns": ["(unclosed"]})


def test_thresholds_are_params() -> None:
    short = {"instruction": "Name a fruit please", "output": "Fig"}
    assert reasons([short]) == [None]
    assert reasons([short], min_length={"output_chars": 5}) == ["output_too_short"]


def test_refusal_phrase_list_is_conservative_data() -> None:
    phrases = load_phrases()
    assert "as an ai language model" in phrases
    for broad in ("i cannot", "it is impossible", "i'm sorry", "as an ai"):
        assert broad not in phrases
    extra = {"instruction": "Who are you?", "output": "Beep boop, I am merely a chatbot."}
    assert reasons([extra], refusal={"extra_phrases": ["i am merely a chatbot"]}) == ["refusal"]


def test_unknown_rule_key_is_an_error() -> None:
    with pytest.raises(StageError, match="nonsense"):
        Quality(nonsense=True)


def test_empty_table_and_round_trip() -> None:
    kept, rejected = Quality().run(RECORD_SCHEMA.empty_table())
    assert kept.num_rows == 0 and rejected.num_rows == 0
    params = Quality(echo=False, min_length={"instruction_chars": 3}).params.model_dump()
    assert Quality(params).params.model_dump() == params


@pytest.mark.realdata
@pytest.mark.skipif(not (DATA / "dolly").exists(), reason="needs ../shared/data")
def test_real_dolly_drop_rate_is_small() -> None:
    from curate.ingest import read_file

    table = read_file(DATA / "dolly" / "databricks-dolly-15k.jsonl.gz", source="dolly").records
    result = Quality().run(table)
    # Web-text filters drop most of Dolly; these rules must not.
    assert result.rejected.num_rows < 0.02 * table.num_rows
    assert "refusal" in set(result.rejected.column("reason").to_pylist())


def test_v2_refusal_is_a_short_decline_not_a_disclaimer_or_identity_talk() -> None:
    rows = [
        {
            "instruction": "Construct a timeline of humankind",
            "output": "This task requires constructing a timeline which cannot be done by a GPT model.",
        },
        {
            "instruction": "What is your political stance?",
            "output": "As an AI model, I don't have a personal political stance.",
        },
        {
            "instruction": "Which building is the tallest?",
            "output": "As an AI language model my knowledge has a cutoff, but the tallest building in the "
            "world is the Burj Khalifa in Dubai, at 828 metres (2,717 ft) with 163 floors; it was "
            "completed in 2010 and has held the record since then, ahead of the Merdeka 118 tower.",
        },
    ]
    table = records_table(rows)
    assert get_stage("quality_v1")().run(table).rejected.num_rows == 3
    (dropped,) = get_stage("quality")().run(table).rejected.to_pylist()
    assert (dropped["instruction"], dropped["reason"]) == (
        "Construct a timeline of humankind",
        "refusal",
    )


def test_v2_missing_context_rules_keep_answerable_rows() -> None:
    # Real Alpaca drops the audit labeled wrong (bench/audit/), and correct ones v2 must still make.
    answerable = [
        {
            "instruction": "This is a website URL. Identify the domain name.",
            "input": "http://www.example.com/",
            "output": "example.com",
        },
        {
            "instruction": "Write a summarization of a given Wikipedia article.",
            "input": "https://en.wikipedia.org/wiki/Mount_Everest",
            "output": "Mount Everest is the highest mountain on Earth.",
        },
        {
            "instruction": "Describe what is the setting of this painting",
            "input": "The Starry Night",
            "output": "A village at night under a swirling sky.",
        },
        {
            "instruction": "What could this sign represent?",
            "input": "![Image of a white octagon with a blue border](./media/example2.png)",
            "output": "A stop sign.",
        },
        {
            "instruction": "Create a task that a GPT model can complete with a given input and output.",
            "output": "Instruction: Summarize the text.\nInput: A long article.\nOutput: A summary.",
        },
    ]
    missing = [
        {
            "instruction": "Summarize the key ideas outlined in the given article.",
            "input": "https://www.nytimes.com/2020/07/11/arts/wellness-at-home.html",
            "output": "The article discusses wellness at home.",
        },
        {
            "instruction": "Find the opening and closing paragraphs of the following article:",
            "input": "https://en.wikipedia.org/wiki/AI_winter",
            "output": "AI winter is a period of reduced funding.",
        },
        {
            "instruction": "Describe the painting below.",
            "input": "[Image provided]",
            "output": "A calm landscape.",
        },
        {
            "instruction": "Analyze the following photo and explain what it is depicting.",
            "input": "[Insert an image]",
            "output": "A dog in a park.",
        },
        {
            "instruction": "Given the following figure, formulate a hypothesis.",
            "input": "<noinput>  ![alt text](https://example.org/fig1.png)",
            "output": "x grows with y.",
        },
        {
            "instruction": "Write a poem.",
            "output": "Roses are red.\n2. Instruction: Write a haiku.",
        },
    ]
    v1 = reasons(answerable + missing, get_stage("quality_v1")())
    v2 = reasons(answerable + missing, get_stage("quality_v2")())
    v4 = reasons(answerable + missing, get_stage("quality")())
    assert v4[len(answerable) :] == v2[len(answerable) :]
    assert all(v1[: len(answerable)]), v1
    assert v2[: len(answerable)] == [None] * len(answerable)
    assert v2[len(answerable) :] == [
        "url_only_input",
        "url_only_input",
        "missing_attachment",
        "missing_attachment",
        "missing_attachment",
        "instruction_leak",
    ]


def test_v3_keeps_captions_of_described_media_tool_tasks_and_repositories() -> None:
    # Real Alpaca drops v2 made that the audit labeled wrong (bench/audit/), and correct ones v3
    # must still make.
    answerable = [
        {
            "instruction": "Add a short caption to the following photo",
            "input": "< photo of a sunset sky>",
            "output": "Catching the beautiful sunset before it fades away.",
        },
        {
            "instruction": "Create a caption that accurately describes a given photo taken of a coffee mug.",
            "input": "![Image of Coffee Mug][1]\n\n[1]: https://i.imgur.com/V7kGjKN.jpg",
            "output": "A hot cup of coffee, the perfect way to start the day!",
        },
        {
            "instruction": "Design an algorithm to identify different types of birds in a photo.",
            "input": "<Image of a bird>",
            "output": "First detect the bird with an object detection model, then classify it.",
        },
        {
            "instruction": "Classify the following Github repository into one of the following "
            "areas: deep learning, natural language processing, computer vision.",
            "input": "https://github.com/google-research/bert",
            "output": "Natural language processing",
        },
    ]
    missing = [
        {
            "instruction": "Given the following chart, explain the trend it is showing",
            "input": "<image of a chart showing a trend>",
            "output": "The chart shows an increasing trend from 2005 to 2020.",
        },
        {
            "instruction": "Given the following drawing, generate an appropriate caption.",
            "input": "![alt text](https://image.shutterstock.com/image-vector/colored-sign-nature.jpg)",
            "output": "Protect nature.",
        },
        {
            "instruction": "Generate a funny caption for the following photo.",
            "output": "When your date says they want to stay in.",
        },
        {
            "instruction": "Critique the following website.",
            "input": "https://www.soylux.com/",
            "output": "The website is clean.",
        },
    ]
    v2 = reasons(answerable + missing, get_stage("quality_v2")())
    v3 = reasons(answerable + missing, get_stage("quality_v3")())
    assert all(v2[: len(answerable)]), v2
    assert v3 == [None] * len(answerable) + [
        "missing_attachment",
        "missing_attachment",
        "missing_attachment",
        "url_only_input",
    ]


def test_v4_keeps_answers_the_record_carries_and_tasks_that_need_no_page() -> None:
    # Real Alpaca drops v3 made that the full audit labeled wrong (bench/audit/), and correct ones
    # v4 must still make.
    answerable = [
        {  # the answer is read off the file name
            "instruction": "Guessing a country from the given flag, what country is this?",
            "input": "![Image of Flag](https://upload.wikimedia.org/wikipedia/commons/thumb/a/a2/"
            "Flag_of_Denmark.svg/1200px-Flag_of_Denmark.svg.png)",
            "output": "This is the flag of Denmark.",
        },
        {  # ... or off the URL path
            "instruction": "Categorize the given news article.",
            "input": "https://www.bbc.com/news/business-54516605",
            "output": "The news article is about business.",
        },
        {  # the input picks one of the instruction's options
            "instruction": "Classify the following photo as either a car, animal, or flower.",
            "input": "Attached photo of a car",
            "output": "Car",
        },
        {  # a famous work named by its file name
            "instruction": "Describe the key elements of the painting in the input.",
            "input": "https://upload.wikimedia.org/wikipedia/commons/thumb/f/f6/Delacroix%2C_Eug%C3%"
            "A8ne_-_Liberty_Leading_the_People.jpg/1200px-Delacroix.jpg",
            "output": "A woman holding a French flag leads a crowd of armed citizens.",
        },
        {  # a task on the address itself
            "instruction": "Make an API call to the given URL and print the output in the console.",
            "input": "https://data.cityofnewyork.us/resource/fhrw-4uyv.json",
            "output": "import requests\nprint(requests.get(url).json())",
        },
        {  # what kind of site a home page is
            "instruction": "Given a website link, classify the website.",
            "input": "https://www.nytimes.com/",
            "output": "This website is a news website.",
        },
        {  # a reference page names its topic
            "instruction": "Summarize the article: How To Play Solitaire",
            "input": "https://www.wikihow.com/Play-Solitaire",
            "output": "Solitaire is a card game played with one deck.",
        },
        {  # an <img> tag in an HTML task is the input
            "instruction": "Automatically close tags with inconsistent case in the following HTML snippet.",
            "input": '<b><IMG src="image.png">',
            "output": '<b><IMG src="image.png" /></b>',
        },
        {  # a one-line account of media a placeholder describes
            "instruction": "Describe the given landscape photograph in one sentence.",
            "input": "<Image of a misty mountain valley during sunrise>",
            "output": "Mist fills the mountain valley under the soft light of sunrise.",
        },
    ]
    missing = [
        {  # a number the record does not give comes from the page
            "instruction": "Get topical information from the given web page",
            "input": "https://www.theguardian.com/world/2020/may/14/coronavirus-latest-news-"
            "covid-19-updates-south-asia-india-bangladesh",
            "output": "India has crossed 200,000 coronavirus cases, Bangladesh near 30,000.",
        },
        {  # a title is the page's own words, even when the slug suggests it
            "instruction": "Open the following URL and find the title of the article.",
            "input": "https://www.huffpost.co.uk/entry/vaccinated-vs-unvaccinated-children",
            "output": "Vaccinated vs Unvaccinated Children",
        },
        {  # a judgment of a site needs the site
            "instruction": "Given a website, review the homepage layout and comment on the user "
            "experience of the website.",
            "input": "https://www.apple.com/",
            "output": "The Apple homepage is clean and simple.",
        },
        {  # a placeholder domain names nothing
            "instruction": "Classify this website as either a blog or an e-commerce store.",
            "input": "https://www.exampleblogstore.com/",
            "output": "This website is an e-commerce store.",
        },
        {  # a painter's name alone does not name the work
            "instruction": "Describe the following painting in at least 10 words.",
            "input": "https://upload.wikimedia.org/wikipedia/commons/thumb/4/4f/Edgar_Degas_059.jpg",
            "output": "A woman with a fan at a ballroom, in green and grey.",
        },
        {  # an edited image is not an answer read off the input
            "instruction": "Edit a photo to create a dreamy atmosphere.",
            "input": "![Sample Image](https://images.unsplash.com/photo-1585989416756)",
            "output": "![Edited Image](https://images.unsplash.com/photo-1585989416756&edit=1)",
        },
        {  # "tags" for a photo is not markup
            "instruction": "Given a photograph, provide three tags to describe it",
            "output": "beach, ocean, sunset.",
        },
    ]
    v3 = reasons(answerable + missing, get_stage("quality_v3")())
    v4 = reasons(answerable + missing, get_stage("quality")())
    assert all(v3[: len(answerable)]), v3
    assert v4[: len(answerable)] == [None] * len(answerable), v4
    assert v4[len(answerable) :] == [
        "url_only_input",
        "url_only_input",
        "url_only_input",
        "url_only_input",
        "url_only_input",
        "missing_attachment",
        "missing_attachment",
    ], v4
