"""AutoML settings, under TAO's names (tao.md sections 3.3-3.6), parsed and checked.

``automl_algorithm`` picks two things, kept apart here: the ``algorithm`` that proposes
configurations (``tpe``, ``bayesian`` = Gaussian process with expected improvement, Optuna's
GPSampler; ``random``; ``pbt``, population based training: Ray's with ``--backend ray``,
automl/backends/optuna_pbt.py on Optuna) and the ``fidelity`` schedule that
stops poor trials early (``hyperband``, ``asha``, ``median`` or ``none``). TAO's names map as:
``tpe`` -> tpe/none, ``bayesian``/``b`` -> bayesian/none, ``random`` -> random/none,
``hyperband``/``h`` -> tpe/hyperband, ``hyperband_es``/``hes`` -> tpe/hyperband plus a plateau
stopper (``automl_early_stop_threshold``, ``automl_min_early_stop_epochs``), ``asha`` -> tpe/asha,
``bohb`` -> tpe/hyperband (TPE's density model is BOHB's: ``automl_kde_samples`` candidates,
``automl_top_n_percent`` good points, ``automl_min_points_in_model`` start-up trials; TuneBOHB's own
on Ray), ``pbt`` -> pbt/none. A setting that only another algorithm reads is refused, not ignored. The
settings ``sampler`` and ``fidelity`` override either half (``automl_algorithm=hyperband
sampler=random`` is TAO's own Hyperband).

With no ``automl_algorithm`` (and no ``sampler``) the search is ``hyperband``: TPE proposes and
Hyperband stops poor trials early; an explicit ``automl_algorithm=tpe`` is TPE alone.

Deviations from TAO's defaults: ``automl_max_epochs`` defaults to None, meaning the spec's
``train.num_epochs`` (TAO: 27), so a sweep never trains longer than the spec says;
``automl_max_concurrent`` defaults to None, meaning as many trials as the machine's GPUs (or CPU
slots) allow (TAO ASHA: 4).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from automl.errors import SettingError
from automl.results.objective import Direction
from automl.settings.objectives import check_objectives, metric_direction, parse_objectives

__all__ = ["CHECKS", "AutomlSettings", "metric_direction", "parse_setting_args", "parse_settings"]

ALGORITHMS = {
    "tpe": ("tpe", "none"),
    "bayesian": ("bayesian", "none"),
    "b": ("bayesian", "none"),
    "random": ("random", "none"),
    "hyperband": ("tpe", "hyperband"),
    "h": ("tpe", "hyperband"),
    "hyperband_es": ("tpe", "hyperband"),
    "hes": ("tpe", "hyperband"),
    "asha": ("tpe", "asha"),
    "median": ("tpe", "median"),  # median stopping rule (Optuna's MedianPruner, Ray's MedianStoppingRule)
    "bohb": ("tpe", "hyperband"),
    "pbt": ("pbt", "none"),
}
CANONICAL = {"b": "bayesian", "h": "hyperband", "hes": "hyperband_es"}
UNSUPPORTED = ("bfbo", "dehb", "llm", "hybrid", "autoresearch")
SAMPLERS = ("tpe", "bayesian", "random", "pbt")
FIDELITIES = ("hyperband", "asha", "median", "none")
ALIASES = {
    "num_recommendations": "automl_max_recommendations",
    "automl_R": "automl_max_epochs",
    "automl_nu": "automl_reduction_factor",
    "automl_add_hyperparameters": "automl_hyperparameters",
    "custom_param_ranges": "automl_custom_param_ranges",
    "automl_backend": "backend",
}


@dataclass(frozen=True)
class AutomlSettings:
    """Every AutoML setting; the TAO name of each is ``automl_<field>`` unless noted."""

    algorithm: str = "tpe"  # the sampler half of automl_algorithm (or `sampler`)
    fidelity: str = "hyperband"  # the early-stopping half of automl_algorithm (or `fidelity`)
    algorithm_name: str = "hyperband"  # automl_algorithm as TAO names it
    max_recommendations: int = 20  # number of trials
    max_concurrent: int | None = None
    max_epochs: int | None = None  # automl_R; None = train.num_epochs
    reduction_factor: int = 3  # automl_nu
    epoch_multiplier: int = 1  # TAO: epoch_multiplier
    hyperparameters: tuple[str, ...] | None = None
    custom_param_ranges: Mapping[str, Any] = field(default_factory=dict)
    override_disabled_params: bool = False  # TAO: override_automl_disabled_params
    delete_intermediate_ckpt: bool = True
    # auto = best: the best epoch's checkpoint; terminal: the last epoch only
    checkpoint_retention_strategy: str = "auto"
    max_trials: int | None = None  # ASHA: the number of trials (automl_max_recommendations)
    min_top_configs: int = 5  # refused (see REFUSED)
    early_stop_threshold: float = 0.1  # hyperband_es
    min_early_stop_epochs: int = 3
    kde_samples: int = 64  # BOHB
    top_n_percent: float = 15.0
    min_points_in_model: int = 10
    population_size: int = 10  # PBT
    max_generations: int = 20
    eval_interval: int = 10
    perturbation_factor: float = 1.2
    metric: str = "val_mAP50"
    direction: Direction = "maximize"
    timeout_per_trial: float | None = None  # seconds
    time_budget: float | None = None  # seconds for the whole search (not a TAO setting)
    # the baseline trial's train.time_budget as a share of time_budget (None: concurrency / trials)
    baseline_time_share: float | None = None
    # the first trial at the spec's own values; start-up trials explore around the best
    run_baseline: bool = False
    max_latency_ms: float | None = None  # slower networks (rtdetr latency) are not trained (not TAO)
    # --objectives: (metric, direction) pairs, the training metric and latency_ms (not TAO)
    objectives: tuple[tuple[str, Direction], ...] = ()
    seed: int | None = None
    backend: str = "optuna"

    @property
    def measures_latency(self) -> bool:
        """Each trial's network is measured before it trains (a limit, or latency as an objective)."""
        return self.max_latency_ms is not None or bool(self.objectives)


