"""``python -m tracehouse.instrumentation ...``: the same as the ``tracehouse-run`` launcher."""

from tracehouse.instrumentation.launcher import main

raise SystemExit(main())
