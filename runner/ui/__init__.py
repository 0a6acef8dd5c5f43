"""orch ui: the local web dashboard (``orch ui``; needs the ``[ui]`` extra: starlette, uvicorn)."""
