"""The wire format shared by the service and the Python client: request and response bodies
(``schemas``) and a collection's specification (``spec``). Pydantic only: importing it loads no FastAPI."""
