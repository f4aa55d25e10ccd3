"""Tasks written as YAML files: the schema checks and the data they name."""
