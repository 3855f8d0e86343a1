"""Reference resolution: the per-reference key plan, and an abstract reference resolved locally.

``ReferenceIndex`` works out once per reference how its fields map onto each
key it can name; these tests hold that plan to ``target_key`` (the per-value
mapping it replaced) for every reference of the model.
"""

from __future__ import annotations

from edfi.model import _all_references, builtin_model
from edfi.validate.references import ReferenceIndex, target_key

MODEL = builtin_model()


def test_plan_names_the_same_key_as_target_key_for_every_reference() -> None:
    index = ReferenceIndex(MODEL)
    checked = 0
    for resource in MODEL.resources.values():
        for ref in _all_references(resource.shape):
            values = {f.name: f"value of {f.name}" for f in ref.fields}
            plan = index._plan(ref)
            assert [t for t, _, _ in plan] == list(MODEL.targets(ref))
            for t, names, order in plan:
                expected = target_key(MODEL[t], values)
                if expected is None:
                    assert order is None
                    continue
                assert order is not None
                assert names == tuple(expected)
                assert tuple(values[n] for n in order) == tuple(expected.values())
                checked += 1
    assert checked > 100


def test_abstract_reference_resolves_against_a_local_school() -> None:
    """``educationOrganizationReference`` names a school by ``educationOrganizationId``."""
    index = ReferenceIndex(MODEL)
    index.add(MODEL["/ed-fi/schools"], {"schoolId": 255901001, "nameOfInstitution": "X"})
    rating = MODEL["/ed-fi/accountabilityRatings"]
    record = {
        "educationOrganizationReference": {"educationOrganizationId": 255901001},
        "schoolYearTypeReference": {"schoolYear": 2025},
        "ratingTitle": "A",
        "rating": "A",
    }
    assert index.resolve(rating, record, only_local_targets=True) == []
    record["educationOrganizationReference"] = {"educationOrganizationId": 9}
    (pending,) = index.resolve(rating, record, only_local_targets=True)
    assert pending.path == "educationOrganizationReference"
    assert ("/ed-fi/schools", (("schoolId", 9),)) in pending.candidates
