"""Runnable example apps behind agegate (see README, "Drop it into your app")."""