# TAO name -> (field, checker)
def _int(minimum: int) -> Any:
    def check(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingError(f"{name}: got {value!r}; expected an integer >= {minimum}")
        if value < minimum:
            raise SettingError(f"{name}: got {value}; expected an integer >= {minimum}")
        return value

    return check


def _opt_int(minimum: int) -> Any:
    inner = _int(minimum)
    return lambda name, value: None if value is None else inner(name, value)


def _float(minimum: float, exclusive: bool = False) -> Any:
    def check(name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SettingError(f"{name}: got {value!r}; expected a number")
        if value < minimum or (exclusive and value == minimum):
            raise SettingError(
                f"{name}: got {value}; expected a number {'>' if exclusive else '>='} {minimum}"
            )
        return float(value)

    return check


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SettingError(f"{name}: got {value!r}; expected true or false")
    return value


def _choice(*options: str) -> Any:
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str) or value not in options:
            raise SettingError(f"{name}: got {value!r}; expected one of {', '.join(options)}")
        return value

    return check


def _names(name: str, value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [part.strip() for part in value.strip("[]").split(",") if part.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise SettingError(f"{name}: got {value!r}; expected a list of dotted parameter names")
    return tuple(value) or None


def _ranges(name: str, value: Any) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise SettingError(f"{name}: got {value!r}; expected a mapping of parameter name -> range")
    return dict(value)


def _metric(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SettingError(f"{name}: got {value!r}; expected a metric name such as val_mAP50")
    return value.strip()


def _share(name: str, value: Any) -> float | None:
    """A fraction in (0, 1]."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise SettingError(
            f"{name}: got {value!r}; expected a fraction greater than 0 and at most 1, e.g. 0.6"
        )
    return float(value)


def _seconds(name: str, value: Any) -> float | None:
    """Seconds, or a duration such as ``90s``, ``30m``, ``2h``, ``1.5h``; more than zero."""
    if value is None:
        return None
    given = value
    if isinstance(value, str):
        match = re.fullmatch(r"\s*([-+]?\d+(?:\.\d+)?)\s*([smhd]?)\s*", value)
        if not match:
            raise SettingError(f"{name}: got {value!r}; expected seconds or a duration like 30m or 2h")
        value = float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0:
        raise SettingError(f"{name}: got {given!r}; must be positive: seconds or a duration like 30m or 2h")
    return _float(0.0, exclusive=True)(name, value)


CHECKS: dict[str, tuple[str, Any]] = {
    "automl_max_recommendations": ("max_recommendations", _int(1)),
    "automl_max_concurrent": ("max_concurrent", _opt_int(1)),
    "automl_max_epochs": ("max_epochs", _opt_int(1)),
    "automl_reduction_factor": ("reduction_factor", _int(2)),
    "epoch_multiplier": ("epoch_multiplier", _int(1)),
    "automl_hyperparameters": ("hyperparameters", _names),
    "automl_custom_param_ranges": ("custom_param_ranges", _ranges),
    "override_automl_disabled_params": ("override_disabled_params", _bool),
    "automl_delete_intermediate_ckpt": ("delete_intermediate_ckpt", _bool),
    "automl_checkpoint_retention_strategy": (
        "checkpoint_retention_strategy",
        _choice("auto", "best", "terminal"),
    ),
    "automl_max_trials": ("max_trials", _opt_int(1)),
    "automl_min_top_configs": ("min_top_configs", _int(1)),
    "automl_early_stop_threshold": ("early_stop_threshold", _float(0.0)),
    "automl_min_early_stop_epochs": ("min_early_stop_epochs", _int(1)),
    "automl_kde_samples": ("kde_samples", _int(1)),
    "automl_top_n_percent": ("top_n_percent", _float(0.0, exclusive=True)),
    "automl_min_points_in_model": ("min_points_in_model", _int(1)),
    "automl_population_size": ("population_size", _int(1)),
    "automl_max_generations": ("max_generations", _int(1)),
    "automl_eval_interval": ("eval_interval", _int(1)),
    "automl_perturbation_factor": ("perturbation_factor", _float(1.0, exclusive=True)),
    "metric": ("metric", _metric),
    "direction": ("direction", _choice("maximize", "minimize")),
    "timeout_per_trial": ("timeout_per_trial", _seconds),
    "time_budget": ("time_budget", _seconds),
    "baseline_time_share": ("baseline_time_share", _share),
    "run_baseline": ("run_baseline", _bool),
    "max_latency_ms": ("max_latency_ms", _float(0.0, exclusive=True)),
    "objectives": ("objectives", parse_objectives),
    "seed": ("seed", _opt_int(0)),
    "backend": ("backend", _choice("optuna", "ray")),
}
KNOWN = (*CHECKS, "automl_algorithm", "sampler", "fidelity", *ALIASES)

# Settings that only one family of algorithms reads: elsewhere they are refused, not ignored.
# setting -> (what it applies to, as a user would choose it; the test on the parsed settings)
FAMILY_SETTINGS: dict[str, tuple[str, Any]] = {
    "automl_population_size": ("automl_algorithm=pbt", lambda s: s.algorithm == "pbt"),
    "automl_max_generations": ("automl_algorithm=pbt", lambda s: s.algorithm == "pbt"),
    "automl_eval_interval": ("automl_algorithm=pbt", lambda s: s.algorithm == "pbt"),
    "automl_perturbation_factor": ("automl_algorithm=pbt", lambda s: s.algorithm == "pbt"),
    "automl_kde_samples": ("automl_algorithm=bohb", lambda s: s.algorithm_name == "bohb"),
    "automl_top_n_percent": ("automl_algorithm=bohb", lambda s: s.algorithm_name == "bohb"),
    "automl_min_points_in_model": ("automl_algorithm=bohb", lambda s: s.algorithm_name == "bohb"),
    "automl_early_stop_threshold": (
        "automl_algorithm=hyperband_es",
        lambda s: s.algorithm_name == "hyperband_es",
    ),
    "automl_min_early_stop_epochs": (
        "automl_algorithm=hyperband_es",
        lambda s: s.algorithm_name == "hyperband_es",
    ),
    "automl_max_trials": ("automl_algorithm=asha", lambda s: s.fidelity == "asha"),
    "automl_reduction_factor": (
        "automl_algorithm=hyperband, hyperband_es, asha or bohb",
        lambda s: s.fidelity in ("hyperband", "asha"),
    ),
}
REFUSED = {
    "automl_min_top_configs": (
        "this tool's ASHA (Optuna's successive halving pruner, Ray Tune's ASHAScheduler) promotes trials "
        "asynchronously and has no minimum of top-rung configurations; set the number of trials with "
        "automl_max_recommendations (or automl_max_trials) and the promotion rate with automl_reduction_factor"
    ),
}


def parse_settings(pairs: Mapping[str, Any]) -> AutomlSettings:
    """Check TAO-named settings (aliases accepted) and return them with defaults filled in."""
    canonical: dict[str, Any] = {}
    given_as: dict[str, str] = {}
    for key, value in pairs.items():
        if not isinstance(key, str) or key not in KNOWN:
            close = difflib.get_close_matches(str(key), KNOWN, n=1, cutoff=0.6)
            hint = (
                f"; did you mean {close[0]}?" if close else f"; known settings: {', '.join(sorted(CHECKS))}"
            )
            raise SettingError(f"{key}: unknown AutoML setting{hint}")
        name = ALIASES.get(key, key)
        if name in canonical and canonical[name] != value:
            raise SettingError(
                f"{key}: given twice, as {given_as[name]}={canonical[name]!r} and {key}={value!r}"
            )
        canonical[name], given_as[name] = value, key
    values: dict[str, Any] = {}
    for name, value in canonical.items():
        if name in CHECKS:
            attr, check = CHECKS[name]
            values[attr] = check(given_as[name], value)
    values.update(_algorithm(canonical))
    values.update(check_objectives(values, canonical))
    if "direction" not in canonical and "objectives" not in values:
        values["direction"] = metric_direction(values.get("metric", AutomlSettings.metric))
    settings = AutomlSettings(**values)
    for name in canonical:
        if name in REFUSED:
            raise SettingError(f"{given_as[name]}: not supported: {REFUSED[name]}")
        family = FAMILY_SETTINGS.get(name)
        if family is not None and not family[1](settings):
            raise SettingError(
                f"{given_as[name]}: applies to {family[0]}, not automl_algorithm={settings.algorithm_name}; "
                "drop it or choose that algorithm"
            )
    return _combine(settings, canonical, given_as)


def _combine(
    settings: AutomlSettings, canonical: Mapping[str, Any], given_as: Mapping[str, str]
) -> AutomlSettings:
    """Settings that change others: ASHA's automl_max_trials is the number of trials; the
    terminal retention keeps only the last epoch, which nothing may resume from."""
    if settings.max_trials is not None:
        if "automl_max_recommendations" in canonical and settings.max_recommendations != settings.max_trials:
            raise SettingError(
                f"automl_max_trials={settings.max_trials} and {given_as['automl_max_recommendations']}="
                f"{settings.max_recommendations} both set the number of trials; give one of them"
            )
        settings = dataclasses.replace(settings, max_recommendations=settings.max_trials)
    if settings.checkpoint_retention_strategy == "terminal" and (
        settings.fidelity != "none" or settings.algorithm == "pbt"
    ):
        raise SettingError(
            f"automl_checkpoint_retention_strategy: terminal saves only a trial's last epoch, but "
            f"automl_algorithm={settings.algorithm_name} stops or continues trials from earlier epochs; "
            "use auto (the best epoch's checkpoint is kept) or an algorithm without early stopping (tpe, bayesian, random)"
        )
    return settings


def _algorithm(canonical: Mapping[str, Any]) -> dict[str, str]:
    # the default search: TPE proposes, Hyperband stops poor trials early
    # with --backend ray the default is ASHA (Ray Tune's asynchronous successive halving)
    default = "asha" if canonical.get("backend") == "ray" else "hyperband"
    name = canonical.get("automl_algorithm", "tpe" if "sampler" in canonical else default)
    if not isinstance(name, str):
        raise SettingError(f"automl_algorithm: got {name!r}; expected one of {', '.join(ALGORITHMS)}")
    key = name.strip().lower()
    if key in UNSUPPORTED:
        raise SettingError(
            f"automl_algorithm: {name!r} is a TAO algorithm this tool does not run; "
            f"choose one of {', '.join(ALGORITHMS)}"
        )
    if key not in ALGORITHMS:
        close = difflib.get_close_matches(key, ALGORITHMS, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise SettingError(f"automl_algorithm: got {name!r}; expected one of {', '.join(ALGORITHMS)}{hint}")
    sampler, fidelity = ALGORITHMS[key]
    if "sampler" in canonical:
        sampler = _choice(*SAMPLERS)("sampler", canonical["sampler"])
    if "fidelity" in canonical:
        fidelity = _choice(*FIDELITIES)("fidelity", canonical["fidelity"])
    if sampler == "pbt" and fidelity != "none":
        raise SettingError(f"fidelity: got {fidelity!r}; pbt schedules its own trials, so use fidelity=none")
    return {"algorithm": sampler, "fidelity": fidelity, "algorithm_name": CANONICAL.get(key, key)}


def parse_setting_args(args: Iterable[str]) -> dict[str, Any]:
    """``["automl_max_recommendations=10", "automl_algorithm=bayesian"]`` -> YAML-typed dict."""
    out: dict[str, Any] = {}
    for arg in args:
        key, sep, text = arg.partition("=")
        if not sep or not key.strip():
            raise SettingError(f"{arg!r}: expected key=value, e.g. automl_max_recommendations=10")
        out[key.strip()] = _yaml_value(key.strip(), text)
    return out


def _yaml_value(key: str, text: str) -> Any:
    """YAML-typed, except that ``1e-5`` style numbers (strings to YAML 1.1) are numbers."""
    for cast in (int, float):
        try:
            return cast(text.strip())
        except ValueError:
            pass
    try:
        return yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise SettingError(f"{key}: value {text!r} is not valid YAML ({exc})") from None
