"""The checks. Each module has one shape: a `Settings` model and `run(ctx, settings)`."""
