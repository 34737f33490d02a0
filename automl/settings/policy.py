"""The AutoML policy resolver: search or train once, and why (DESIGN section 5).

Rules, first match wins:

1. ``--policy auto|on|off`` given explicitly (``on`` means ``auto``); any other value is an error.
2. ``--request TEXT``: a phrase that turns the search off ("turn off AutoML", "disable AutoML",
   "no HPO", "plain training", "without AutoML", "automl off", "no hyperparameter search", ...)
   anywhere in the text, case-insensitive, means ``off``; any other text means ``auto``.
3. Nothing given: ``auto``.

``auto`` then passes the runnability gate: it searches only when ``references/skill_info.yaml``
says ``automl_enabled: true`` and ``schemas/train.schema.json`` and
``references/spec_template_train.yaml`` exist and parse. Otherwise the run is plain training and the
plan's ``message`` says why.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from automl.errors import SettingError
from automl.project_files import schema_file, skill_info_file, spec_template_file

__all__ = ["NOT_RUNNABLE", "Plan", "resolve_policy"]

POLICY_CHOICES = ("auto", "on", "off")
NOT_RUNNABLE = "AutoML is enabled but not runnable for this model until schemas are generated"
DISABLED = "AutoML is disabled for this model (references/skill_info.yaml: automl_enabled is not true)"

SKILL_INFO = Path("references") / "skill_info.yaml"
TRAIN_SCHEMA = Path("schemas") / "train.schema.json"
TRAIN_TEMPLATE = Path("references") / "spec_template_train.yaml"

_AUTOML = (
    r"(?:auto[\s_-]?ml|hpo|hyper[\s-]?param(?:eter)?s?[\s-]?(?:search|tuning|optimi[sz]ation)"
    r"|tuning|search)\b"
)
_OFF_PATTERNS = (
    rf"\b(?:turn|switch|shut)\s+off\s+(?:the\s+)?{_AUTOML}",
    rf"\b(?:turn|switch|shut)\s+(?:the\s+)?{_AUTOML}\s+off\b",
    rf"\b(?:disable|skip|deactivate)\s+(?:the\s+)?{_AUTOML}",
    rf"\b{_AUTOML}\s+(?:off|disabled)\b",
    rf"\b(?:no|without|w/o)\s+(?:any\s+)?{_AUTOML}",
    rf"\b(?:do\s+not|don'?t)\s+(?:use|run|do)\s+(?:any\s+)?{_AUTOML}",
    r"\bplain\s+training\b",
    r"\b(?:train|training)\s+(?:just\s+)?once\b",
)
_OFF_RE = re.compile("|".join(f"(?:{p})" for p in _OFF_PATTERNS), re.IGNORECASE)
_NEGATION_RE = re.compile(r"\b(?:don'?t|do not|never|not)$")


@dataclass(frozen=True)
class Plan:
    """What a run does: ``search`` or train once, under which policy, and why."""

    search: bool
    policy: str
    reason: str
    message: str | None = None


def resolve_policy(policy: str | None, request: str | None, root: Path | None = None) -> Plan:
    """Decide between a search and plain training; ``root`` holds ``schemas/`` and ``references/``
    (default: the installed project's, ``automl.project_files``)."""
    if policy is not None:
        value = policy.strip().lower()
        if value not in POLICY_CHOICES:
            raise SettingError(f"--policy: got {policy!r}; expected one of {', '.join(POLICY_CHOICES)}")
        if value == "off":
            return Plan(search=False, policy="off", reason="--policy off was given")
        return _gate(root, f"--policy {value} was given")
    if request is not None and request.strip():
        match = _off_phrase(request)
        if match is not None:
            return Plan(
                search=False,
                policy="off",
                reason=f"the request says {match!r}, which turns AutoML off",
            )
        return _gate(root, "the request does not turn AutoML off, so the policy is auto")
    return _gate(root, "no --policy or --request was given, so the policy is auto")


def _off_phrase(request: str) -> str | None:
    """The first phrase of ``request`` that turns AutoML off, unless negated ("don't disable HPO")."""
    for match in _OFF_RE.finditer(request):
        before = request[: match.start()].lower().rstrip()
        if not _NEGATION_RE.search(before):
            return match.group(0).strip()
    return None


def _gate(root: Path | None, why_auto: str) -> Plan:
    if root is None:
        skill_info, schema, template = skill_info_file(), schema_file("train"), spec_template_file("train")
    else:
        skill_info, schema, template = (Path(root) / p for p in (SKILL_INFO, TRAIN_SCHEMA, TRAIN_TEMPLATE))
    enabled, problem = _skill_enabled(skill_info)
    if problem is not None:
        return Plan(False, "auto", f"{why_auto}; {problem}", NOT_RUNNABLE)
    if enabled is not True:
        return Plan(False, "auto", f"{why_auto}; {SKILL_INFO} has automl_enabled: {enabled!r}", DISABLED)
    problems = [p for p in (_json_problem(schema), _yaml_problem(template)) if p]
    if problems:
        return Plan(False, "auto", f"{why_auto}; " + "; ".join(problems), NOT_RUNNABLE)
    return Plan(
        True,
        "auto",
        f"{why_auto}; {SKILL_INFO} has automl_enabled: true and {TRAIN_SCHEMA} and {TRAIN_TEMPLATE} parse",
    )


def _skill_enabled(path: Path) -> tuple[Any, str | None]:
    """``(automl_enabled value, None)`` or ``(None, problem)`` when the file is missing or broken."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, f"{path} is missing"
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return None, f"{path} does not parse ({type(exc).__name__})"
    if not isinstance(data, dict):
        return None, f"{path} is not a YAML mapping"
    return data.get("automl_enabled"), None


def _json_problem(path: Path) -> str | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"{path} is missing"
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return f"{path} does not parse ({type(exc).__name__})"
    if not isinstance(data, dict) or not isinstance(data.get("properties"), dict):
        return f"{path} has no 'properties' mapping"
    return None


def _yaml_problem(path: Path) -> str | None:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"{path} is missing"
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return f"{path} does not parse ({type(exc).__name__})"
    if not isinstance(data, dict):
        return f"{path} is not a YAML mapping"
    return None
