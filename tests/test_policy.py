"""Knowledge as data: the red flags, clinician-only decisions, scope and vocabulary files are
validated when loaded, every flag names its clinical source, and the recipe for adding a red flag
(docs/architecture.md) works as written. No model: these are fast."""

from __future__ import annotations

import textwrap

import pytest

from assistant import Status, policy
from assistant.answer import Triage
from assistant.errors import PolicyInvalid
from assistant.safety.replies import urgent_reply
from assistant.safety.rules import load_rules
from assistant.safety.triage import triage_rules

RULES = load_rules()


def test_every_packaged_flag_has_a_source_a_reply_and_an_explicit_priority():
    assert [f.priority for f in RULES.flags] == sorted(f.priority for f in RULES.flags)
    assert len({f.priority for f in RULES.flags}) == len(RULES.flags)
    for flag in RULES.flags:
        assert flag.sources and all(s.strip() for s in flag.sources), flag.name
        assert flag.look_for and flag.may_mean and flag.reply_what and flag.action
    for decision in RULES.decisions:
        assert decision.why and decision.who_to_ask and decision.topic


@pytest.mark.parametrize("flag", [f.name for f in RULES.flags])
def test_every_example_phrasing_of_a_flag_is_caught_by_triage(flag):
    """The examples a reviewer reads are caught: by the rules, or by the example layer (which the
    integration tests cover with the model); here, the rules must catch at least one of them."""
    examples = RULES.flag(flag).examples
    caught = [e for e in examples if (found := RULES.red_flag(e)) and found[0].name == flag]
    assert caught, f"no example of {flag} is caught by its rules"


def _extension(tmp_path, text: str):
    folder = tmp_path / "policy"
    folder.mkdir()
    (folder / "red_flags.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    return folder


FLAG = """
    flags:
      - name: compartment-syndrome
        priority: 10
        look_for: severe, rising pain in the back of the thigh after an injury, tight and hard to touch
        may_mean: acute compartment syndrome, which can damage muscle and nerves within hours
        sources:
          - 'BMJ Best Practice: Acute compartment syndrome of the extremities'
        emergency: true
        reply_what: severe pain with a tight, hard thigh after an injury
        action: 'Go to an emergency department now, or call {emergency}.'
        patterns:
          - '\\bthigh\\b{gap}{0,30}\\b(rock hard|hard as a rock|tight as a drum)\\b'
        symptom_words: '\\b(rock hard|hard as a rock|tight as a drum)\\b'
        examples:
          - 'my thigh is rock hard and the pain keeps rising since the tackle'
"""


def test_the_recipe_for_adding_a_red_flag_works(tmp_path):
    """docs/architecture.md, "How to add a red flag": one YAML entry with its source, in the
    packaged file or a clinic's policy folder. Nothing else changes."""
    rules = load_rules(_extension(tmp_path, FLAG))
    assert rules.flags[-1].name == "compartment-syndrome" and len(rules.flags) == len(RULES.flags) + 1
    decision = triage_rules("since the tackle my thigh is rock hard and I can't straighten it", rules=rules)
    assert decision.decision == "urgent" and decision.rule == "red-flag:compartment-syndrome"
    reply = urgent_reply(decision, rules, "999")
    assert "severe pain with a tight, hard thigh" in reply and "call 999" in reply
    assert triage_rules("my thigh is not rock hard at all, just sore", rules=rules).decision == "continue"
    assert RULES.flag("compartment-syndrome") is None  # the packaged rules are untouched


def test_a_flag_without_a_source_is_refused(tmp_path):
    no_source = FLAG.replace(
        "        sources:\n          - 'BMJ Best Practice: Acute compartment syndrome of the extremities'\n", "        sources: []\n"
    )
    with pytest.raises(PolicyInvalid, match="compartment-syndrome.*sources"):
        load_rules(_extension(tmp_path, no_source))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.replace("priority: 10", "priority: 1"), "priority"),
        (lambda t: t.replace("{gap}", "{nowhere}"), "nowhere"),
        (lambda t: t.replace("(rock hard|", "(rock [hard|", 1), "regular expression"),
        (lambda t: t.replace("        emergency: true\n", ""), "emergency"),
        (lambda t: t.replace("call {emergency}", "call someone"), "emergency"),
    ],
)
def test_a_flawed_flag_stops_the_start_with_a_sentence_naming_it(tmp_path, change, message):
    with pytest.raises(PolicyInvalid, match=message):
        load_rules(_extension(tmp_path, change(FLAG)))


def test_a_clinic_policy_folder_extends_scope_and_vocabulary(tmp_path):
    folder = tmp_path / "policy"
    folder.mkdir()
    (folder / "scope.yaml").write_text("topic_examples:\n  - 'is hydrotherapy good for my hamstring tendon'\n")
    merged = policy.load("scope", folder)
    assert merged["topic_examples"][-1] == "is hydrotherapy good for my hamstring tendon"
    assert len(merged["topic_examples"]) == len(policy.load("scope")["topic_examples"]) + 1
    assert "gates" in merged  # what the clinic did not name is kept


def test_a_missing_policy_folder_is_a_sentence_not_a_traceback(tmp_path):
    with pytest.raises(PolicyInvalid, match="does not exist"):
        policy.load("scope", tmp_path / "nowhere")


def test_urgent_replies_name_what_the_patient_said_and_what_to_do():
    reply = urgent_reply(Triage(decision="urgent", rule="red-flag:dvt"), RULES, "112")
    assert RULES.flag("dvt").reply_what in reply and "112" in reply


def test_triage_of_a_calm_question_goes_on():
    assert triage_rules("are calf raises ok with PHT?").decision == "continue"
    assert Status.urgent.value == "urgent"
