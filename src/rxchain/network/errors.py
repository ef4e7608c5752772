"""The network kit's errors and warning (all :class:`rxchain.errors.BadInput`: a parameter or a folder is wrong)."""

from __future__ import annotations


from rxchain.errors import BadInput


class KitError(BadInput):
    """Base class of every error raised while generating or reading a network kit."""


class KitExistsError(KitError):
    """The output directory already holds a network kit and ``overwrite`` was not given."""


class KitDirectoryNotEmptyError(KitError):
    """The output directory holds files that are not a network kit; the kit refuses to mix in."""


class KitRunningError(KitError):
    """A node of the kit to be overwritten is still running."""


class InvalidKitParameterError(KitError, ValueError):
    """An argument of :func:`init_network` is out of range or malformed."""


class PortConflictError(InvalidKitParameterError):
    """Two nodes (or two services of one node) would listen on the same port, or a port is invalid."""


class UnsupportedEvmVersionError(KitError, ValueError):
    """The requested EVM version has no milestone mapping in the kit."""


class InvalidExtraDataError(KitError, ValueError):
    """A genesis/block ``extraData`` value is not a well-formed QBFT extraData."""


class KitNotFoundError(KitError):
    """No kit manifest (kit.json) was found in the given directory."""


class KitWarning(UserWarning):
    """A kit setting that works but that an operator should reconsider (also recorded in the kit)."""
