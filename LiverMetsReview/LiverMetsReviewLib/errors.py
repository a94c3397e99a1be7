"""Errors raised for bad input: one clear sentence saying what is wrong and what to do."""


class LiverMetsError(ValueError):
    """Input the core cannot use. The message is meant for the user, as is."""


class GeometryError(LiverMetsError):
    """Images whose grids cannot be matched as requested."""


class MissingDataError(LiverMetsError):
    """A required series, tag, b-value or label is absent."""
