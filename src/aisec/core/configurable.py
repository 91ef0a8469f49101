"""A component built from a frozen dataclass config: attacks and defenses share this."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from aisec.errors import ConfigError


class Configurable:
    """Holds ``self.config``, an instance of the class's ``Config`` dataclass.

    Built from a config object or from keyword parameters; unknown parameter names are a
    :class:`ConfigError` that lists the allowed ones, and ``params()`` gives the plain values that
    findings, reports and specs record.
    """

    name: ClassVar[str]
    Config: ClassVar[type]

    def __init__(self, config: Any = None, /, **params: Any) -> None:
        if config is None:
            config = self.config_from(params)
        elif params:
            raise ConfigError(f"{self.name}: pass a config or keyword parameters, not both")
        if not isinstance(config, self.Config):
            raise ConfigError(f"{self.name}: config must be a {self.Config.__name__}, got {type(config).__name__}")
        self.config = config

    @classmethod
    def config_from(cls, params: Mapping[str, Any]) -> Any:
        """Build the config from plain parameters; unknown names are an error listing the allowed ones."""
        allowed = [f.name for f in dataclasses.fields(cls.Config)]
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise ConfigError(f"{cls.name}: unknown parameter {', '.join(unknown)}; allowed: {', '.join(allowed)}")
        try:
            return cls.Config(**params)
        except TypeError as exc:
            raise ConfigError(f"{cls.name}: {exc}") from None

    def params(self) -> dict[str, Any]:
        """The config as plain values (``asdict``), as written to findings, reports and specs."""
        return dataclasses.asdict(self.config)


def check_choice(what: str, value: object, allowed: Sequence[object]) -> None:
    """Raise a one-line :class:`ConfigError` when ``value`` is not one of ``allowed``.

    ``what`` names the field as a user writes it (``"pgd.norm"``, ``"target.protocol"``); the message
    lists the allowed values in their order, e.g. ``pgd.norm: 'l3' is not allowed; allowed: linf, l2``.
    """
    if value not in allowed:
        raise ConfigError(f"{what}: {value!r} is not allowed; allowed: {', '.join(str(a) for a in allowed)}")
