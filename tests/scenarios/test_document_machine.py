"""DocumentMachineTest, ported: seven document scenarios run from definitions/document.yaml alone, on each engine."""

from __future__ import annotations

import pytest

from ._harness import Entities, ScenarioBus


def test_create_definition_get_valid_definition(entities: Entities) -> None:
    definition = entities.machine("document").definition
    assert definition is not None
    assert definition.initial == "Draft"


async def test_document_should_transition_through_complete_workflow(
    entities: Entities, scenario: ScenarioBus
) -> None:
    document = entities.document("doc-1", "Sample Document", "This is a sample document", "author-1")
    assert document.state == "Draft"
    await document.initialise()
    assert document.state == "Draft"

    assert await document.submit() is True
    assert document.state == "UnderReview"
    assert await document.approve("reviewer-1") is True
    assert document.state == "Approved"
    assert "reviewer-1" in document.reviewers
    assert await document.publish() is True
    assert document.state == "Published"
    assert (document.title, document.author) == ("Sample Document", "author-1")


async def test_document_should_handle_rejection_workflow(entities: Entities, scenario: ScenarioBus) -> None:
    document = entities.document("doc-2", "Rejected Document", "This document will be rejected", "author-2")
    await document.initialise()
    await document.submit()
    assert document.state == "UnderReview"

    assert await document.reject("reviewer-2", "Needs more detail") is True
    assert document.state == "Rejected"
    assert document.rejection_reason == "Needs more detail"
    assert "reviewer-2" in document.reviewers

    assert await document.revise() is True
    assert document.state == "Draft"
    assert document.rejection_reason is None


async def test_document_should_handle_archive_and_restore_workflow(
    entities: Entities, scenario: ScenarioBus
) -> None:
    document = entities.document("doc-3", "Archived Document", "This document will be archived", "author-3")
    await document.initialise()
    await document.submit()
    await document.approve("reviewer-3")
    await document.publish()
    assert document.state == "Published"

    assert await document.archive() is True
    assert document.state == "Archived"
    assert await document.restore() is True
    assert document.state == "Draft"

    await scenario.settle()
    assert scenario.path("doc-3") == ["Draft", "UnderReview", "Approved", "Published", "Archived", "Draft"]


async def test_document_should_handle_deletion_workflow(entities: Entities, scenario: ScenarioBus) -> None:
    document = entities.document("doc-4", "Deleted Document", "This document will be deleted", "author-4")
    await document.initialise()

    assert await document.delete() is True
    assert document.state == "Deleted"
    assert document.allowed_actions == ()


async def test_document_should_throw_exception_when_not_initialized(
    entities: Entities, scenario: ScenarioBus
) -> None:
    document = entities.document("doc-5", "Uninitialized Document", "This document is not initialized", "author-5")

    with pytest.raises(entities.not_initialised, match="doc-5"):
        await document.submit()


async def test_document_should_handle_invalid_transitions_gracefully(
    entities: Entities, scenario: ScenarioBus
) -> None:
    document = entities.document("doc-6", "Test Document", "Testing invalid transitions", "author-6")
    await document.initialise()

    assert await document.approve("reviewer-6") is False
    assert document.state == "Draft"
    assert document.reviewers == []
