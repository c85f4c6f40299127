"""Commands and queries of the order service, as pydantic models (CreateOrder, ConfirmOrder, GetOrder, ...).

Validation of the data a caller sends lives here (one place for the API, the CLI and Python callers).
Imports `ids` (the rule for ids and stored text) and pydantic; the service turns these into aggregate calls.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from .ids import Id, Key, StoredText, check_stored

Text = Annotated[StoredText, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Description = Annotated[StoredText, Field(max_length=2000)]
Money = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=4, allow_inf_nan=False)]


class Command(BaseModel):
    """Base of every command: an optional idempotency key (HTTP `Idempotency-Key`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)

    command_id: Key | None = Field(default=None, description="idempotency key")


class ItemLine(BaseModel):
    product_id: Id
    quantity: int = Field(gt=0, le=1_000_000, strict=True)
    unit_price: Money

    model_config = ConfigDict(
        extra="forbid", frozen=True,
        json_schema_extra={"examples": [{"product_id": "sku-42", "quantity": 2, "unit_price": "19.99"}]},
    )


class CreateOrder(Command):
    order_id: Id | None = Field(default=None, description="chosen by the caller, or generated")
    customer_id: Id
    description: Description = ""
    amount: Money | None = Field(default=None, description="initial amount before items")
    items: list[ItemLine] = Field(default_factory=list, max_length=1000)
    data: dict[str, object] = Field(default_factory=dict, description=(
        "values for the data fields order.yaml declares beyond customer_id, description, amount and items"))

    @field_validator("data")
    @classmethod
    def _storable(cls, data: dict[str, object]) -> dict[str, object]:
        check_stored(data, "data")
        return data


class AddOrderItem(Command):
    order_id: Id
    product_id: Id
    quantity: int = Field(gt=0, le=1_000_000, strict=True)
    unit_price: Money
    expected_version: int | None = Field(default=None, ge=0, description="refuse unless the order is at it")


class PerformAction(Command):
    """Any declared action of the order definition, with its data (Confirm, Ship, Cancel, ...)."""

    order_id: Id
    action: str
    data: dict[str, object] = Field(default_factory=dict)
    expected_version: int | None = Field(default=None, ge=0, description="refuse unless the order is at it")

    @field_validator("data")
    @classmethod
    def _storable(cls, data: dict[str, object]) -> dict[str, object]:
        check_stored(data, "data")  # InvalidCommandError naming the inner field: 422 on every backend
        return data


class ConfirmOrder(Command):
    order_id: Id


class StartProcessing(Command):
    order_id: Id


class ShipOrder(Command):
    order_id: Id
    tracking_number: Text
    shipping_address: Text


class DeliverOrder(Command):
    order_id: Id


class CancelOrder(Command):
    order_id: Id
    reason: Text


class ReturnOrder(Command):
    order_id: Id
    reason: Text


class UpdateOrderStatus(Command):
    """Move to a target state: the service finds the one declared action leading there, or refuses."""

    order_id: Id
    status: str
    data: dict[str, object] = Field(default_factory=dict)
    expected_version: int | None = Field(default=None, ge=0, description="refuse unless the order is at it")

    @field_validator("data")
    @classmethod
    def _storable(cls, data: dict[str, object]) -> dict[str, object]:
        check_stored(data, "data")
        return data


ACTION_COMMANDS: dict[type[Command], str] = {
    ConfirmOrder: "Confirm",
    StartProcessing: "StartProcessing",
    ShipOrder: "Ship",
    DeliverOrder: "Deliver",
    CancelOrder: "Cancel",
    ReturnOrder: "Return",
}


class CommandResult(BaseModel):
    """What an accepted command did. `duplicate` is True when its command id had been seen."""

    order_id: str
    state: str
    version: int
    position: int
    events: list[str] = Field(default_factory=list)
    duplicate: bool = False


# --------------------------------------------------------------------------- queries


class GetOrder(BaseModel):
    order_id: Id


class GetOrdersByCustomer(BaseModel):
    customer_id: Id
    limit: int = Field(default=50, ge=1, le=500)
    cursor: str | None = None


class GetOrdersByStatus(BaseModel):
    status: str
    limit: int = Field(default=50, ge=1, le=500)
    cursor: str | None = None


class GetOrderSummary(BaseModel):
    order_id: Id


Query = GetOrder | GetOrdersByCustomer | GetOrdersByStatus | GetOrderSummary
