"""The response_format_v1 stage: labels on real Alpaca and Dolly answers, conversations, empty
answers, determinism, params and the manifest."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from testutils import records_table

from curate.errors import StageError
from curate.records import RECORD_SCHEMA
from curate.stages import get_stage
from curate.stages.response_format import LABELS, ResponseFormat, answer_text, response_formats

# Real answers (the ``output`` of alpaca_data.json, the ``response`` of databricks-dolly-15k),
# cited by file and 0-based row, as ``normalize`` leaves them (trailing spaces gone), with the
# label a person gives them. "(start)": the first lines of a longer answer.
REAL = [
    # empty: nothing, or Alpaca's no-answer placeholder
    ("alpaca:24541", "", "empty"),
    ("alpaca:12901", "<nooutput>", "empty"),
    ("alpaca:15968", "<noinput>", "empty"),
    # code
    ("alpaca:11420", "def num_to_string(num):\n    return str(num)", "code"),
    ("alpaca:45049", "SELECT * FROM customers WHERE city = 'Chicago';", "code"),
    (
        "alpaca:26657",
        "```python\nnums = [4, 8, 9, 15]\nfor num in nums:\n    print(num)\n```",
        "code",
    ),
    (
        "alpaca:13706",
        "CREATE VIEW Students_view AS\nSELECT *\nFROM Students;",
        "code",
    ),
    ("alpaca:45460", 'System.out.println("Hello World");', "code"),
    (
        "alpaca:7476",
        "$(document).ready(function(){\n$('.hide-this').hide();\n});",
        "code",
    ),
    (
        "alpaca:1402",
        'def sum_numbers(x, y):\n    """\n    Returns the sum of two numbers.\n\n    Parameters\n'
        "    ----------\n    x : int\n        The first number\n    y : int\n"
        "        The second number\n\n    Returns\n    -------\n    int\n"
        '        The sum of the two numbers\n    """\n    return x + y',
        "code",
    ),
    (
        "dolly:13128",
        'library(dplyr)\n\ndataframe %>%\n    filter(tastiness == "super awesome") %>%\n'
        "    mutate(pct_sugar, total_sugar/mass)",
        "code",
    ),
    ("alpaca:2369", "let array = [1,2,3,4,5,6,7,8,9,10];", "code"),
    # json
    ("alpaca:36169", "[1, 2, 3, 4, 5, 6, 7, 8]", "json"),
    (
        "alpaca:12341",
        '{\n    "name": "Joe Smith",\n    "age": 33,\n    "occupation": "Software Developer"\n}',
        "json",
    ),
    (
        "dolly:6922",
        '[\n  "Roman calendar",\n  "Bronze Age Egyptian calendar",\n  "Sumerian calendar",\n'
        '  "Vedanga calendar",\n  "Babylonian calendar",\n  "Zoroastrian calendar",\n'
        '  "Hebrew calendar"\n]',
        "json",
    ),
    # table
    (
        "alpaca:49325",
        "Celsius | Fahrenheit\n------- | ----------\n0      | 32\n10     | 50",
        "table",
    ),
    (
        "alpaca:13417",
        "| C min | G min | F maj | B♭ maj |\n| :---: | :---: | :---: | :---: |\n"
        "| C4    | G3    | F4    | B♭4   |",
        "table",
    ),
    (
        "dolly:8833 (start)",
        "#\tCountry (or dependency)\tPopulation (2020)\n1\tChina\t1,439,323,776\n"
        "2\tIndia\t1,380,004,385\n3\tUnited States\t331,002,651",
        "table",
    ),
    # numbered_list
    (
        "alpaca:13145",
        "1. Affluent\n2. Well-off\n3. Wealthy\n4. Opulent\n5. Prosperous",
        "numbered_list",
    ),
    (
        "dolly:4594",
        "Here is a list of Marvel Cinematic Universe films in which the character Thanos makes "
        "an appearance:\n1. The Avengers (2012)\n2. Guardians of the Galaxy (2014)\n"
        "3. Avengers: Age of Ultron (2015)\n4. Avengers: Infinity War (2018)\n"
        "5. Avengers: Endgame (2019)",
        "numbered_list",
    ),
    (
        "dolly:13703 (start)",
        "1) Repaint your walls with a neutral color.\n"
        "2) Install a peel and stick modern backsplash in your kitchen\n"
        "3) Use peel and stick vinyl flooring on bathroom",
        "numbered_list",
    ),
    (
        "dolly:136 (start)",
        "1.\tIndividuals, couples, or groups compete in the sport of figure skating on ice. When "
        "it was played at the 1908 Olympics in London, it became the first winter sport to be "
        "featured in the Olympic Games.\n2.\tMen's singles, women's singles, pair skating, and "
        "ice dancing are the Olympic disciplines. In addition, the four individual disciplines "
        "are merged into a team event, which debuted in the Winter Olympics in 2014.",
        "numbered_list",
    ),
    # bullet_list
    ("dolly:7173", "* Lights of Seoul\n* Atlantis Princess\n* Milky Way", "bullet_list"),
    ("dolly:3963", "• Bill Rasmussen\n• Scott Rasmussen", "bullet_list"),
    (
        "alpaca:44082 (start)",
        "Pros of using Wordpress for blogging:\n- Easy to setup and use.\n"
        "- Includes a wide range of plugins and themes to help customize the look and feel of "
        "your blog.",
        "bullet_list",
    ),
    ("dolly:6993", "-Very dry\n-Little coverage by plants", "bullet_list"),
    # short_answer
    ("alpaca:51810", "Positive", "short_answer"),
    ("dolly:4783", "Portugal", "short_answer"),
    ("alpaca:906", "48", "short_answer"),
    ("alpaca:29940", "Limerick.", "short_answer"),
    ("alpaca:37451", "Herbert of Warwick.", "short_answer"),
    ("alpaca:48335", "Serene, tranquil, and peaceful.", "short_answer"),
    ("dolly:11628", "H. G. Wells", "short_answer"),
    ("alpaca:49751", "Bubble Sort and Quick Sort.", "short_answer"),
    ("alpaca:15970", "x = 0", "short_answer"),
    # sentence
    ("alpaca:117", "The house was on fire.", "sentence"),
    ("alpaca:7851", "The cat scratches the carpet.", "sentence"),
    ("alpaca:2187", "Today is a good day", "sentence"),
    ("alpaca:36588", "She won the award?", "sentence"),
    (
        "alpaca:7925",
        "The French Revolution was a period of social and political upheaval in France from "
        "1789 to 1799.",
        "sentence",
    ),
    (
        "dolly:12083",
        "An archipelago is a grouping, or clustering, of islands.",
        "sentence",
    ),
    (
        "dolly:11760",
        "Five NHL teams in the Eastern Conference are the Tampa Bay Lightning, Boston Bruins, "
        "Toronto Maple Leafs, New York Rangers, and Carolina Hurricanes",
        "sentence",
    ),
    # paragraph
    (
        "dolly:1134",
        "Operons are clusters of genes that share the same promoter. They occur mainly in "
        "prokaryotes and some lower eukaryotes such as Caenorhabditis elegans.",
        "paragraph",
    ),
    (
        "alpaca:10502",
        "No. The sentence should be: I have been learning English for twenty years.",
        "paragraph",
    ),
    ("alpaca:46163", "cat: noun\nenvironment: noun", "paragraph"),
    (
        "alpaca:30944",
        "The syntax for forEach is incorrect. The function should be passed as a parameter with "
        "two parentheses following it. The correct syntax is: "
        "fruits.forEach((x) => console.log(`I love ${x}`));",
        "paragraph",
    ),
    (
        "dolly:9476",
        "For home cooking and a real American diner experience,\nHeidi's Pancake house;\n"
        "Bert's Cafe;\nErnie's Coffee Shop;\nDriftwood Cafe;\nThe Red Hut Cafe",
        "paragraph",
    ),
    (
        "dolly:10920",
        "Siamese = Cat\nRagdoll = Cat\nYorkshire Terrier = Dog\nBirman = Cat\n"
        "Cocker Spaniel = Dog\nSaint Bernard = Dog",
        "paragraph",
    ),
    # multi_paragraph
    (
        "dolly:4539",
        "Its (without an apostrophe) indicates possession. Contrary to common possession rules "
        "in English, the apostrophe is dropped in its.\n\nIt's is a contraction, a shortened form "
        "of it is or it has.",
        "multi_paragraph",
    ),
    (
        "dolly:12631",
        "Hello,\n\nThank you for your message. I’m currently happy where I am but hope to "
        "reconnect in the future. Best of luck to you on the search.\n\nWith gratitude,",
        "multi_paragraph",
    ),
]


