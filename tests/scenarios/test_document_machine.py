"""DocumentMachineTest, ported: seven document scenarios run from definitions/document.yaml alone."""

from __future__ import annotations

import pytest

from order_machine.errors import NotInitialisedError
from order_machine.machine import Machine

from ._harness import ScenarioBus, new_document


def test_create_definition_get_valid_definition(document_machine: Machine) -> None:
    definition = document_machine.definition
    assert definition is not None
    assert definition.initial == "Draft"


async def test_document_should_transition_through_complete_workflow(
    document_machine: Machine, scenario: ScenarioBus
) -> None:
    document = new_document(document_machine, "doc-1", "Sample Document", "This is a sample document", "author-1",
                            scenario.bus)
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


async def test_document_should_handle_rejection_workflow(document_machine: Machine, scenario: ScenarioBus) -> None:
    document = new_document(document_machine, "doc-2", "Rejected Document", "This document will be rejected",
                            "author-2", scenario.bus)
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
    document_machine: Machine, scenario: ScenarioBus
) -> None:
    document = new_document(document_machine, "doc-3", "Archived Document", "This document will be archived",
                            "author-3", scenario.bus)
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


async def test_document_should_handle_deletion_workflow(document_machine: Machine, scenario: ScenarioBus) -> None:
    document = new_document(document_machine, "doc-4", "Deleted Document", "This document will be deleted",
                            "author-4", scenario.bus)
    await document.initialise()

    assert await document.delete() is True
    assert document.state == "Deleted"
    assert document.allowed_actions == ()


async def test_document_should_throw_exception_when_not_initialized(
    document_machine: Machine, scenario: ScenarioBus
) -> None:
    document = new_document(document_machine, "doc-5", "Uninitialized Document", "This document is not initialized",
                            "author-5", scenario.bus)

    with pytest.raises(NotInitialisedError, match="doc-5"):
        await document.submit()


async def test_document_should_handle_invalid_transitions_gracefully(
    document_machine: Machine, scenario: ScenarioBus
) -> None:
    document = new_document(document_machine, "doc-6", "Test Document", "Testing invalid transitions", "author-6",
                            scenario.bus)
    await document.initialise()

    assert await document.approve("reviewer-6") is False
    assert document.state == "Draft"
    assert document.reviewers == []
