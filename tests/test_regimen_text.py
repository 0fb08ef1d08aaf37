"""The regimen language: every documented example, malformed input, and fuzzing (never a traceback)."""

from __future__ import annotations

import contextlib
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ketaplan.errors import InputError
from ketaplan.regimen.text import load_regimen, parse_regimen


def single(text):
    (e,) = parse_regimen(text).events
    return e


def test_continuous_infusion():
    e = single("20 mg/h IV for 5 d")
    assert (e.rate, e.amount, e.route, e.addl) == (20.0, 2400.0, "iv", 0)


def test_repeated_courses():
    e = single("20 mg/h IV for 5 d every 11 weeks x 4")
    assert (e.rate, e.infusion_hours, e.ii, e.addl) == (20.0, 120.0, 1848.0, 3)


def test_weight_based_daily_infusions_with_cap():
    r = parse_regimen("0.35 mg/kg/h IV for 4 h daily x 10 days (max 25 mg/h)")
    (e,) = r.events
    assert e.per_kg and e.rate == 0.35 and e.infusion_hours == 4.0 and e.ii == 24.0 and e.addl == 9
    assert e.max_rate == 25.0
    assert r.resolve(60).events[0].rate == pytest.approx(21.0)
    assert r.resolve(90).events[0].rate == pytest.approx(25.0)


def test_bolus_over_one_minute():
    e = single("0.5 mg/kg IV bolus over 1 min")
    assert e.per_kg and e.amount == 0.5 and e.duration == pytest.approx(1 / 60)


def test_oral_every_8_hours_for_14_days():
    e = single("50 mg PO q8h for 14 d")
    assert (e.amount, e.route, e.ii, e.addl + 1) == (50.0, "oral", 8.0, 42)


def test_intranasal_single_dose():
    e = single("25 mg IN")
    assert (e.amount, e.route, e.ii) == (25.0, "intranasal", 0.0)


def test_s_ketamine_form():
    r = parse_regimen("S-ketamine 0.2 mg/kg/h IV for 100 h")
    assert r.drug == "s-ketamine" and r.events[0].per_kg and r.events[0].infusion_hours == 100.0


def test_titration_steps():
    r = parse_regimen("10 mg/h IV titrate +5 mg/h every 2 h to 40 mg/h")
    assert [e.rate for e in r.events] == [10, 15, 20, 25, 30, 35, 40]
    assert [e.time for e in r.events] == [0, 2, 4, 6, 8, 10, 12]
    assert r.notes and "add 'for <duration>'" in r.notes[0]
    full = parse_regimen("10 mg/h IV titrate +5 mg/h every 2 h to 40 mg/h for 5 d")
    assert full.events[-1].infusion_hours == pytest.approx(120 - 12)
    assert full.total_amount() == pytest.approx(2 * (10 + 15 + 20 + 25 + 30 + 35) + 40 * 108)


def test_topical_cream():
    r = parse_regimen("topical 10% cream 1 g tid")
    (e,) = r.events
    assert (e.route, e.amount, e.ii, e.addl + 1) == ("topical", 100.0, 8.0, 3)
    assert "one day" in r.notes[0]


def test_start_date_and_clock_time():
    r = parse_regimen("20 mg/h IV for 5 d starting 2026-12-01 09:00")
    assert r.start == datetime(2026, 12, 1, 9, 0)


def test_parts_salt_and_offsets():
    r = parse_regimen("25 mg IN; 100 mg ketamine HCl PO q8h for 3 d at 24 h")
    assert [e.route for e in r.events] == ["intranasal", "oral"]
    assert r.events[1].time == 24.0 and r.events[1].amount == pytest.approx(100 * 237.73 / 274.19)
    assert r.events[1].addl + 1 == 9


@pytest.mark.parametrize(("text", "word", "expected"), [
    ("20 mg/h IVV for 5 d", "word 3 'IVV'", "expected a route"),
    ("twenty mg IV", "word 1 'twenty'", "expected a dose"),
    ("20 furlongs IV", "word 1 '20 furlongs'", "expected an amount"),
    ("20 mg/h IV for 5 d x 4", "word 7 'x'", "'every <interval>'"),
    ("20 mg/h IV for 5 d starting 2026-13-01", "word 8 '2026-13-01'", "a date YYYY-MM-DD"),
    ("0.35 mg/kg/h IV for 4 h daily x 10 days (min 25 mg/h)", "word 11 'min'", "'max'"),
    ("20 mg/h IV for 5 d every", "text ends", "an interval after 'every'"),
])
def test_errors_point_at_the_offending_word(text, word, expected):
    with pytest.raises(InputError) as info:
        parse_regimen(text)
    message = str(info.value)
    assert word in message and expected in message
    assert message.count("\n") == 0


@pytest.mark.parametrize(("text", "message"), [
    ("20 mg/h IV", "needs its length"),
    ("20 mg IV for 5 d", "needs a repeat"),
    ("", "empty"),
    ("racemic 25 mg IN; S-ketamine 25 mg IN", "mixes racemic ketamine and S-ketamine"),
    ("10 mg/h IV titrate +5 mg/h every 2 h to 5 mg/h", "target rate must not be below"),
])
def test_meaningless_regimens_are_refused(text, message):
    with pytest.raises(InputError, match=message):
        parse_regimen(text)


WORDS = ["20", "0.5", "mg", "mg/h", "mg/kg/h", "ug", "IV", "PO", "IN", "SL", "topical", "for", "every", "x", "4",
         "5", "d", "h", "weeks", "daily", "tid", "q8h", "bolus", "over", "min", "titrate", "+5", "to", "(max", "25",
         "mg/h)", ";", "starting", "2026-12-01", "09:00", "S-ketamine", "HCl", "10%", "cream", "1", "g", "at", "-3",
         "nan", "1e9", "µg", "∞", "mg/", "/h", "0"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(WORDS), min_size=0, max_size=14))
def test_fuzzed_word_salad_gives_a_clear_error_or_a_regimen(words):
    text = " ".join(words)
    try:
        parse_regimen(text)
    except InputError as exc:
        assert str(exc).startswith("regimen: got ") and "\n" not in str(exc)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_fuzzed_text_never_raises_anything_but_input_error(text):
    with contextlib.suppress(InputError):
        parse_regimen(text)


def test_yaml_regimen_file(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text("drug: racemic\nstart: 2026-12-01 09:00\ndoses:\n  - 20 mg/h IV for 5 d every 11 weeks x 4\n"
                    "  - {text: 25 mg IN, at: 2 h}\n")
    r = load_regimen(str(path))
    assert r.start == datetime(2026, 12, 1, 9, 0)
    assert [e.route for e in r.events] == ["iv", "intranasal"] and r.events[1].time == 2.0
    bad = tmp_path / "bad.yaml"
    bad.write_text("doses: []\n")
    with pytest.raises(InputError, match="needs a 'doses' list"):
        load_regimen(str(bad))
