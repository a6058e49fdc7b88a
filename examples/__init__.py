"""Runnable example apps behind agegate (see docs/integration.md, "Drop it into your app")."""
