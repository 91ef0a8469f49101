"""The defense registry and configs."""

from __future__ import annotations

import dataclasses

import pytest

from aisec.defenses import Defense, defenses, get_defense, register_defense
from aisec.errors import ConfigError

BUILTINS = {"adversarial-training", "bit-depth", "median-smoothing", "gaussian-noise", "ensemble"}


def test_builtins_registered_with_metadata() -> None:
    known = defenses()
    assert set(known) >= BUILTINS
    for name, cls in known.items():
        assert cls.name == name
        assert "arXiv:" in cls.paper
        assert cls.__doc__ and "arXiv:" in cls.__doc__
        assert cls.kind in ("training", "input", "ensemble")
        cfg = cls.Config()
        assert dataclasses.is_dataclass(cfg)
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(cfg, dataclasses.fields(cfg)[0].name, None)
        assert cls(**dataclasses.asdict(cfg)).config == cfg  # round trip


def test_unknown_defense_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="known defenses: adversarial-training"):
        get_defense("magic")


@pytest.mark.parametrize(
    ("name", "params", "field"),
    [
        ("adversarial-training", {"method": "fgsm"}, "method"),
        ("adversarial-training", {"eps": -0.1}, "eps"),
        ("adversarial-training", {"epochs": 1.5}, "epochs"),
        ("bit-depth", {"bits": 9}, "bits"),
        ("median-smoothing", {"size": 1}, "size"),
        ("gaussian-noise", {"sigma": 0}, "sigma"),
        ("ensemble", {"members": 1}, "members"),
        ("bit-depth", {"bitz": 2}, "unknown parameter bitz"),
    ],
)
def test_bad_params_name_the_field(name: str, params: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        get_defense(name)(**params)


def test_registering_a_second_class_under_a_taken_name_fails() -> None:
    cls = get_defense("bit-depth")
    clone = type("Clone", (cls,), {"__module__": "elsewhere"})
    with pytest.raises(ConfigError, match="registered twice"):
        register_defense(clone)
    assert issubclass(cls, Defense)
