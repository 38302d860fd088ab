"""The gateway's status page at ``/ui``: deployments' state live, charts over the last hour, and
(once usage is recorded) usage and cost. See ``_router`` for how the browser authenticates."""

from ._recorder import Recorder
from ._router import RECORDER_ATTR, create_ui_router
from ._usage import USAGE_ATTR, UsageReport, UsageSeries, UsageSource

__all__ = [
    "RECORDER_ATTR",
    "USAGE_ATTR",
    "Recorder",
    "UsageReport",
    "UsageSeries",
    "UsageSource",
    "create_ui_router",
]
