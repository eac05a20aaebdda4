"""What the network probes (http, tcp) share: the closed vocabulary of results and the
total time budget for all of a probe's I/O. Connecting within that budget and naming a
failure is `aiki_hooks.connect`, which `aiki_hooks.http_client` (the outputs' client
too) builds on; nothing here imports http.client or ssl.
"""

from __future__ import annotations

from aiki_hooks.connect import (
    CONNECTION_FAILED,
    DNS_ERROR,
    TIMEOUT,
    ConnectFailure,
    Deadline,
    DeadlineExceeded,
    classify_connect_error,
    open_connection,
)
from aiki_hooks.model.units import fmt_latency, fmt_timeout

# The closed vocabulary of `values["result"]` (after Telegraf's http_response); a
# transport failure is one of connect's TIMEOUT, DNS_ERROR, CONNECTION_FAILED.
OK = "ok"
BAD_STATUS = "bad_status"
BODY_MISMATCH = "body_mismatch"

__all__ = ["BAD_STATUS", "BODY_MISMATCH", "CONNECTION_FAILED", "DNS_ERROR", "OK", "TIMEOUT", "ConnectFailure",
           "Deadline", "DeadlineExceeded", "classify_connect_error", "fmt_latency", "fmt_timeout", "open_connection"]
