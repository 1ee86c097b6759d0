"""The fault registry: one class per fault kind, one file per kind in this package (a
module whose name does not start with "_" is a kind, found by that name). Each class
has its `kind` (the matrix's `fault.kind`), its parameter schema (`params`), target
resolution (`from_params`), inject, heal, the `sweep` of leftovers and its
`max_switchover_s` derived from the HA timers. Everything a fault touches is inside our
own compose project (found by its labels), so a sweep never touches anything else.

    from_spec(tb, spec, master, slave) -> Fault      a fault from a matrix entry
    fault_class(kind) / REGISTRY[kind]                the class of a kind
    validate(spec) -> (cls, params)                   the schema check (FaultSpecError)
    FaultSet(tb, history=None), heal_all(tb)          heal what a test or a killed run left
"""
from __future__ import annotations

import importlib
import pkgutil

from ..util import exec_checked, wait_for
from ._base import (CALL_MARGIN_S, HOST_TARGET, REGISTRY, SIP_START_S, UNIT_TARGET, Fault, HostFault,
                    FaultSpecError, Param, Timers, fault_class, unit_moved_s, validate)
from ._host_ctl import ctl, db_main_host, restore_db_main
from ._set import FaultSet, from_spec, heal_all, prepare, sweeps
from ._units import bring_ports_up, placement, restore_placement, unit_status

for _m in pkgutil.iter_modules(__path__):
    if not _m.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_m.name}")

from .bond_port_down import PortDown  # noqa: E402
from .deadlock import Deadlock  # noqa: E402
from .host_power_off import HostPowerOff  # noqa: E402
from .host_shutdown import HostShutdown  # noqa: E402
from .kill_process import APPS, KillProcess  # noqa: E402
from .mysql_kill import MysqlKill  # noqa: E402
from .mysql_shutdown import MysqlShutdown  # noqa: E402
from .network_cut import NFT_TABLE, NetworkCut, remove_cuts  # noqa: E402
from .service_quit import ServiceQuit  # noqa: E402
from .unit_app_crash import UnitAppFault  # noqa: E402
from .unit_ctrl_cut import UnitCtrlCut  # noqa: E402
from .unit_power_off import UnitPowerOff  # noqa: E402
from .unit_unpolled import UnitUnpolled  # noqa: E402
from .voice_path_cut import VoicePathCut  # noqa: E402
from .voip_ports_down import VoipPortsDown  # noqa: E402

__all__ = [
    "APPS", "CALL_MARGIN_S", "HOST_TARGET", "NFT_TABLE", "REGISTRY", "SIP_START_S", "UNIT_TARGET",
    "Deadlock", "Fault", "FaultSet", "FaultSpecError", "HostFault", "HostPowerOff", "HostShutdown",
    "KillProcess", "MysqlKill", "MysqlShutdown", "NetworkCut", "Param", "PortDown",
    "ServiceQuit", "Timers", "UnitAppFault", "UnitCtrlCut", "UnitPowerOff", "UnitUnpolled",
    "VoicePathCut", "VoipPortsDown", "bring_ports_up", "ctl", "db_main_host", "exec_checked",
    "fault_class", "from_spec", "heal_all", "placement", "prepare", "remove_cuts",
    "restore_db_main", "restore_placement", "sweeps", "unit_moved_s", "unit_status", "validate", "wait_for"]
