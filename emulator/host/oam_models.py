"""Request bodies and path/query constraints of the OAM API (tboamapp).

Every body is a strict pydantic model: unknown fields, wrong types ("yes" for a bool, "5"
for a number) and out-of-range values are refused with 422 before any handler runs."""
from __future__ import annotations

from ipaddress import IPv4Address
from typing import Annotated, Optional

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$"       # configurations, units, trunks, stacks, accounts
PREFIX_RE = r"^[0-9*#+]{0,32}$"                       # called-number prefix ('' = every number)
HOST_RE = r"^[A-Za-z0-9][A-Za-z0-9-]{0,31}$"

Name = Annotated[str, Field(pattern=NAME_RE, description="1-64 of A-Z a-z 0-9 . _ + -")]
Prefix = Annotated[str, Field(pattern=PREFIX_RE, description="called-number prefix, up to 32 of 0-9 * # +")]
Priority = Annotated[StrictInt, Field(ge=0, le=1000, description="lower is tried first")]
Port = Annotated[StrictInt, Field(ge=1, le=65535)]
MaxCalls = Annotated[StrictInt, Field(ge=0, le=100000, description="concurrent calls; 0 refuses every call")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _some_field(model: BaseModel) -> BaseModel:
    if not model.model_dump(exclude_none=True):
        raise ValueError("give at least one field to change (null changes nothing)")
    return model


class RouteIn(Strict):
    """One destination address of a route; several rows with one prefix are alternates."""
    config: Optional[Name] = Field(None, description="default: the active configuration")
    prefix: Prefix
    priority: Priority = 0
    host: IPv4Address
    port: Port = 5060


class RouteUpdate(Strict):
    config: Optional[Name] = None
    prefix: Optional[Prefix] = None
    priority: Optional[Priority] = None
    host: Optional[IPv4Address] = None
    port: Optional[Port] = None

    _some = model_validator(mode="after")(_some_field)


class AccountIn(Strict):
    name: Name
    enabled: StrictBool = True
    max_calls: MaxCalls = 1000


class AccountUpdate(Strict):
    enabled: Optional[StrictBool] = None
    max_calls: Optional[MaxCalls] = None

    _some = model_validator(mode="after")(_some_field)


class EnabledIn(Strict):
    enabled: StrictBool


class RunIn(Strict):
    run: StrictBool = Field(description="true: Run; false: Don't Run")
