"""Settings of an order-machine process, read from ORDER_MACHINE_* variables when asked, never at import."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .order import default_definitions_dir


class Settings(BaseSettings):
    """Everything the composition root needs; pass one to bootstrap() or create_app()."""

    model_config = SettingsConfigDict(env_prefix="ORDER_MACHINE_", extra="ignore")

    db_url: str = Field(default="sqlite:///orders.db", description="memory://, sqlite:///path.db or postgresql://...")
    definitions_dir: Path = Field(
        default_factory=default_definitions_dir,
        description="ORDER_MACHINE_DEFINITIONS_DIR, else the rule of order.default_definitions_dir() "
                    "($ORDER_MACHINE_DEFINITIONS, ./definitions, the packaged definitions)",
    )
    durability: Literal["full", "fast"] = Field(
        default="full", description="SQLite: full = fsync every commit; fast may lose the last commits on power loss"
    )
    read_your_writes: bool = Field(
        default=True, description="a query waits until the read models show the writes it must (never a command)"
    )
    read_wait_seconds: float = Field(default=2.0, ge=0, description="longest wait for read-your-writes")
    projection_batch_size: int = Field(default=500, ge=1)
    projection_poll_seconds: float = Field(default=0.5, gt=0)
    projection_linger_seconds: float = Field(
        default=0.05, ge=0, le=1,
        description="after a short batch, wait this long for more events unless a query waits (larger batches)",
    )
    run_projections: bool = Field(default=True, description="run the projection runner in this process")
    projectors: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="your own projectors, as package.module:ClassName, comma-separated in ORDER_MACHINE_PROJECTORS "
                    "(run, rebuilt and reported beside the built-in ones; see docs/projectors.md)",
    )
    projection_retries: int = Field(
        default=5, ge=0, le=20, description="retries of an event a projection fails on (backoff 0.1 s doubling to "
                                            "5 s) before its stream is quarantined (docs/quarantine.md)")
    command_retries: int = Field(default=10, ge=0, description="reloads after a concurrent write before giving up")
    order_cache_size: int = Field(
        default=10_000, ge=0, description="orders kept after a command to skip the next reload (0: always reload)"
    )
    workflow_cache_size: int = Field(
        default=10_000, ge=0,
        description="workflow instances kept after a command to skip the next reload (0: always reload)",
    )
    gc_threshold: int = Field(
        default=10_000, ge=0,
        description="serve only: freeze what startup allocated and run the young GC every N allocations "
                    "(Python's default is 700; 0 leaves the GC as it is)",
    )
    base_url: str | None = Field(
        default=None, pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
        description="the public URL clients reach the API at (e.g. https://shop.example/api); `Location` "
                    "headers start with it. Unset: they are relative (/orders/ord-1), never built from `Host`",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # who may call the API, and how much a caller may send (docs/security.md)
    auth: Literal["none", "keys"] | None = Field(
        default=None, description="keys: every route but /health needs `Authorization: Bearer KEY` "
                                  "(order-machine keys create); none: no check. Unset: none, but `serve` refuses "
                                  "a non-loopback host until one is chosen",
    )
    max_body_bytes: int = Field(default=1_048_576, ge=1, description="larger request bodies answer 413 too_large")
    body_timeout_seconds: float = Field(
        default=10.0, gt=0, description="a request body must arrive whole this soon after its headers, else 408",
    )
    max_header_bytes: int = Field(
        default=16_384, ge=1024, description="a request's target and headers may take at most this many bytes, "
                                             "else 431 (serve also gives it to uvicorn: h11_max_incomplete_event_size)",
    )
    header_timeout_seconds: float = Field(
        default=10.0, gt=0, description="serve only: a request's line and headers must arrive this soon after the "
                                        "connection opens or their first byte, else the connection is closed",
    )
    max_items_per_order: int = Field(
        default=1000, ge=1, le=1000,
        description="items an order may hold, more is 422 `items` (it can only lower the request models' ceiling of 1000)",
    )
    # PostgreSQL operational settings
    pg_pool_size: int = Field(default=10, ge=1)
    pg_statement_timeout_ms: int = Field(default=30_000, ge=0)
    pg_idle_in_transaction_timeout_ms: int = Field(default=60_000, ge=0)
    pg_schema: str = Field(default="order_machine", pattern=r"^[a-z_][a-z0-9_]*$")

    @field_validator("projectors", mode="before")
    @classmethod
    def _split_projectors(cls, value: Any) -> Any:
        # one variable, several projectors: "app.projections:Totals, app.projections:Audit"
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value
