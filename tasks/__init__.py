"""Built-in tasks. Each module registers its task through the ``register_tasks`` hook."""

PLUGINS = ["product_descriptions", "review_sentiment", "attribute_extraction"]
