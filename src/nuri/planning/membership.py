"""Which workload a request belongs to: `model: workload:<name>`, the `x-nuri-workload` header,
or, for a request that asks for the default model, its key's default workload (`nuri keys create
--workload W`).

The gateway calls `workload_for` after authentication and `routed_model` to know what to resolve:
a request of a planned workload is routed by the workload's plan (its `workload:<name>` alias).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from nuri.errors import InvalidRequest, ModelNotFound
from nuri.principal import Principal
from nuri.workloads import WORKLOAD_PREFIX, Workload

if TYPE_CHECKING:
    from nuri.config import NuriConfig

HEADER = "x-nuri-workload"


def _known(config: NuriConfig, name: str) -> Workload | None:
    """A declared workload, or a planned one the routing file names (with its name alone)."""
    found = config.workloads.get(name)
    if found is not None:
        return found
    plan = config.workloads.plan
    if plan is not None and name in plan.workloads:
        return Workload(name=name)
    return None


def workload_for(config: NuriConfig, requested_model: str | None, headers: Mapping[str, str],
                 principal: Principal) -> Workload | None:
    """The request's workload, or None. An unknown workload name is the client's error (404 for
    the model, 400 for the header), and so is a header that disagrees with a `workload:` model."""
    from_model = None
    if requested_model and requested_model.startswith(WORKLOAD_PREFIX):
        from_model = requested_model[len(WORKLOAD_PREFIX):]
    header = (headers.get(HEADER) or "").strip() or None
    if from_model and header and from_model != header:
        raise InvalidRequest(f"model {requested_model!r} and header {HEADER}: {header} name different workloads",
                             param="model")
    if header and requested_model not in (None, "", "default", WORKLOAD_PREFIX + header):
        raise InvalidRequest(f"header {HEADER}: {header} routes by the workload's plan; send model 'default' or "
                             f"'{WORKLOAD_PREFIX}{header}', not {requested_model!r}", param="model")
    name = from_model or header
    if name is None:
        if principal.workload is None or requested_model not in (None, "", "default"):
            return None          # a model named outright is the client's choice, not the key's
        name = principal.workload
    workload = _known(config, name)
    if workload is None:
        known = ", ".join(w.name for w in config.workloads.all) or "none"
        if from_model:
            raise ModelNotFound(f"workload {name!r} does not exist; known workloads: {known}", param="model")
        if header:
            raise InvalidRequest(f"header {HEADER} names unknown workload {name!r}; known workloads: {known}")
        raise InvalidRequest(f"this API key's default workload {name!r} is not in the running config (known "
                             f"workloads: {known}); name a model or workload, or ask an admin to fix the key",
                             code="key_workload_unknown")
    return workload


def routed_model(requested_model: str | None, workload: Workload | None) -> str | None:
    """What the catalog resolves: the workload's alias when there is a workload, else the model asked."""
    return workload.alias if workload is not None else requested_model
