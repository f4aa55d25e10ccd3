"""A metric as a plugin: how far the answer's length is from the reference's (0 = same length)."""

from tuning_bench import hookimpl


def answer_length_error(prediction: str, reference: str) -> float:
    return abs(len(prediction.split()) / max(1, len(reference.split())) - 1.0)


@hookimpl
def register_metrics(register):
    register("answer_length_error", answer_length_error, higher_is_better=False, per_example=True)
