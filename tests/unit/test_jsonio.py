"""JSON files: parsed to the values the standard library gives, checked for finite numbers on request, written
byte for byte as json.dumps writes them."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from wsovvis import jsonio
from wsovvis.errors import InputError


def test_json_parses_to_the_values_the_standard_library_gives(tmp_path: Path) -> None:
    # The fast parser must not change a score's last bit, an integer's size or which duplicate key wins.
    text = (
        '{"f": [0.1, 2.2250738585072011e-308, 4.9406564584124654e-324, 1.7976931348623157e308, -0.0, 1E5,'
        ' 0.30000000000000004, 123456789.123456789123456789e-5], "i": [0, -0, 123456789012345678901234567890],'
        ' "s": ["a\\u0000b", "\\ud83d\\ude00", "\\u00e9"], "dup": 1, "dup": 2, "n": [true, false, null]}'
    )
    (tmp_path / "v.json").write_text(text)
    parsed = jsonio.read_json(tmp_path / "v.json", finite=True)
    assert repr(parsed) == repr(json.loads(text))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"a": NaN}', "holds a number that is not finite"),
        (b'{"a": -1e999}', "holds a number that is not finite"),
        (b'{"a": 1,}', "not valid JSON"),
        (b'{"a": "\xff"}', "not valid JSON"),
    ],
)
def test_json_that_is_not_finite_or_not_json_is_an_input_error(
    tmp_path: Path, content: bytes, message: str
) -> None:
    (tmp_path / "bad.json").write_bytes(content)
    with pytest.raises(InputError, match=f"bad.json: {message}"):
        jsonio.read_json(tmp_path / "bad.json", finite=True)


def test_json_the_standard_library_accepts_still_parses(tmp_path: Path) -> None:
    # What the fast parser refuses goes to the standard library's: a byte order mark, a lone surrogate, NaN
    # where finiteness is not asked for.
    (tmp_path / "bom.json").write_bytes(b'\xef\xbb\xbf{"a": 1}')
    (tmp_path / "lone.json").write_text('["\\udc80"]')
    (tmp_path / "nan.json").write_text('{"a": NaN}')
    assert jsonio.read_json(tmp_path / "bom.json") == {"a": 1}
    assert jsonio.read_json(tmp_path / "lone.json") == ["\udc80"]
    assert jsonio.read_json(tmp_path / "nan.json")["a"] != jsonio.read_json(tmp_path / "nan.json")["a"]


def _random_json_value(rng: random.Random, depth: int = 0) -> object:
    draw = rng.random()
    if depth > 3 or draw < 0.5:
        text = "".join(chr(rng.choice([rng.randint(32, 126), rng.randint(0, 0x10FFFF)])) for _ in range(4))
        scalars = [rng.random() * 10 ** rng.randint(-320, 308), -0.0, 1e-7, rng.randint(-(2**70), 2**70)]
        return rng.choice([*scalars, True, None, text])
    if draw < 0.75:
        return [_random_json_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {
        str(_random_json_value(rng, 4)): _random_json_value(rng, depth + 1) for _ in range(rng.randint(0, 4))
    }


@pytest.mark.parametrize("indent", [2, None])
def test_json_is_written_as_the_standard_library_writes_it(tmp_path: Path, indent: int | None) -> None:
    # Indented text comes from the C encoder's compact text laid out again; the bytes are json.dumps's.
    rng = random.Random(7)
    for _ in range(500):
        value = _random_json_value(rng)
        assert jsonio.dumps_json(value, indent=indent) == json.dumps(value, indent=indent).encode()
    special = {"loss": [float("nan"), float("inf")], "k": {1: "é"}}
    assert jsonio.dumps_json(special, indent=indent) == json.dumps(special, indent=indent).encode()
    jsonio.write_json(tmp_path / "m.json", special, indent=indent)
    assert (tmp_path / "m.json").read_bytes() == json.dumps(special, indent=indent).encode() + b"\n"
