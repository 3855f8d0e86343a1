"""Validating Ed-Fi records before they reach an API (or, in the sandbox, as one answers).

The schema layer (``check_record``) needs only the model; the input layers
(descriptors, uniqueness, references) add their findings as the same
``Problem`` values.
"""

from .problems import Problem, by_path
from .schema import bind_record, check_record, pascal

__all__ = ["Problem", "bind_record", "by_path", "check_record", "pascal"]
