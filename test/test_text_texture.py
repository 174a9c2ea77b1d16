"""FindingQuery.texture: the lesion density a sentence states."""

from __future__ import annotations

import pytest

from rexground.text.parser import parse_finding


@pytest.mark.parametrize(
    ("text", "texture"),
    [
        ("Ground-glass nodule in the right upper lobe.", "ground-glass"),
        ("6 mm GGN in the left lower lobe", "ground-glass"),
        ("Nonsolid nodule", "ground-glass"),
        ("Part-solid nodule in the RLL", "part-solid"),
        ("Partially solid lesion", "part-solid"),
        ("Subsolid nodule", "part-solid"),
        ("Semi-solid nodule", "part-solid"),
        ("Ground glass nodule with a solid component", "part-solid"),
        ("Calcified granuloma in the left lower lobe", "calcified"),
        ("Nodule with calcification", "calcified"),
        ("Solid nodule, 8 mm", "solid"),
        ("Soft tissue density nodule", "solid"),
        ("Nodule without calcification", None),
        ("Non-calcified nodule", None),
        ("Nodule in the right lower lobe", None),
    ],
)
def test_texture_words(text, texture):
    assert parse_finding(text).texture == texture


def test_texture_is_in_the_query_dump():
    assert parse_finding("Ground-glass opacity").model_dump()["texture"] == "ground-glass"
