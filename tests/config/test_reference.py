"""docs/configuration.md is generated from the schema: it must be current, and every key must say what it does."""

from __future__ import annotations

from gru_lab.config import reference
from tests.conftest import ROOT


def test_configuration_reference_is_current():
    written = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert written == reference.render(), "docs/configuration.md is stale: run `make docs`"


def test_every_key_of_every_section_is_documented():
    for heading, prefix, cls in reference.SECTIONS:
        comments = reference.field_comments(cls)
        assert set(comments) == set(cls.model_fields), heading
        undocumented = [f"{prefix}{name}" for name, (_, comment) in comments.items() if not comment]
        assert not undocumented, f"keys without a comment in schema.py: {undocumented}"
    text = reference.render()
    assert "`model.loops`" in text and "`train.early_stopping.monitor`" in text and "`data.num_words`" in text
