"""The HTTP API: FastAPI on uvicorn, the second edge of the house. It calls the service layer
and the composition root (`payretry.wiring`), never the tables. `create_app(wiring)` builds the
application; `payretry.api.server` runs it under uvicorn in a thread."""
