"""OnboardingMachineTest, ported: six onboarding scenarios run from definitions/onboarding.yaml alone, on each
engine."""

from __future__ import annotations

import pytest

from ._harness import Entities, ScenarioBus


def test_create_definition_get_valid_definition(entities: Entities) -> None:
    definition = entities.machine("onboarding").definition
    assert definition is not None
    assert definition.initial == "Registration"


async def test_user_onboarding_should_transition_through_complete_workflow(
    entities: Entities, scenario: ScenarioBus
) -> None:
    onboarding = entities.onboarding("user-1", "user1@example.com")
    assert onboarding.state == "Registration"
    await onboarding.initialise()
    assert onboarding.state == "Registration"

    assert await onboarding.verify_email() is True
    assert onboarding.state == "EmailVerification"
    assert onboarding.email_verified is True

    assert await onboarding.setup_profile("John Doe", "profile.jpg") is True
    assert onboarding.state == "ProfileSetup"
    assert onboarding.full_name == "John Doe"
    assert onboarding.profile_picture == "profile.jpg"

    preferences = {"theme": "dark", "language": "en", "notifications": "enabled"}
    assert await onboarding.configure_preferences(preferences) is True
    assert onboarding.state == "Preferences"
    assert len(onboarding.preferences) == 3

    assert await onboarding.complete_welcome() is True
    assert onboarding.state == "Welcome"
    assert await onboarding.finish() is True
    assert onboarding.state == "Completed"


async def test_user_onboarding_should_handle_suspension_and_resume_workflow(
    entities: Entities, scenario: ScenarioBus
) -> None:
    onboarding = entities.onboarding("user-2", "user2@example.com")
    await onboarding.initialise()
    await onboarding.verify_email()
    assert onboarding.state == "EmailVerification"

    assert await onboarding.suspend("Account verification required") is True
    assert onboarding.state == "Suspended"
    assert onboarding.suspension_reason == "Account verification required"

    assert await onboarding.resume() is True
    assert onboarding.state == "Registration"
    assert onboarding.suspension_reason is None


async def test_user_onboarding_should_handle_suspension_from_multiple_states(
    entities: Entities, scenario: ScenarioBus
) -> None:
    onboarding1 = entities.onboarding("user-3", "user3@example.com")
    await onboarding1.initialise()
    await onboarding1.verify_email()
    await onboarding1.setup_profile("Jane Smith")
    assert onboarding1.state == "ProfileSetup"
    assert await onboarding1.suspend("Manual review required") is True
    assert onboarding1.state == "Suspended"

    onboarding2 = entities.onboarding("user-4", "user4@example.com")
    await onboarding2.initialise()
    await onboarding2.verify_email()
    await onboarding2.setup_profile("Bob Johnson")
    await onboarding2.configure_preferences({"theme": "light"})
    await onboarding2.complete_welcome()
    assert onboarding2.state == "Welcome"
    assert await onboarding2.suspend("Security check pending") is True
    assert onboarding2.state == "Suspended"

    await scenario.settle()
    assert scenario.path("user-4")[-2:] == ["Welcome", "Suspended"]


async def test_user_onboarding_should_throw_exception_when_not_initialized(
    entities: Entities, scenario: ScenarioBus
) -> None:
    onboarding = entities.onboarding("user-5", "user5@example.com")

    with pytest.raises(entities.not_initialised, match="user-5"):
        await onboarding.verify_email()


async def test_user_onboarding_should_handle_invalid_transitions_gracefully(
    entities: Entities, scenario: ScenarioBus
) -> None:
    onboarding = entities.onboarding("user-6", "user6@example.com")
    await onboarding.initialise()

    assert await onboarding.setup_profile("Invalid User") is False
    assert onboarding.state == "Registration"
    assert onboarding.full_name is None
