"""LMS Toolkit replacement: extractor CSVs (LMS-UDM) into an LMS data store, then harmonized.

The extractors (Canvas, Google Classroom, Schoology) write one CSV per scope and
run; `layout` finds them on any fsspec storage, `read` turns one into typed rows
or a clear error, `schema` owns the Toolkit-compatible ``lms`` tables and their
migrations, and `load` applies each file as one transaction.
"""

from .errors import LmsDatabaseError, LmsError, LmsFileError
from .layout import LmsFile, find_files
from .load import FileResult, LoadResult, load_directory
from .read import read_file
from .udm import RESOURCES, Resource

__all__ = [
    "RESOURCES",
    "FileResult",
    "LmsDatabaseError",
    "LmsError",
    "LmsFile",
    "LmsFileError",
    "LoadResult",
    "Resource",
    "find_files",
    "load_directory",
    "read_file",
]
