"""Check a whole sweep before any job starts: every combination of the command line's
comma lists (and of the experiment's sweep) is composed and validated, so a typo in
the last combination does not surface hours into the sweep. Errors are one line."""

from __future__ import annotations

import itertools

from regbench.core.registry import RegistryError, register_resolvers, sweep_params
from regbench.core.validate import ConfigError, validate

MAX_COMBINATIONS = 256  # beyond this, check the first ones only (composition is ~50 ms each)


def _is_sweep(value: str) -> bool:
    return "," in value and not any(c in value for c in "[]{}()'\"")


def combinations(args: list[str]) -> list[list[str]]:
    """The override lists of the jobs a command line launches (Hydra's basic sweeper)."""
    multirun = any(a in ("-m", "--multirun") for a in args)
    fixed, axes, given = [], [], set()
    for arg in args:
        if arg.startswith("-") or arg.startswith("hydra") or "=" not in arg:
            continue  # Hydra's own flags and settings (launcher, sweep dir) are not the config
        key, _, value = arg.partition("=")
        given.add(key.lstrip("+~"))
        if multirun and _is_sweep(value):
            axes.append([f"{key}={v.strip()}" for v in value.split(",")])
        else:
            fixed.append(arg)
    experiment = next((a.split("=", 1)[1] for a in args if a.startswith("experiment=")), None)
    if multirun and experiment not in (None, "null", ""):
        for key, values in sweep_params(experiment).items():
            if key not in given:
                axes.append([f"{key}={v}" for v in values])
    return [fixed + list(combo) for combo in itertools.product(*axes)] if axes else [fixed]


def _one_line(err: Exception) -> str:
    parts = [str(err).splitlines()[0]]
    cause = err.__cause__
    while cause is not None:
        parts.append(str(cause).splitlines()[0])
        cause = cause.__cause__
    return ": ".join(p for p in parts if p)


def _unknown_key(compose, overrides: list[str], searchpath: list[str]) -> str | None:
    """For a 'not in struct' failure: which dotted override names no key, and the keys there are."""
    from omegaconf import OmegaConf

    plain = [o for o in overrides if "." not in o.partition("=")[0]]
    base = compose(config_name="config", overrides=[*plain, *searchpath])
    for o in overrides:
        key, _, value = o.partition("=")
        if (
            "." not in key
            or key.startswith(("+", "~"))
            or OmegaConf.select(base, key, default="<missing>") != "<missing>"
        ):
            continue
        parent = key.rsplit(".", 1)[0]
        node = OmegaConf.select(base, parent)
        known = ", ".join(sorted(node.keys())) if hasattr(node, "keys") else "(not a config section)"
        return (
            f"{key}={value!r} names no config key; keys under {parent}: {known} "
            f"(to add a new key, write +{key}={value})"
        )
    return None


def _check_model(cfg, seen: set) -> None:
    """Build each method's model once (cheap, no weights): wrong types or unknown
    arguments fail here, not in a job hours later, and so does a training scheme the
    method cannot be trained with (what it lacks, in one line)."""
    from omegaconf import OmegaConf

    from regbench.core.instantiate import build
    from regbench.training.checkpoints import training_spec
    from regbench.training.schemes import scheme_for

    training = cfg.get("training")
    spec = OmegaConf.to_yaml(cfg.method.model) + (OmegaConf.to_yaml(training) if training is not None else "")
    if spec in seen:
        return
    seen.add(spec)
    try:
        method = build(cfg.method.model)
    except Exception as err:
        raise ConfigError(
            f"method {cfg.method.name}: its model cannot be built from method.model: {_one_line(err)}"
        ) from None
    named = cfg.method.get("weights")
    if named is not None:  # weights trained elsewhere: the file must be the one named, before any job starts
        from regbench.methods.external import ExternalModelError, verify_weights

        try:
            verify_weights(str(named.path), str(named.sha256))
        except ExternalModelError as err:
            raise ConfigError(f"method {cfg.method.name}: {err}") from None
    try:
        trained = training_spec(cfg.method, cfg.profile.name, cfg.seed, cfg.get("training"))
        if trained is not None:
            scheme_for(cfg.method.name, trained, method)
    except ValueError as err:
        raise ConfigError(_one_line(err)) from None


def check_sweep(args: list[str], searchpath: list[str]) -> int:
    """Compose and validate every combination; returns how many were checked."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from regbench.core.registry import CONFIG_DIR

    register_resolvers()
    combos = combinations(args)[:MAX_COMBINATIONS]
    seen: set = set()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        for overrides in combos:
            try:
                cfg = compose(config_name="config", overrides=[*overrides, *searchpath])
            except (HydraException, OmegaConfBaseException) as err:
                raise ConfigError(
                    ("not in struct" in _one_line(err) and _unknown_key(compose, overrides, searchpath))
                    or _one_line(err)
                ) from None
            try:
                validate(cfg)
                _check_model(cfg, seen)
            except (ConfigError, RegistryError):
                raise
            except Exception as err:  # an interpolation or type that validate trips over
                raise ConfigError(_one_line(err)) from None
    GlobalHydra.instance().clear()
    return len(combos)
