"""The interfaces a plugin author uses: Method, Task, ModelSource, Option, the hook specs and errors."""
