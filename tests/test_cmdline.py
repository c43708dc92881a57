"""Reading the magic line: options anywhere before the prompt, comments, ``?`` endings."""

from __future__ import annotations

import pytest

from ollama_magic.cmdline import split_arguments, split_line_prompt
from ollama_magic.errors import OllamaUsageError
from ollama_magic.magics import OllamaMagics

PARSER = OllamaMagics.ollama.parser


def one_liner(line: str, with_model: bool = True) -> tuple[list[str], str]:
    return split_line_prompt(line, PARSER, with_model=with_model)


def parsed(line: str):
    """What the magic would see: the parsed options and the prompt."""
    argv, prompt = one_liner(line)
    return PARSER.parse_args(argv), prompt


@pytest.mark.parametrize(
    ("line", "argv", "prompt"),
    [
        ("mistral What is 2+2?", ["mistral"], "What is 2+2?"),
        ("mistral --dry-run What is 2+2?", ["--dry-run", "mistral"], "What is 2+2?"),
        ("--dry-run mistral What is 2+2?", ["--dry-run", "mistral"], "What is 2+2?"),
        (
            "mistral -o short -t 0.2 --host http://h:1 Hi there",
            ["-o", "short", "-t", "0.2", "--host", "http://h:1", "mistral"],
            "Hi there",
        ),
        ("-q mistral Hi", ["-q", "mistral"], "Hi"),
        ("mistral -q Hi", ["-q", "mistral"], "Hi"),
        ("mistral --system 'Be brief.' Why?", ["--system", "Be brief.", "mistral"], "Why?"),
        ("mistral -t=0.5 Hi", ["-t=0.5", "mistral"], "Hi"),
        ("mistral -t0.5 Hi", ["-t0.5", "mistral"], "Hi"),
        ("mistral -qt 0.5 Hi", ["-qt", "0.5", "mistral"], "Hi"),
        ("mistral --temp 0.5 Hi", ["--temp", "0.5", "mistral"], "Hi"),
        ("mistral -O num_ctx=8192 -O 'stop=[\"x\"]' Hi", None, "Hi"),
        ("mistral", ["mistral"], ""),
        ("mistral   ", ["mistral"], ""),
        ("mistral -q", ["-q", "mistral"], ""),
    ],
)
def test_options_are_read_wherever_they_stand_before_the_prompt(line, argv, prompt):
    got_argv, got_prompt = one_liner(line)
    if argv is not None:
        assert got_argv == argv
    assert got_prompt == prompt


def test_the_parsed_options_mean_what_the_user_wrote():
    args, prompt = parsed("mistral -o short -t 0.2 --host http://h:1 --dry-run Hi there")
    assert args.models == ["mistral"] and args.out == "short" and args.temperature == 0.2
    assert args.host == ["http://h:1"] and args.dry_run and prompt == "Hi there"
    args, _ = parsed("mistral -O num_ctx=8192 -O 'stop=[\"x\"]' Hi")
    assert args.option == ["num_ctx=8192", 'stop=["x"]']


def test_the_prompt_is_taken_verbatim():
    argv, prompt = one_liner("""-t 0.2 mistral What's "up",  doc? It's -5 {x} # not a comment""")
    assert argv == ["-t", "0.2", "mistral"]
    assert prompt == """What's "up",  doc? It's -5 {x} # not a comment"""


def test_a_prompt_that_starts_with_a_dash_follows_a_double_dash():
    assert one_liner("mistral -- -5 is negative?") == (["mistral"], "-5 is negative?")
    assert one_liner("mistral -q -- --help me") == (["-q", "mistral"], "--help me")
    assert one_liner("-q -- -5?", with_model=False) == (["-q"], "-5?")


def test_an_unknown_option_says_how_to_start_a_prompt_with_a_dash():
    with pytest.raises(OllamaUsageError) as info:
        one_liner("mistral -5 is negative?")
    message = str(info.value)
    assert "-5" in message and "%ollama mistral -- -5" in message


