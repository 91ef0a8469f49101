"""Errors raised by aisec.

Every error aisec raises on purpose derives from :class:`AisecError`, so a caller can catch
them all at once; each also derives from the built-in exception a Python user would expect,
so ``except ValueError`` still works for bad values::

    AisecError
    ├── ConfigError (ValueError)             a spec, config or option is wrong
    ├── InputValidationError (ValueError)    an array, tensor or text has the wrong shape/range/type
    ├── UnsupportedTargetError (TypeError)   the target cannot provide what an attack needs
    ├── AccessDeniedError (PermissionError)  the threat model forbids it (e.g. gradients, black-box)
    ├── UntrustedFileError (PermissionError) loading the file would run its code; not trusted
    ├── BudgetExceededError                  the query budget of the threat model is spent
    ├── TargetUnavailableError (ConnectionError)  a remote target did not answer usefully
    └── MissingDependencyError (ImportError) an optional extra is not installed

The CLI prints an ``AisecError`` as one line and exits with status 2. Every error pickles with
its message and attributes, so one raised in a worker process or a Ray task reaches the caller
as itself.
"""

from __future__ import annotations

from collections.abc import Iterable


def _rebuild(cls: type[AisecError], args: tuple[object, ...]) -> AisecError:
    """An error of ``cls`` with ``args`` set and ``__init__`` not run (its state is restored after)."""
    err = cls.__new__(cls)
    err.args = args
    return err


class AisecError(Exception):
    """Root of every error aisec raises on purpose."""

    def __reduce__(self) -> tuple[object, ...]:
        # Exception's own reduce calls cls(*self.args), i.e. cls(message): wrong for errors whose
        # __init__ takes other arguments (a worker's error then breaks the process pool)
        return (_rebuild, (type(self), self.args), self.__dict__ or None)


class ConfigError(AisecError, ValueError):
    """A spec, an attack config or an option has an invalid or unknown value."""


class InputValidationError(AisecError, ValueError):
    """An input has the wrong type, shape, dtype or range.

    Parameters
    ----------
    argument:
        Name of the argument that was wrong.
    expected:
        What was expected, in words.
    received:
        What was received, in words.
    """

    def __init__(self, argument: str, expected: str, received: object) -> None:
        self.argument = argument
        self.expected = expected
        self.received = received
        super().__init__(f"{argument}: expected {expected}, got {received}")


class UnsupportedTargetError(AisecError, TypeError):
    """The target cannot provide the capabilities an attack needs."""

    def __init__(self, message: str, missing: Iterable[object] = ()) -> None:
        self.missing = tuple(str(m) for m in missing)
        if self.missing:
            message = f"{message} (missing: {', '.join(self.missing)})"
        super().__init__(message)


class AccessDeniedError(AisecError, PermissionError):
    """The target view refuses an access that the threat model does not grant."""


class UntrustedFileError(AisecError, PermissionError):
    """Loading the file would execute code from it, and the user has not said they trust it."""


class BudgetExceededError(AisecError):
    """The query budget of the threat model is spent."""

    def __init__(self, limit: int, used: int, requested: int, *, detail: str | None = None) -> None:
        self.limit = limit
        self.used = used
        self.requested = requested
        message = f"query budget exceeded: {used} of {limit} queries used, {requested} more requested"
        super().__init__(message if detail is None else f"query budget too small: {detail}")


class TargetUnavailableError(AisecError, ConnectionError):
    """A remote target could not be reached or answered with an error."""


class MissingDependencyError(AisecError, ImportError):
    """An optional dependency is missing; the message says which extra installs it."""

    def __init__(self, package: str, extra: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(f'{package} is not installed: pip install "aisec[{extra}]"')


__all__ = [
    "AccessDeniedError",
    "AisecError",
    "BudgetExceededError",
    "ConfigError",
    "InputValidationError",
    "MissingDependencyError",
    "TargetUnavailableError",
    "UnsupportedTargetError",
    "UntrustedFileError",
]
