"""The operator's surface: an HTTP API and a web page over Redis and the control topic.

``driftline api`` serves it (``driftline.cli_api``); ``driftline demo`` too.
Reads come from what the Redis sink keeps (``sinks.redis_state``, and the
chart series of ``sinks.redis_series``); controls go out as signed
``Command`` events on ``<prefix>.control`` (``driftline.api.controls``).
The page (``static/``) is plain HTML and JavaScript with a vendored uPlot
(MIT, ``static/vendor``): no build step, no CDN.
"""

from driftline.api.app import create_app
from driftline.api.server import ApiServer

__all__ = ["ApiServer", "create_app"]
