"""The replies that carry no advice: urgent, out of scope, and not covered.

An urgent reply names what the patient mentioned and what to do now (the flag's own action, with
the clinic's emergency wording); it never carries passages or rehab advice. An out-of-scope reply
says why and who to ask. A not-covered reply says what the sources lack, in the patient's words,
and what the assistant can help with; any quote after it comes from the composer and is checked
like any answer. None of these sentences is advice.

>>> from assistant.safety.rules import load_rules
>>> print(not_covered_reply(["Running as rehab"], missing="shockwave therapy").splitlines()[0])
My sources don't mention shockwave therapy, and I won't guess. A physiotherapist can advise you on it.
"""

from __future__ import annotations

from assistant.answer import Triage
from assistant.safety.rules import Rules

_UNKNOWN_FLAG_ACT = (
    "Go to an emergency department now, or call {emergency}. This should not wait for a routine appointment."
)


def _rule_name(triage: Triage) -> str:
    return triage.rule.split(":", 1)[1] if ":" in triage.rule else ""


def urgent_reply(triage: Triage, rules: Rules, emergency_contact: str) -> str:
    """What to do now, in plain words; no rehab advice and no passages."""
    flag = rules.flag(_rule_name(triage))
    what = flag.reply_what if flag else "a warning sign"
    reason = "a history of cancer" if "cancer" in triage.matched else "weight loss you can't explain"
    act = (flag.action if flag else _UNKNOWN_FLAG_ACT).format(emergency=emergency_contact, reason=reason)
    steps = f"- {act}\n"
    if flag is not None and not flag.emergency:  # same-day care, unless it gets worse
        steps += (
            f"- If it is severe, sudden or getting worse, call {emergency_contact} or go to an "
            "emergency department now.\n"
        )
    return (
        "**Please seek medical care now.**\n\n"
        f"You mentioned {what}. With buttock, thigh or back pain this can be a sign of a problem "
        "that needs a doctor urgently, not exercises.\n\n"
        f"{steps}\n"
        "Please don't wait to see whether it settles, and don't start or continue rehab exercises "
        "until a clinician has checked you."
    )


def covered_list(topics: list[str], fallback: str) -> str:
    return ", ".join(topics) if topics else fallback


def out_of_scope_reply(triage: Triage, rules: Rules, topics: list[str]) -> str:
    """Why the question is not answered, and who to ask instead."""
    covered = covered_list(topics, "proximal hamstring tendinopathy and returning to running")
    if triage.rule.startswith(("clinician-only:", "exemplar:clinician-")):
        decision = rules.decision(_rule_name(triage).removeprefix("clinician-"))
        what = decision.topic if decision else "this decision"
        who = decision.who_to_ask if decision else "your physiotherapist or doctor"
        return (
            f"Questions about {what} need a clinician who knows your history, so I won't answer them. "
            f"Please ask {who}.\n\n"
            f"I can share what my sources say about: {covered}."
        )
    return (
        "I can only help with questions about proximal hamstring tendinopathy (high hamstring "
        "tendon pain), hamstring rehab and running with it, so I can't answer this one. For other "
        "health worries please ask your doctor or pharmacist; for anything else, a general search "
        "or assistant is a better place.\n\n"
        f"My sources cover: {covered}."
    )


def not_covered_reply(topics: list[str], *, missing: str = "", nearest: str = "") -> str:
    """The sources don't answer: say what they lack (``missing``, in the patient's words: "don't
    mention shockwave therapy", or ``missing`` as an indirect question: "how long PHT takes to
    heal"), and what the assistant can help with. ``nearest`` is a quoted block of the closest thing
    the sources do say, already composed and checked; it follows a line that frames it as such."""
    covered = covered_list(topics, "proximal hamstring tendinopathy")
    if missing.startswith(("how ", "when ", "what ", "which ", "whether ", "why ", "who ")):
        head = f"My sources don't say {missing}"
    elif missing:
        head = f"My sources don't mention {missing}"
    else:
        head = "My sources don't answer this"
    text = f"{head}, and I won't guess. A physiotherapist can advise you on it."
    if nearest:
        text += f"\n\nThe closest thing they say, quoted as written:\n\n{nearest}"
    return f"{text}\n\nWhat I can help with: {covered}."
