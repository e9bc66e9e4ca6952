"""The HTTP service: FastAPI app (``network_security.service.app:app``), its settings, the
champion model holder and the background training runner. Start it with
``network-security serve``; see docs/service.md."""
