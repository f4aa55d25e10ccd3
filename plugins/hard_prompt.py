"""Hard-prompt tuning (PEZ): learn a prompt of real vocabulary tokens by gradients; the model stays frozen."""

import json

from tuning_bench import Method, ModelKind, Option, hookimpl
from tuning_bench.api.method import NO_WEIGHT_CHANGE, PROMPT_ONLY, freeze, learning_rate

PEZ = "Wen et al. 2023, Hard Prompts Made Easy (PEZ)"
STATE_FILE = "hard-prompt.json"


class HardPrompt(Method):
    name = "hard-prompt"
    description = ("Trained hard prompt (PEZ): num_tokens vocabulary tokens in front of each input, found by "
                   "gradients through their nearest embeddings; model frozen, readable text at inference.")
    paper = ("Wen, Jain, Kirchenbauer, Goldblum, Geiping & Goldstein 2023, Hard Prompts Made Easy: "
             "Gradient-Based Discrete Optimization for Prompt Tuning and Discovery")
    decoding = "engine"  # the prompt goes in as token ids; the engine's cached loop calls the wrapper's forward
    model_kinds = frozenset({ModelKind.CAUSAL_LM})  # an encoder's new classification head would be trained weights
    # Each step backpropagates through the whole model, as prompt tuning does: one more such cell would take
    # the default run past its 10-minute budget on a 2-core CPU. It runs when named (--methods hard-prompt).
    family = NO_WEIGHT_CHANGE  # the model is untouched; only the prompt's words change
    in_default_run = False
    options = (
        Option("num_tokens", int, 10, "Length of the learned prompt in tokens (its budget).", minimum=1, maximum=256,
               source=f"{PEZ}: prompt_lm/README.md of the authors' code runs the language-model experiments with "
                      "soft_token_num=10 (16 for CLIP prompts)"),
        Option("init", str, "text", "Initial prompt: text (the tokens of init_text, repeated or cut to num_tokens) "
               "or vocab (random vocabulary tokens).", choices=("text", "vocab"),
               source=f"{PEZ}: Algorithm 1 starts from random vocabulary tokens; the authors' language-model runs "
                      "start from the class names (initialize_from_classes); text is their analogue for any task "
                      "and prompt's default"),
        Option("init_text", str, "", "Text for init=text; empty means the task's instruction.",
               source="as prompt tuning (PEFT prompt-tuning guide: the task description)"),
        Option("weight_decay", float, 0.1, "AdamW weight decay of the continuous embeddings behind the prompt.",
               minimum=0.0, maximum=10.0, source=f"{PEZ}: sample_config.json of the authors' code (AdamW, 0.1)"),
        learning_rate(0.1, f"{PEZ}: sample_config.json of the authors' code (AdamW, lr 0.1; their language-model "
                           "runs used Adafactor at 0.3, as Lester et al. 2021). Not swept here"),
    )

    def adapt(self, loaded, task, config):
        import torch

        from tuning_bench_plugins.discrete_prompt import DiscretePrompt, blocked_ids

        model, tokenizer = freeze(loaded.model), loaded.tokenizer
        table = model.get_input_embeddings().weight
        blocked = blocked_ids(tokenizer, table.shape[0])
        length = config["num_tokens"]
        allowed = torch.ones(table.shape[0], dtype=torch.bool)
        allowed[blocked] = False
        pool = allowed.nonzero().squeeze(-1)
        if config["init"] == "text":
            ids = tokenizer(config["init_text"] or task.instruction or task.name, add_special_tokens=False).input_ids
            ids = [i for i in ids if allowed[i]] or pool[:1].tolist()
            ids = (ids * (length // len(ids) + 1))[:length]
        else:  # drawn from the seeded generator the engine set before adapting
            ids = pool[torch.randint(len(pool), (length,))].tolist()
        return DiscretePrompt(model, blocked, soft=table[torch.tensor(ids)].detach())

    def parameter_groups(self, model, config):
        # The engine's optimiser decays nothing; PEZ decays P, so this group carries its own weight decay.
        return [{"params": [model.soft], "lr": config["learning_rate"], "weight_decay": config["weight_decay"]}]

    def learned_prompt(self, adapted, tokenizer):
        ids = adapted.token_ids().tolist()
        return {"text": tokenizer.decode(ids), "token_ids": ids}

    def save_state(self, adapted, directory):
        # Token ids, not text: decoding and encoding again may give other tokens. No weights: at inference
        # the prompt is text in front of the input and adds no parameters.
        (directory / STATE_FILE).write_text(json.dumps({"format": "tbench-hard-prompt", "method": self.name,
                                                        "token_ids": adapted.token_ids().tolist()}))
        return PROMPT_ONLY

    def load_state(self, loaded, task, config, directory):
        from tuning_bench_plugins.discrete_prompt import DiscretePrompt

        ids = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))["token_ids"]
        rows = freeze(loaded.model).get_input_embeddings().weight.shape[0]
        if not ids or not all(isinstance(i, int) and 0 <= i < rows for i in ids):
            raise ValueError(f"{STATE_FILE} holds token ids outside this model's vocabulary of {rows}")
        return DiscretePrompt.of_tokens(loaded.model, ids)


@hookimpl
def register_methods(register):
    register(HardPrompt())
