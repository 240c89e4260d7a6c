"""The HTTP face of simsearch: ``service.app.create_app(settings)`` builds the FastAPI application.

Nothing is imported here: the container health check (``python -m service.healthcheck``) and the admin
command must start in milliseconds, without torch.
"""
