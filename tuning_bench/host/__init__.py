"""The plugin host: loading plugins, the typed registries, and turning names into objects."""
