"""Knowledge as data: red flags, clinician-only decisions, scope and vocabulary, reviewed like code.

The YAML files in this folder are what a clinician or a clinic reviews; the code that reads them
(:mod:`assistant.safety.rules`, :mod:`assistant.safety.scope`, :mod:`assistant.retrieval.vocabulary`,
:mod:`assistant.safety.passages`)
validates them when the assistant starts. A clinic adds to them with a folder of its own
(``PHT_POLICY_DIR``) holding files of the same names: lists are extended, mappings merged, and a
red flag or clinician-only decision with a packaged name replaces the packaged one.

>>> sorted(name for name in FILES)
['clinician_only', 'document_checks', 'red_flags', 'scope', 'vocabulary']
>>> load("scope")["topic_examples"][0]
'pain deep in my buttock where my hamstring attaches to the sit bone'
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from assistant.errors import PolicyInvalid

HERE = Path(__file__).resolve().parent
FILES = ("red_flags", "clinician_only", "scope", "vocabulary", "document_checks")
# entries of these lists are replaced, not added to, when an extension names them again
_KEYED_LISTS = {"flags": "name", "decisions": "name", "checks": "name"}


def load(name: str, extra_dir: Path | str | None = None) -> dict[str, Any]:
    """The policy file ``name`` as data, with a clinic's file of the same name merged in."""
    if name not in FILES:
        raise ValueError(f"no policy file named {name!r}; the files are {', '.join(FILES)}")
    return _load(name, str(extra_dir) if extra_dir else "")


@lru_cache(maxsize=16)
def _load(name: str, extra_dir: str) -> dict[str, Any]:
    data = _read(HERE / f"{name}.yaml")
    if extra_dir:
        extra = Path(extra_dir) / f"{name}.yaml"
        if extra.is_file():
            data = merge(data, _read(extra))
        elif not Path(extra_dir).is_dir():
            raise PolicyInvalid(f"The policy folder {extra_dir} does not exist; set PHT_POLICY_DIR to a folder.")
    return data


def _read(path: Path) -> dict[str, Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: five times faster
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path.name}:{mark.line + 1}" if mark is not None else path.name
        raise PolicyInvalid(f"{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    except OSError as exc:
        raise PolicyInvalid(f"The policy file {path} cannot be read ({exc.strerror}).") from None
    if not isinstance(data, dict):
        raise PolicyInvalid(f"{path.name}: a policy file is a mapping of names to lists and values.")
    return data


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` extended by ``extra``: lists added to (keyed entries replaced), mappings merged,
    a regular expression of words (a string) widened with ``|``.

    >>> merge({"a": [1], "b": {"x": 1}, "words": "run|jog"}, {"a": [2], "b": {"y": 2}, "words": "swim"})
    {'a': [1, 2], 'b': {'x': 1, 'y': 2}, 'words': 'run|jog|swim'}
    """
    out = dict(base)
    for key, value in extra.items():
        old = out.get(key)
        if isinstance(old, list) and isinstance(value, list):
            id_field = _KEYED_LISTS.get(key)
            if id_field:
                names = {v.get(id_field) for v in value if isinstance(v, dict)}
                out[key] = [v for v in old if not (isinstance(v, dict) and v.get(id_field) in names)] + value
            else:
                out[key] = old + value
        elif isinstance(old, dict) and isinstance(value, dict):
            out[key] = {**old, **value}
        elif isinstance(old, str) and isinstance(value, str) and key.endswith("words"):
            out[key] = f"{old}|{value}"
        else:
            out[key] = value
    return out
