"""Red flags and clinician-only decisions: loaded from the policy files, validated, and matched.

The rules are data a clinician reviews (``assistant/policy/red_flags.yaml`` and
``clinician_only.yaml``, each entry with its clinical source); this module checks them when the
assistant starts (every flag has a source, a unique name and priority, patterns that compile,
terms that exist) and matches them against a message with the engine of
:mod:`assistant.safety.text`. Priority is explicit: flags are tried in priority order, and the first
one affirmed decides.

>>> rules = load_rules()
>>> rules.red_flag("cant pee properly since last night")[0].name
'cauda-equina-bladder-bowel'
>>> rules.red_flag("I don't have any numbness in my groin") is None
True
>>> rules.clinician_decision("should I get a cortisone injection?")[0].name
'injection'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from assistant import policy
from assistant.errors import PolicyInvalid
from assistant.safety.text import affirmed, affirmed_anywhere, clauses, compiled, hypothetical, normalise, resolved

_TERM = re.compile(r"\{([a-z_]+)\}")


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RedFlag(_Entry):
    """One red flag, as reviewed in red_flags.yaml (the file's header explains every field)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    priority: int = Field(ge=1)
    look_for: str = Field(min_length=1)
    may_mean: str = Field(min_length=1)
    sources: list[str] = Field(min_length=1)
    emergency: bool
    reply_what: str = Field(min_length=1)
    action: str = Field(min_length=1)
    patterns: list[str] = Field(default_factory=list)
    needs: list[str] = Field(default_factory=list)
    signals: dict[str, str] = Field(default_factory=dict)
    match_when: list[list[str]] = Field(default_factory=list)
    symptom_words: str = Field(min_length=1)
    examples: list[str] = Field(default_factory=list)

    @field_validator("sources")
    @classmethod
    def _sources_named(cls, value: list[str]) -> list[str]:
        if not all(s and s.strip() for s in value):
            raise ValueError("every flag names at least one clinical source, and no source is empty")
        return value

    @model_validator(mode="after")
    def _one_way_to_match(self) -> "RedFlag":
        if bool(self.patterns) == bool(self.signals):
            raise ValueError("a flag has either patterns (and optional needs) or signals with match_when")
        if self.signals:
            if not self.match_when:
                raise ValueError("signals need match_when: the combinations that make the flag")
            unknown = {s for combo in self.match_when for s in combo} - set(self.signals)
            if unknown:
                raise ValueError(f"match_when names signals that are not defined: {', '.join(sorted(unknown))}")
        if "{emergency}" not in self.action and self.emergency:
            raise ValueError("an emergency flag's action must give the emergency wording: {emergency}")
        return self


class ClinicianDecision(_Entry):
    """A decision only a clinician who knows the patient may make (clinician_only.yaml)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    priority: int = Field(ge=1)
    topic: str = Field(min_length=1)
    who_to_ask: str = Field(min_length=1)
    why: str = Field(min_length=1)
    patterns: list[str] = Field(min_length=1)
    words: str = Field(min_length=1)
    examples: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class Rules:
    """Every red flag and clinician-only decision, in priority order, with compiled patterns."""

    flags: tuple[RedFlag, ...]
    decisions: tuple[ClinicianDecision, ...]
    reviewed_by: tuple[str, str] = ("", "")

    def flag(self, name: str) -> RedFlag | None:
        return next((f for f in self.flags if f.name == name), None)

    def decision(self, name: str) -> ClinicianDecision | None:
        return next((d for d in self.decisions if d.name == name), None)

    def red_flag(self, text: str) -> tuple[RedFlag, str] | None:
        """The first flag (by priority) that ``text`` affirms, with the words that matched."""
        parts = clauses(normalise(text))
        for flag in self.flags:
            hit = _match(flag, parts)
            if hit:
                return flag, hit
        return None

    def symptom_words(self, text: str, flag: RedFlag) -> str:
        """The first of ``flag``'s symptom words that ``text`` affirms, with its second part if it
        has one (an avulsion's pop *and* bruising): what lets the embedding layer decide."""
        parts = clauses(normalise(text))
        words = affirmed_anywhere(flag.symptom_words, parts)
        if words and flag.needs and not any(affirmed_anywhere(n, parts) for n in flag.needs):
            return ""
        if words and flag.signals and not any(affirmed_anywhere(p, parts) for p in flag.signals.values()):
            return ""
        return words

    def mentions_any_symptom(self, text: str) -> bool:
        """Cheap check before embedding an earlier turn: does it affirm any flag's symptom words?"""
        parts = clauses(normalise(text))
        return any(affirmed_anywhere(f.symptom_words, parts) for f in self.flags)

    def clinician_decision(self, text: str) -> tuple[ClinicianDecision, str] | None:
        """The first clinician-only decision a message asks for, with the words that matched. A
        clause about the past ("I had knee surgery in 2015") or someone else asks for none."""
        parts = clauses(normalise(text))
        for decision in self.decisions:
            for pattern in decision.patterns:
                for clause in parts:
                    m = compiled(pattern).search(clause)
                    if m and not resolved(clause, m.group(0)) and not hypothetical(clause, m.start()):
                        return decision, m.group(0)
        return None

    def names_decision(self, text: str, decision: ClinicianDecision) -> str:
        """The words by which ``text`` names that kind of decision (pills, jab, surgery...)."""
        return affirmed_anywhere(decision.words, clauses(normalise(text)))


def _match(flag: RedFlag, parts: list[str]) -> str:
    if flag.signals:
        for combo in flag.match_when:
            hits = [affirmed_anywhere(flag.signals[s], parts) for s in combo]
            if all(hits):
                return " + ".join(dict.fromkeys(hits))
        return ""
    for clause in parts:
        for pattern in flag.patterns:
            hit = affirmed(pattern, clause)
            if not hit:
                continue
            if flag.needs:
                support = [affirmed_anywhere(n, parts) for n in flag.needs]
                if not any(support):
                    continue
                also = [w for w in support if w and w != hit]
                if also:
                    hit = f"{hit} + {also[0]}"
            return hit
    return ""


def load_rules(policy_dir: Path | str | None = None) -> Rules:
    """The packaged rules, extended by a clinic's folder; raises :class:`PolicyInvalid` saying what
    is wrong (file, entry and field)."""
    return _load_rules(str(policy_dir) if policy_dir else "")


@lru_cache(maxsize=8)
def _load_rules(policy_dir: str) -> Rules:
    flags_doc = policy.load("red_flags", policy_dir or None)
    decisions_doc = policy.load("clinician_only", policy_dir or None)
    terms = {k: str(v) for k, v in (flags_doc.get("terms") or {}).items()}
    flags = tuple(_validated(RedFlag, flags_doc.get("flags"), "red_flags.yaml", "flags", terms))
    decisions = tuple(_validated(ClinicianDecision, decisions_doc.get("decisions"), "clinician_only.yaml", "decisions", {}))
    for what, entries in (("red_flags.yaml", flags), ("clinician_only.yaml", decisions)):
        _unique(what, [e.name for e in entries], "name")
        _unique(what, [e.priority for e in entries], "priority")
    return Rules(
        flags=tuple(sorted(flags, key=lambda f: f.priority)),
        decisions=tuple(sorted(decisions, key=lambda d: d.priority)),
        reviewed_by=(str(flags_doc.get("reviewed_by") or ""), str(decisions_doc.get("reviewed_by") or "")),
    )


def _validated(model: type[_Entry], rows: Any, file: str, key: str, terms: dict[str, str]) -> list[Any]:
    if not isinstance(rows, list) or not rows:
        raise PolicyInvalid(f"{file}: `{key}` must be a non-empty list.")
    out = []
    for i, row in enumerate(rows):
        label = f"{file}: {key}[{i}]" + (f" ({row.get('name')})" if isinstance(row, dict) and row.get("name") else "")
        if not isinstance(row, dict):
            raise PolicyInvalid(f"{label}: each entry is a mapping of fields.")
        row = _expand_terms(row, terms, label)
        try:
            entry = model.model_validate(row)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "entry"
            raise PolicyInvalid(f"{label}: {field}: {first['msg']}") from None
        for field, pattern in _patterns_of(entry):
            try:
                compiled(pattern)  # the one compile triage uses later
            except re.error as exc:
                raise PolicyInvalid(f"{label}: {field}: not a valid regular expression ({exc})") from None
        out.append(entry)
    return out


def _expand_terms(row: dict[str, Any], terms: dict[str, str], label: str) -> dict[str, Any]:
    def expand(text: Any, field: str) -> Any:
        if not isinstance(text, str):
            return text

        def sub(m: re.Match[str]) -> str:
            if m.group(1) not in terms:
                raise PolicyInvalid(f"{label}: {field}: the term {{{m.group(1)}}} is not defined under `terms`")
            return terms[m.group(1)]

        return _TERM.sub(sub, text)

    out = dict(row)
    for field in ("patterns", "needs"):
        if isinstance(row.get(field), list):
            out[field] = [expand(p, field) for p in row[field]]
    if isinstance(row.get("signals"), dict):
        out["signals"] = {k: expand(v, f"signals.{k}") for k, v in row["signals"].items()}
    if "symptom_words" in row:
        out["symptom_words"] = expand(row["symptom_words"], "symptom_words")
    return out


def _patterns_of(entry: Any) -> list[tuple[str, str]]:
    out = [("patterns", p) for p in getattr(entry, "patterns", [])]
    out += [("needs", p) for p in getattr(entry, "needs", [])]
    out += [(f"signals.{k}", p) for k, p in getattr(entry, "signals", {}).items()]
    for field in ("symptom_words", "words"):
        if getattr(entry, field, None):
            out.append((field, getattr(entry, field)))
    return out


def _unique(file: str, values: list[Any], field: str) -> None:
    seen: set[Any] = set()
    for v in values:
        if v in seen:
            raise PolicyInvalid(f"{file}: two entries share the {field} {v!r}; each must be unique.")
        seen.add(v)
