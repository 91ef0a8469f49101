"""Explicit registries of attacks (and, later, defenses).

Built-in attacks register themselves with :func:`register_attack` when ``aisec.attacks`` is
imported; that package imports each module by name, so the list of built-ins is visible in one
place. Third-party attacks register through the ``aisec.attacks`` entry-point group::

    [project.entry-points."aisec.attacks"]
    my-attack = "my_package.my_module:MyAttack"
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, TypeVar

from aisec.errors import ConfigError

if TYPE_CHECKING:
    from aisec.attacks.base import Attack

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "aisec.attacks"

_ATTACKS: dict[str, type[Attack]] = {}
_plugins_loaded = False

A = TypeVar("A", bound="type[Attack]")


def register_attack(cls: A) -> A:
    """Class decorator: add an attack to the registry after checking its metadata."""
    from aisec.attacks.base import check_attack_class

    check_attack_class(cls)
    existing = _ATTACKS.get(cls.name)
    if existing is not None and existing is not cls:
        raise ConfigError(f"attack name {cls.name!r} is registered twice ({existing.__module__} and {cls.__module__})")
    _ATTACKS[cls.name] = cls
    return cls


def _load_builtins_and_plugins() -> None:
    global _plugins_loaded
    import aisec.attacks  # noqa: F401  (registers the built-ins)

    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plugin must not break aisec
            log.warning("attack plugin %s could not be loaded: %s", ep.value, exc)
            continue
        if cls.name not in _ATTACKS:
            register_attack(cls)


def attacks() -> dict[str, type[Attack]]:
    """Every registered attack by name, built-ins and plugins, sorted by goal then name."""
    _load_builtins_and_plugins()
    return dict(sorted(_ATTACKS.items(), key=lambda kv: (list(type(kv[1].goal)).index(kv[1].goal), kv[0])))


def get_attack(name: str) -> type[Attack]:
    """The attack registered under ``name``; :class:`ConfigError` lists the known names otherwise."""
    known = attacks()
    try:
        return known[name]
    except KeyError:
        raise ConfigError(f"unknown attack {name!r}; known attacks: {', '.join(known)}") from None