def label(text: str | None) -> str:
    return str(response_formats(pa.array([text], pa.string()))[0].as_py())


def test_registered_under_its_recipe_key() -> None:
    assert get_stage("response_format") is ResponseFormat
    assert ResponseFormat.name == "response_format_v1" and ResponseFormat.kind == "map"


@pytest.mark.parametrize(("where", "text", "expected"), REAL, ids=[r[0] for r in REAL])
def test_real_answers(where: str, text: str, expected: str) -> None:
    assert label(text) == expected


def test_every_label_is_covered_by_real_answers() -> None:
    assert {expected for _, _, expected in REAL} == set(LABELS)


def test_labels_of_a_whole_table_match_one_by_one() -> None:
    # The vectorized pass over a column gives each row the label it gets alone.
    texts = [text for _, text, _ in REAL]
    together = response_formats(pa.array(texts, pa.string())).to_pylist()
    assert together == [expected for _, _, expected in REAL]


@pytest.mark.parametrize(
    "text", [None, "", "   ", "\n\n\t", "<nooutput>", "<No output>", " <noinput> "]
)
def test_no_answer_is_empty(text: str | None) -> None:
    assert label(text) == "empty"


def test_stage_adds_a_string_column_and_keeps_every_row() -> None:
    table = records_table(
        [
            {"instruction": "List three colors.", "output": "- red\n- green\n- blue"},
            {"instruction": "Capital of France?", "output": "Paris"},
            {"instruction": "Say nothing.", "output": ""},
        ]
    )
    kept, rejected = ResponseFormat().run(table)
    assert rejected.num_rows == 0 and kept.num_rows == 3
    assert kept.schema.field("response_format").type == pa.string()
    assert kept.column("response_format").to_pylist() == ["bullet_list", "short_answer", "empty"]
    assert kept.select(table.column_names).equals(table)  # nothing else changes


