"""docs/crd-reference.md and docs/configuration.md are generated; they must match the code."""

from __future__ import annotations

from gong_operator import reference_docs
from webhook_app import contract
from webhook_app.settings import AppSettings


def test_generated_reference_docs_are_current() -> None:
    # Fails after a spec, settings or flag change until `python -m gong_operator.reference_docs --write` runs.
    assert reference_docs.main(["--check"]) == 0


def test_every_setting_is_a_described_contract_name() -> None:
    names = {reference_docs._env_name(info) for info in AppSettings.model_fields.values()}
    assert names == contract.CONFIG_KEYS | contract.SECRET_KEYS
    assert set(contract.DESCRIPTIONS) == names
    assert all(text.strip() for text in contract.DESCRIPTIONS.values())


def test_crd_reference_lists_every_spec_field_with_its_description() -> None:
    text = reference_docs.render_crd_reference()
    for path in ("spec.autoscaling.minReplicas", "spec.secrets.sourceRef.name", "spec.gong.authMode",
                 "spec.pod.tolerations[].effect", "status.conditions"):
        assert f"| `{path}` |" in text, path
    assert "refused with a message naming the field" in text
