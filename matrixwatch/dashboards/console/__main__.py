"""``python -m matrixwatch.dashboards.console serve …``: the console without the main CLI
(``matrixwatch run`` starts it this way, so it does not depend on how the CLI mounts it)."""

import logging

from matrixwatch.dashboards.console.cli import app

logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
app()
