"""Full fine-tuning: every weight of the model is trained."""

from tuning_bench import Method, hookimpl
from tuning_bench.method import learning_rate


class FineTune(Method):
    name = "finetune"
    description = "Full fine-tuning: train every weight of the model."
    paper = "Howard & Ruder 2018; Devlin et al. 2019 (fine-tuning pretrained language models)"
    options = (
        learning_rate(5e-5, "Devlin et al. 2019 (BERT: 2e-5 to 5e-5); the transformers Trainer default 5e-5"),
    )

    def adapt(self, loaded, task, config):
        for parameter in loaded.model.parameters():
            parameter.requires_grad_(True)
        return loaded.model


@hookimpl
def register_methods(register):
    register(FineTune())
