"""A test-only method that uses the optional hooks: two parameter groups (one frozen by lr 0) and on_step."""

from tuning_bench import Method, hookimpl
from tuning_bench.api.method import learning_rate


class TwoGroups(Method):
    name = "fake-groups"
    description = "test: input norms at the method's rate, post-attention norms at rate 0; records each step"
    options = (learning_rate(1e-2, "test"),)
    steps_seen: list[tuple[int, int, bool]] = []  # (step, total, gradients present when called)

    def adapt(self, loaded, task, config):
        model = loaded.model
        model.requires_grad_(False)
        for name, parameter in model.named_parameters():
            if "layernorm" in name:
                parameter.requires_grad_(True)
        return model

    def parameter_groups(self, model, config):
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        return [{"params": [p for n, p in named if "input_layernorm" in n], "lr": config["learning_rate"]},
                {"params": [p for n, p in named if "post_attention_layernorm" in n], "lr": 0.0}]

    def on_step(self, model, step, total):
        grads = all(p.grad is not None for p in model.parameters() if p.requires_grad)
        TwoGroups.steps_seen.append((step, total, grads))


@hookimpl
def register_methods(register):
    register(TwoGroups())
