"""The HTTP face of simsearch: ``create_app(settings)`` builds the FastAPI application."""

from service.app import create_app

__all__ = ["create_app"]
