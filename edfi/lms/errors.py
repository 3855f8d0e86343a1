"""The LMS loader's errors (defined with every core exception in ``edfi.errors``)."""

from edfi.errors import LmsDatabaseError, LmsError, LmsFileError

__all__ = ["LmsDatabaseError", "LmsError", "LmsFileError"]