def test_a_null_output_is_empty() -> None:
    table = records_table([{"instruction": "q", "output": "Yes"}])
    nulled = table.set_column(
        table.column_names.index("output"), "output", pa.array([None], pa.string())
    )
    assert ResponseFormat().transform(nulled).column("response_format").to_pylist() == ["empty"]


def test_conversations_are_labelled_by_their_last_assistant_turn() -> None:
    chat = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Steps to boil an egg?"},
        {"role": "assistant", "content": "1. Boil water.\n2. Add the egg.\n3. Wait 8 minutes."},
        {"role": "user", "content": "And the capital of Peru?"},
        {"role": "assistant", "content": "Lima"},
        {"role": "user", "content": "Thanks!"},
    ]
    no_answer = [{"role": "user", "content": "Hello?"}]
    table = records_table(
        [
            # output holds the first exchange's answer: the last assistant turn wins
            {"instruction": "", "messages": chat, "output": "1. Boil water.\n2. Add the egg."},
            # no assistant turn: the output stands
            {"instruction": "", "messages": no_answer, "output": "The answer is no."},
            {"instruction": "plain", "output": "It is red. It is round."},
        ]
    )
    labels = ResponseFormat().transform(table).column("response_format").to_pylist()
    assert labels == ["short_answer", "sentence", "paragraph"]
    assert answer_text(table, "output").to_pylist() == [
        "Lima",
        "The answer is no.",
        "It is red. It is round.",
    ]
    # A slice (offsets not from 0) picks the same turns.
    assert answer_text(table.slice(1), "output").to_pylist() == [
        "The answer is no.",
        "It is red. It is round.",
    ]
    assert ResponseFormat().transform(table.slice(0, 1)).column("response_format").to_pylist() == [
        "short_answer"
    ]