def test_think_takes_a_level_only_when_one_follows():
    args, prompt = parsed("qwen3 --think high Why?")
    assert (args.think, args.models, prompt) == ("high", ["qwen3"], "Why?")
    args, prompt = parsed("qwen3 --think Why?")
    assert (args.think, args.models, prompt) == (True, ["qwen3"], "Why?")
    args, prompt = parsed("--think qwen3 Why?")  # the model is not taken for a level
    assert (args.think, args.models, prompt) == (True, ["qwen3"], "Why?")


def test_chat_takes_a_name_only_when_written_with_equals():
    args, prompt = parsed("mistral --chat Why is the sky blue?")
    assert (args.chat, args.models, prompt) == ("default", ["mistral"], "Why is the sky blue?")
    args, prompt = parsed("--chat mistral Why?")
    assert (args.chat, args.models, prompt) == ("default", ["mistral"], "Why?")
    args, prompt = parsed("mistral --chat=math Why?")
    assert (args.chat, args.models, prompt) == ("math", ["mistral"], "Why?")
    args, prompt = parsed("-c mistral Why?")
    assert (args.chat, args.models, prompt) == ("default", ["mistral"], "Why?")


def test_without_a_model_the_first_plain_word_starts_the_prompt():
    assert one_liner("-t 0.2 Why is it?", with_model=False) == (["-t", "0.2"], "Why is it?")
    assert one_liner("Why -t?", with_model=False) == ([], "Why -t?")


def test_unbalanced_quotes_before_the_prompt_are_a_usage_error():
    with pytest.raises(OllamaUsageError, match="quotes"):
        one_liner("mistral --system 'unterminated Hi")


def test_cell_magic_line_is_split_like_a_shell():
    assert split_arguments("mistral --system 'You are terse.' -t 0.2") == [
        "mistral",
        "--system",
        "You are terse.",
        "-t",
        "0.2",
    ]


@pytest.mark.parametrize(
    ("line", "argv"),
    [
        ("mistral  # quick question", ["mistral"]),
        ("mistral -t 0.2 #quick", ["mistral", "-t", "0.2"]),
        ("# only a comment", []),
        ("mistral --system 'Use # freely' -O 'stop=[\"#\"]'", None),
        ("mistral --host http://h:1/#frag", ["mistral", "--host", "http://h:1/#frag"]),
        ("mistral --system \\#hash", ["mistral", "--system", "#hash"]),
    ],
)
def test_a_hash_that_starts_a_word_starts_a_comment(line, argv):
    if argv is None:
        argv = ["mistral", "--system", "Use # freely", "-O", 'stop=["#"]']
    assert split_arguments(line) == argv


def test_one_liner_comment_before_the_prompt_ends_the_line_inside_it_is_text():
    assert one_liner("mistral -q # just loading it") == (["-q", "mistral"], "")
    assert one_liner("# nothing") == ([], "")
    assert one_liner("mistral Is #1 the best? # ask") == (["mistral"], "Is #1 the best? # ask")


def test_a_model_check_decides_whether_the_first_word_is_a_model():
    installed = {"mistral", "qwen3:8b"}.__contains__
    assert split_line_prompt("Is -5 negative?", PARSER, with_model=installed) == (
        [],
        "Is -5 negative?",
    )
    assert split_line_prompt("-t 0.2 mistral -q Hi", PARSER, with_model=installed) == (
        ["-t", "0.2", "-q", "mistral"],
        "Hi",
    )
    assert split_line_prompt("--chat Why?", PARSER, with_model=installed) == (["--chat"], "Why?")


def test_an_ambiguous_option_prefix_lists_the_candidates():
    with pytest.raises(OllamaUsageError) as info:
        one_liner("mistral --no Hi")
    assert "--no-think" in str(info.value) and "--no-chat" in str(info.value)


def test_non_ascii_words_and_prompts_keep_their_place():
    line = "mistral --system 'héllo 🌍 wörld' Qu'est-ce que c'est? 🌍"
    assert one_liner(line) == (["--system", "héllo 🌍 wörld", "mistral"], "Qu'est-ce que c'est? 🌍")
    assert split_arguments("mistral --system 'é🌍' # ü") == ["mistral", "--system", "é🌍"]
