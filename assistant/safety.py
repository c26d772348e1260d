"""Triage before retrieval: urgent red flags, questions out of scope, and the replies for both.

Triage never depends on the corpus: a red flag is a red flag whatever the documents say. Each
decision names the rule that made it, for audit. Rules look at the question and at every earlier
user turn, so a flag mentioned before still counts; a flag that is negated ("no numbness") does
not.

>>> from assistant.safety import triage_rules
>>> triage_rules("I suddenly can't control my bladder and my buttock is numb").decision
'urgent'
>>> triage_rules("no numbness, no bladder problems, just a deep ache when I sit").decision
'continue'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from assistant.answer import Triage

# --------------------------------------------------------------------------------------------
# urgent red flags (docs/safety.md lists them with their reasons)


@dataclass(frozen=True)
class Flag:
    name: str
    what: str  # plain words for the reply: "loss of bladder or bowel control"
    patterns: tuple[str, ...]
    needs: tuple[str, ...] = ()  # every one of these must also match (same message)


def _p(*parts: str) -> tuple[str, ...]:
    return parts


RED_FLAGS: tuple[Flag, ...] = (
    Flag(
        "cauda-equina-bladder-bowel",
        "new problems controlling your bladder or bowels",
        _p(
            r"\b(los[st]|losing|lack of|no|can'?t|cannot|unable to|trouble|problems?|difficulty)\b[\w\s',-]{0,20}\b(control|controlling)\b[\w\s',-]{0,15}\b(bladder|bowels?|wee|pee|poo|urine|toilet)",
            r"\b(bladder|bowels?)\b[\w\s',-]{0,25}\b(control|incontinen\w*|leak\w*|accident\w*|retention|won'?t empty|not emptying|problem\w*|issues?|dysfunction|changes?)",
            r"\b(incontinen\w*|wet(ting)? myself|soil(ed|ing)? myself|pee(d|ing)? myself|wet the bed)\b",
            r"\b(leak\w*|dribbl\w*|pass\w*)\b[\w\s',-]{0,12}\b(urine|wee|pee|stool|poo)\b[\w\s',-]{0,25}\b(without (noticing|knowing|feeling)|can'?t (feel|stop|control)|by accident)",
            r"\b(leak\w*|dribbl\w*)\b[\w\s',-]{0,12}\b(urine|wee|pee)\b",
            r"\baccident\w*\b[\w\s',-]{0,15}\b(bowels?|bladder|toilet|pants|myself)\b",
            r"\b(haven'?t|have not|hasn'?t|not)\b[\w\s',-]{0,12}\b(able to|managed to)\b[\w\s',-]{0,6}\b(pee|wee|urinate|pass urine|empty my bladder|poo)\b",
            r"\b(can'?t|cannot|unable to|struggl\w* to|hard to|trouble|difficult\w*)\b[\w\s',-]{0,12}\b(pee|wee|urinate|pass urine|empty my bladder)",
            r"\b(can'?t|cannot|unable to)\b[\w\s',-]{0,10}\b(feel|tell)\b[\w\s',-]{0,20}\b(need|when|whether)\b[\w\s',-]{0,10}\b(pee|wee|toilet|loo|go)\b",
        ),
    ),
    Flag(
        "cauda-equina-saddle",
        "numbness around your groin, bottom or where you sit",
        _p(
            r"\bsaddle\b[\w\s',-]{0,20}\b(numb\w*|anaesthesia|anesthesia|tingl\w*|no feeling|pins and needles)",
            r"\b(numb\w*|no feeling|can'?t feel|tingl\w*|pins and needles)\b[\w\s',-]{0,40}\b(groin|genital\w*|privates|crotch|perineum|between my legs|inner thighs?|bum|butt|buttocks?|bottom|backside|anus|back passage|where i sit|when i wipe|saddle)",
            r"\b(groin|genital\w*|privates|crotch|perineum|between my legs|inner thighs?|bum|butt|buttocks|bottom|backside|anus|back passage|saddle|where i sit|sit on)\b[\w\s',-]{0,50}\b(numb\w*|no feeling|gone dead|feels dead|lost (all )?feeling)",
            r"\bnumb (bum|butt|bottom|backside)\b",
            r"\b(numb\w*|no feeling|tingl\w*)\b[\w\s',-]{0,10}\bdown there\b",
        ),
    ),
    Flag(
        "nerve-weakness",
        "leg weakness that is getting worse, or a foot that drops or drags",
        _p(
            r"\bfoot ?drop\b",
            r"\b(foot|toes?)\b[\w\s',-]{0,15}\b(drop\w*|drag\w*|slap\w*|flop\w*|catch\w* on)",
            r"\b(can'?t|cannot|unable to)\b[\w\s',-]{0,10}\b(lift|raise|pull up|flex)\b[\w\s',-]{0,20}\b(foot|feet|toes|ankle)",
            r"\b(keep|keeps|kept)\b[\w\s',-]{0,6}\b(tripping|stumbling|catching my (foot|toe)s?)\b",
            r"\b(leg|legs|foot|ankle)\b[\w\s',-]{0,25}\b(getting|becoming|growing|more and more|increasingly|progressively)\b[\w\s',-]{0,10}\b(weak\w*|numb\w*|useless)",
            r"\b(weak\w*|wobbly|giving way|gives way|give way|numb\w*)\b[\w\s',-]{0,40}\b(getting worse|spreading|worsening|progress\w*|worse (and worse|each|every|by the)|week by week|day by day)",
            r"\b(progressive|worsening|increasing|spreading)\b[\w\s',-]{0,10}\b(weak\w*|numb\w*)",
            r"\bboth (legs|feet|thighs)\b[\w\s',-]{0,25}\b(weak\w*|numb\w*|tingl\w*|pins and needles|giving way|give way)",
            r"\b(weak\w*|numb\w*|tingl\w*)\b[\w\s',-]{0,20}\bboth (legs|feet|thighs)\b",
        ),
    ),
    Flag(
        "avulsion",
        "a sudden pop or tearing with bruising, or being unable to walk or bear weight",
        _p(
            r"\b(pop(ped)?|snap(ped)?|tear(ing)?|tore|ripp\w*|rip)\b",
        ),
        needs=(
            r"\b(bruis\w*|black and blue|purple|gap|dent|hollow|can'?t (walk|stand|bear weight|put weight)|cannot (walk|stand|bear weight)|unable to (walk|stand|bear weight)|could(n'?t| not) (walk|stand)|swell\w*|huge|massive)\b",
        ),
    ),
    Flag(
        "dvt",
        "a hot, red or swollen calf or thigh, which can be a blood clot",
        _p(
            r"\b(calf|calves|thigh|leg)\b[\w\s',-]{0,30}\b(hot|warm|red|swollen|swelling|tender)\b[\w\s',-]{0,30}\b(hot|warm|red|swollen|swelling|tender|throbbing)\b",
            r"\b(hot|warm|red|swollen)\b[\w\s',-]{0,20}\b(swollen|red|hot|warm)\b[\w\s',-]{0,20}\b(calf|calves|thigh|leg)\b",
            r"\b(calf|calves)\b[\w\s',-]{0,30}\b(swollen|swelling|puffy|bigger|fat)\b",
            r"\b(swollen|swelling|puffy)\b[\w\s',-]{0,20}\b(calf|calves)\b",
            r"\b(blood clot|dvt|thrombosis)\b",
            r"\b(short of breath|breathless\w*|can'?t (catch my )?breath\w*|chest pain|coughing (up )?blood)\b",
        ),
    ),
    Flag(
        "infection",
        "a fever with a hot, swollen or red area",
        _p(r"\b(fever\w*|feverish|temperature|high temp|chills|shiver\w*|rigors|sweats)\b"),
        needs=(r"\b(hot|warm|swollen|swelling|red|redness|pus|throbbing|infect\w*|lump|abscess)\b",),
    ),
    Flag(
        "fracture-trauma",
        "a serious fall or injury, a deformed limb or being unable to bear weight",
        _p(
            r"\b(car (crash|accident)|hit by a car|fell from|fall from|fell off|bad fall|high fall|serious fall)\b",
            r"\b(deform\w*|bent the wrong way|bone sticking out|out of place)\b",
        ),
        needs=(
            r"\b(can'?t|cannot|unable to|could(n'?t| not))\b[\w\s',-]{0,10}\b(walk|stand|bear weight|put (any )?weight)|\b(deform\w*|bent the wrong way|bone sticking out|out of place)\b",
        ),
    ),
    Flag(
        "serious-pathology",
        "pain at night together with weight loss you can't explain, or a history of cancer",
        _p(
            r"\b(night|nights|at night|wakes? me|waking me|woken|in bed)\b",
            r"\b(cancer|tumou?r|malignan\w*|chemo\w*)\b",
        ),
        needs=(
            r"\b(weight loss|losing weight|(lost|dropp\w*|shed)\b[\w\s',-]{0,16}\b(weight|kilos?|kgs?|pounds|lbs|stones?)|(lost|dropp\w*)\b[\w\s',-]{0,10}\d+\s?(kg|kgs|kilos?|lbs?|pounds|stones?)|cancer|tumou?r|malignan\w*|chemo\w*)\b",
        ),
    ),
)

_NEGATION = re.compile(
    r"\b(no|not|never|without|nor|none|denies|deny|don'?t have|do not have|haven'?t had|hasn'?t|isn'?t|wasn'?t|aren'?t|no longer|ruled out|free of)\b"
)
_CLAUSE_BREAK = re.compile(r"[.;!?\n]|,\s*(but|and|just|only|though|however)\b|\bbut\b|\bjust\b|\bonly\b")
_SCOPE_BREAK = re.compile(r"[,.;:!?]|\band\b|\bbut\b")


def normalise(text: str) -> str:
    """Lower case, straight apostrophes, single spaces, common misspellings fixed."""
    t = text.lower().replace("’", "'").replace("‘", "'")
    t = re.sub(r"\bcant\b", "can't", t)
    t = re.sub(r"\bdont\b", "don't", t)
    t = re.sub(r"\b(havent|hasnt|isnt|wasnt|didnt|couldnt|wont)\b", lambda m: m.group(0)[:-1] + "'t", t)
    t = re.sub(r"\bnumbe?ness\b|\bnumbnes\b|\bnumness\b", "numbness", t)
    t = re.sub(r"\bbladdar\b|\bbladeer\b|\bbladder\b", "bladder", t)
    t = re.sub(r"\bbruse\w*|\bbrusing\b", "bruising", t)
    t = re.sub(r"\bwieght\b|\bweigth\b", "weight", t)
    t = re.sub(r"\bcalfs\b", "calves", t)
    t = re.sub(r"\bcan'?t pee properly\b", "can't pee", t)
    return re.sub(r"\s+", " ", t)


def _clauses(text: str) -> list[str]:
    parts = _CLAUSE_BREAK.split(text)
    return [
        p
        for p in parts
        if p and p.strip() and p.strip() not in {"but", "and", "just", "only", "though", "however"}
    ]


def _affirmed(pattern: str, clause: str) -> str:
    """The matched words if ``pattern`` matches ``clause`` and no negation precedes it there."""
    for m in re.finditer(pattern, clause):
        before = _SCOPE_BREAK.split(clause[: m.start()])[-1]  # negation reaches to the last comma
        if not _NEGATION.search(before[-40:]) and not _NEGATION.match(m.group(0)):
            return m.group(0)
    return ""


def find_red_flag(text: str) -> tuple[Flag, str] | None:
    """The first red flag affirmed in ``text``, with the words that matched."""
    norm = normalise(text)
    clauses = _clauses(norm)
    for flag in RED_FLAGS:
        for clause in clauses:
            for pattern in flag.patterns:
                hit = _affirmed(pattern, clause)
                if not hit:
                    continue
                if flag.needs and not all(_affirmed(n, norm) for n in flag.needs):
                    continue
                return flag, hit
    return None


# --------------------------------------------------------------------------------------------
# out of scope: decisions for a clinician, medication, diagnosis of other conditions

_CLINICIAN_RULES: tuple[tuple[str, str, str], ...] = (
    (
        "medication",
        "medicines and doses",
        r"\b(ibuprofen|naproxen|diclofenac|paracetamol|acetaminophen|aspirin|codeine|tramadol|morphine|oxycodone|gabapentin|pregabalin|amitriptyline|nsaids?|anti-?inflammator\w*|painkillers?|pain killers?|pills?|tablets?|medication\w*|medicines?|meds|prescription|prescribed|dosage|doses?|\d+\s?mg|opioids?|muscle relaxants?|steroids?|prednisolone|antibiotics?)\b",
    ),
    (
        "injection",
        "injections",
        r"\b(inject\w*|jab|shot|cortisone|corticosteroid|prp|platelet[- ]rich|steroid|hyaluronic|prolotherapy|botox)\b",
    ),
    (
        "surgery",
        "surgery",
        r"\b(surg\w*|operat(e|ion|ed)|op\b|repair (it|the tendon)|tenotomy|debridement|reattach\w*|surgeon)\b",
    ),
    (
        "stop-treatment",
        "stopping treatment your clinician prescribed",
        r"\b(stop|quit|skip|come off|cut down|double|halve)\b[\w\s',-]{0,25}\b(treatment|pills?|tablets?|meds|medication|physio(therapy)?|prescri\w*|rehab (plan|program\w*) my (physio|doctor))\b",
    ),
    (
        "diagnosis",
        "telling one condition from another",
        r"\b(confirm|tell me|check|work out|say)\b[\w\s',-]{0,20}\b(whether|if)\b[\w\s',-]{0,10}\b(i|it|this)\b[\w\s',-]{0,10}\b(have|has|got|is)\b|\bdiagnose (me|it|this|what)\b",
    ),
    (
        "diagnosis",
        "telling one condition from another",
        r"\b(piriformis|sciatica|bursitis|stress fracture|fracture|slipped disc|disc bulge|herniat\w*|sacroiliac|si joint|arthritis|labral|deep gluteal|ischiofemoral|lumbar|referred pain)\b",
    ),
    (
        "diagnosis",
        "telling one condition from another",
        r"\b(do i have|have i got|could (it|this) be|is (it|this|that) (actually |really )?(a |an )?|diagnos\w*|differential|or is it|is it (sciatica|pirifor\w*|bursitis|a fracture|a disc|cancer))\b[\w\s',-]{0,40}\b(sciatica|piriformis|bursitis|fracture|stress fracture|slipped disc|disc|herniat\w*|arthritis|cancer|tumou?r|nerve|sacroiliac|si joint|hernia|labral|tear|deep gluteal|ischiofemoral|impingement)\b",
    ),
)

# Words that put a question in this domain whatever else it says. Everyday words the domain
# also uses ("run", "calf", "marathon") are left to the similarity gate: "a running toilet" is not.
_SCOPE_WORDS = re.compile(
    r"\b(hamstrings?|tendin\w*|tendon\w*|tendonitis|pht|ischi\w*|sit ?bones?|sitting bones?|glute\w*|buttocks?|butt cheek|rehab\w*|physio\w*)\b"
)


def triage_rules(question: str, history_user_turns: list[str] | None = None) -> Triage:
    """Rule-based triage of the question, with earlier user turns considered for red flags."""
    for text in [question, *(history_user_turns or [])[::-1]]:
        found = find_red_flag(text)
        if found:
            flag, words = found
            where = "question" if text is question else "earlier turn"
            return Triage(decision="urgent", rule=f"red-flag:{flag.name}", matched=f"{words} ({where})")
    norm = normalise(question)
    for name, _, pattern in _CLINICIAN_RULES:
        m = re.search(pattern, norm)
        if m:
            return Triage(decision="out_of_scope", rule=f"clinician-only:{name}", matched=m.group(0))
    return Triage(decision="continue", rule="rules:no-flag")


def on_topic_words(question: str) -> list[str]:
    return [m.group(0) for m in _SCOPE_WORDS.finditer(normalise(question))]


def flag_by_name(name: str) -> Flag | None:
    return next((f for f in RED_FLAGS if f.name == name), None)


def clinician_topic(rule_name: str) -> str:
    return next((what for name, what, _ in _CLINICIAN_RULES if name == rule_name), "this decision")


# --------------------------------------------------------------------------------------------
# replies (no rehab advice, no passages)


def urgent_reply(triage: Triage, emergency_contact: str) -> str:
    flag = flag_by_name(triage.rule.removeprefix("red-flag:"))
    what = flag.what if flag else "a warning sign"
    return (
        "**Please seek medical care now.**\n\n"
        f"You mentioned {what}. Together with buttock, thigh or back pain this can be a sign of a "
        "problem that needs a doctor urgently, not exercises.\n\n"
        f"- If it is severe, sudden or getting worse, call {emergency_contact} or go to an emergency "
        "department now.\n"
        "- Otherwise, contact a doctor today for a same-day assessment.\n\n"
        "Please don't wait to see whether it settles, and don't start or continue rehab exercises "
        "until a clinician has checked you."
    )


def out_of_scope_reply(triage: Triage, topics: list[str]) -> str:
    covered = ", ".join(topics) if topics else "proximal hamstring tendinopathy and returning to running"
    if triage.rule.startswith("clinician-only:"):
        what = clinician_topic(triage.rule.removeprefix("clinician-only:"))
        return (
            f"Questions about {what} need a clinician who knows your history, so I won't answer them. "
            "Please ask your physiotherapist, doctor or pharmacist.\n\n"
            f"I can share what my sources say about: {covered}."
        )
    return (
        "I can only help with questions about proximal hamstring tendinopathy (high hamstring "
        "tendon pain), hamstring rehab and running with it, so I can't answer this one.\n\n"
        f"My sources cover: {covered}."
    )


def not_covered_reply(topics: list[str]) -> str:
    covered = ", ".join(topics) if topics else "proximal hamstring tendinopathy"
    return (
        "My sources don't answer this, and I won't guess. "
        "A physiotherapist can advise you on it.\n\n"
        f"What I can help with: {covered}."
    )
