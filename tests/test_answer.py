"""The answerer's question analysis and answer-slot rules (no model, no index)."""

from __future__ import annotations

import pytest

from qa.answer import _variant, answer_nouns, expected_type, focus_term, slot_values

TOPIC = frozenset({"china", "russia"})


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("In what year was the forum started?", "date"),
        ("Over which dates did the drill run?", "date"),
        ("On which day was the contract sealed?", "date"),
        ("What trade figure did they aim for?", "number"),
        ("What was the value of the currency deal?", "number"),
        ("What was the vote count on the resolution?", "number"),
        ("How close did the zone come to the island?", "number"),
        ("What was the name of the expert?", "name"),
        ("Who chairs the organization?", "name"),
        ("In which city will the events be held?", "place"),
        ("Where will it be held?", "place"),
        ("Why did Russia turn to China?", None),
        ("How did Tokyo officially react to the joint naval drill?", "reaction"),
        ("How did the Russian leader react when his counterpart proposed it?", "reaction"),
        ("What did the European Union say about the gas agreement?", "reaction"),
        ("How did the exercise take place?", None),
    ],
)
def test_expected_type(question, kind):
    assert expected_type(question) == kind


def test_answer_nouns_are_framing_not_content():
    assert answer_nouns("What trade figure did they aim to reach?") == {"figur"}
    assert answer_nouns("What was the value of the deal?") == {"valu"}


@pytest.mark.parametrize(
    ("question", "focus"),
    [
        ("How many sailors took part?", "sailor"),
        ("How many earlier Security Council resolutions had they blocked?", "resolut"),
        ("How many earlier ones had they vetoed?", None),  # the subject is the last turn's
        ("What is the current value of trade between them?", None),  # the kind of answer
        ("Who is the chief executive of the company?", "execut"),
        ("Who was its commander during the exercise?", "command"),
        ("What is the name of the pipeline that will carry the gas?", "pipelin"),
        ("What was the name of the Russian expert who spoke?", "expert"),
        ("How large was the prepayment China made to Gazprom?", "prepay"),
        ("What was the vote count on the draft resolution?", "vote"),  # the thing counted
        ("What is the total value of the deal?", None),
    ],
)
def test_focus_term(question, focus):
    assert focus_term(question) == focus


def test_a_value_the_question_states_fills_no_slot():
    sentence = "The leaders attended the launch of “Joint Sea-2014,” a week-long exercise."
    assert slot_values("date", sentence, "Over which dates did Joint Sea-2014 take place?") == []
    assert slot_values("date", "It ran from May 20 through May 26.", "When in May 2014?") == [
        "May 20",
        "May 26",
    ]
    assert slot_values("number", "They signed 46 agreements.", "How many agreements?") == ["46"]
    # part of a name, not a quantity
    assert slot_values("number", "The UN, G20 and BRICS.", "How many members has the SCO?") == []


def test_name_slot_needs_a_new_name():
    quote = "A Russian expert said on Voice of Russia that Russia and China have advanced."
    question = "What was the name of the Russian expert on Voice of Russia?"
    assert slot_values("name", quote, question, TOPIC) == []  # only the topic and the asked
    cnpc = "Gazprom sealed a contract with China National Petroleum Corporation (CNPC)."
    assert "China National Petroleum Corporation" not in slot_values(
        "name", cnpc, "Who heads CNPC?", TOPIC
    )
    members = "It includes China, Russia, all the Central Asian countries."
    assert slot_values("name", members, "Who is the president of Kazakhstan?", TOPIC) == []
    assert slot_values("name", "As pointed out by Zachary Keck, it depends.", "Who said so?") == [
        "Zachary Keck"
    ]


def test_place_slot():
    sentence = "The exercise took place in the northern waters of the East China Sea."
    assert slot_values("place", sentence, "Where did the exercise take place?") == [
        "East China Sea"
    ]
    events = "In 2015 they will hold memorial events to commemorate the 70th anniversary."
    assert slot_values("place", events, "In which city will the 2015 events be held?") == []
    # a place is new when any of its words is, even one that names the corpus's topic
    drill = "They will hold the drill in the Inner Mongolia Autonomous Region of China."
    assert slot_values("place", drill, "Where will the drill be held?", TOPIC) == [
        "Inner Mongolia Autonomous Region of China"
    ]
    assert slot_values("place", "It was held in China.", "Where was it held?", TOPIC) == []


def test_name_variants():
    assert _variant("russia", "russian")
    assert _variant("china", "chines")
    assert _variant("west", "western")
    assert not _variant("shanghai", "china")
    assert not _variant("may", "march")


def test_reaction_slot_needs_a_reaction_by_whom_was_asked():
    question = "How did the Japanese government officially respond to the exercise?"
    other = "It added, the sea is a sensitive area for China in relation to U.S.-backed Japan."
    assert slot_values("reaction", other, question) == []  # Japan named, not reacting
    assert slot_values("reaction", "Japan’s foreign ministry protested at once.", question) == [
        "protested"
    ]
    putin = "Russian President Vladimir Putin expressed enthusiastic support."
    assert slot_values("reaction", putin, "How did the Russian leader react?") == ["expressed"]
    # nobody named in the question: any reported reaction will do
    assert slot_values("reaction", "President Putin applauded the idea.", "How did he react?") == [
        "applauded"
    ]