def test_field_param_labels_another_field() -> None:
    table = records_table(
        [{"instruction": "q", "output": "42", "rationale": "- 40 apples\n- 2 pears"}]
    )
    out = ResponseFormat(field="rationale").transform(table)
    assert out.column("response_format").to_pylist() == ["bullet_list"]
    # A conversation stands for the output only: another field is labelled as it is.
    chat = [
        {"role": "user", "content": "Name a color."},
        {"role": "assistant", "content": "- red\n- blue"},
    ]
    table = records_table(
        [{"instruction": "Which color do you like best?", "messages": chat, "output": "red"}]
    )
    assert ResponseFormat().transform(table).column("response_format").to_pylist() == [
        "bullet_list"
    ]
    by_instruction = ResponseFormat(field="instruction").transform(table)
    assert by_instruction.column("response_format").to_pylist() == ["sentence"]
    with pytest.raises(StageError, match="field"):
        ResponseFormat(field="source")


def test_deterministic_and_independent_of_batching_and_order() -> None:
    rows = [{"instruction": f"q{i}", "output": text} for i, (_, text, _) in enumerate(REAL)]
    table = records_table(rows)
    first = ResponseFormat().run(table).kept
    assert first.equals(ResponseFormat().run(table).kept)
    parts = [ResponseFormat().run(table.slice(start, 5)).kept for start in range(0, len(rows), 5)]
    assert pa.concat_tables(parts).equals(first)
    reversed_labels = (
        ResponseFormat()
        .run(table.take(pa.array(range(len(rows) - 1, -1, -1))))
        .kept.column("response_format")
        .to_pylist()
    )
    assert reversed_labels[::-1] == first.column("response_format").to_pylist()


def test_empty_table() -> None:
    kept = ResponseFormat().run(RECORD_SCHEMA.empty_table()).kept
    assert kept.num_rows == 0 and kept.schema.field("response_format").type == pa.string()


def test_manifest_counts_labels_over_batches() -> None:
    table = records_table(
        [{"instruction": f"q{i}", "output": text} for i, (_, text, _) in enumerate(REAL)]
    )
    stage = ResponseFormat()
    for start in range(0, table.num_rows, 7):
        stage.run(table.slice(start, 7))
    expected = Counter(expected for _, _, expected in REAL)
    info = stage.manifest_info()
    assert info == {"formats": {name: expected[name] for name in LABELS if expected[name]}}
    assert list(info["formats"]) == [name for name in LABELS if expected[name]]


def test_windows_line_ends_are_newlines() -> None:
    assert label("1. one\r\n2. two") == "numbered_list"
    assert label("First part.\r\n\r\nSecond part.") == "multi_paragraph"


def test_rule_boundaries() -> None:
    # five words are a short answer, six a sentence; 40 words a sentence, 41 a paragraph
    assert label("Mount Everest in the Himalayas") == "short_answer"
    assert label("Mount Everest in the great Himalayas") == "sentence"
    assert label(" ".join(["word"] * 40)) == "sentence"
    assert label(" ".join(["word"] * 41)) == "paragraph"
    # one list line is no list; "1.5" and years are no markers
    assert label("1. Buy fresh milk at the corner store") == "sentence"
    assert label("1.5 million people.\n2019 was the year.") == "paragraph"
    # abbreviations and initials end no sentence
    assert label("Dr. Smith met J. K. Rowling in St. Louis, e.g. at a talk.") == "sentence"
    # JSON-looking text that does not parse is not json
    assert label("[Adjective, Noun, Verb]") == "short_answer"
    # a table needs its separator line
    assert label("a | b\nc | d") == "paragraph"
    assert pc.all(pc.is_in(response_formats(pa.array(["x"])), pa.array(LABELS))).as_py()
