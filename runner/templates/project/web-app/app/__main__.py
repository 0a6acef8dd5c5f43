"""``python3 -m app``: serve the app (see ``app.server.main`` for the options)."""

from app.server import main

raise SystemExit(main())
