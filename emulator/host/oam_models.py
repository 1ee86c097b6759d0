"""Request bodies and path/query constraints of the OAM API (tboamapp).

Every body is a strict pydantic model: unknown fields, wrong types ("yes" for a bool, "5"
for a number) and out-of-range values are refused with 422 before any handler runs."""
from __future__ import annotations

from ipaddress import IPv4Address
from typing import Annotated, Optional

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

from ..ss7 import MAX_CIC, MAX_PC

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


PointCode = Annotated[StrictInt, Field(ge=0, le=MAX_PC, description="14-bit ITU point code")]
Cic = Annotated[StrictInt, Field(ge=1, le=MAX_CIC, description="ISUP circuit identification code")]


class RouteIn(Strict):
    """One destination of a route, a SIP address (host, port) or an ISUP trunk group;
    several rows with one prefix are alternates."""
    config: Optional[Name] = Field(None, description="default: the active configuration")
    prefix: Prefix
    priority: Priority = 0
    host: Optional[IPv4Address] = Field(None, description="a SIP destination's address")
    port: Optional[Port] = Field(None, description="with host; default 5060")
    trunk_group: Optional[Name] = Field(None, description="an ISUP trunk group, instead of host")

    @model_validator(mode="after")
    def _one_destination(self):
        if (self.host is None) == (self.trunk_group is None):
            raise ValueError("give either host (a SIP destination) or trunk_group (ISUP)")
        if self.trunk_group is not None and self.port is not None:
            raise ValueError("port goes with host, not with trunk_group")
        if self.host is not None and self.port is None:
            self.port = 5060
        return self


class RouteUpdate(Strict):
    """host (and port) or trunk_group replaces the route's destination."""
    config: Optional[Name] = None
    prefix: Optional[Prefix] = None
    priority: Optional[Priority] = None
    host: Optional[IPv4Address] = None
    port: Optional[Port] = None
    trunk_group: Optional[Name] = None

    @model_validator(mode="after")
    def _one_destination(self):
        _some_field(self)
        if self.trunk_group is not None and (self.host is not None or self.port is not None):
            raise ValueError("give either host/port (a SIP destination) or trunk_group (ISUP)")
        return self


class LinksetIn(Strict):
    """The linkset to the far end: the system's point code and the far end's."""
    opc: PointCode = Field(description="the system's own point code")
    dpc: PointCode = Field(description="the far end's point code")

    @model_validator(mode="after")
    def _two_ends(self):
        if self.opc == self.dpc:
            raise ValueError("the far end's point code (dpc) must differ from the system's (opc)")
        return self


class LinkIn(Strict):
    unit: Name = Field(description="the TMedia unit that ends the link")


class TrunkGroupIn(Strict):
    """An ISUP trunk group: the circuits of one unit on one linkset."""
    linkset: Name
    unit: Name = Field(description="the TMedia unit whose circuits these are")
    cic_first: Cic
    cic_last: Cic

    @model_validator(mode="after")
    def _range(self):
        if self.cic_first > self.cic_last:
            raise ValueError("cic_first must not be above cic_last")
        return self


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
