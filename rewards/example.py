"""An example file reward: the Playground can use it as `file:rewards/example.py:exclamations`
once the server was started with RLHF_EXPLORER_ALLOW_CODE=1 (only files in this folder are
loaded from the UI; the CLI's --allow-code takes any path).

A reward function takes the prompts and the completions (two lists of strings of equal length)
and returns one number per completion.
"""


def exclamations(prompts, completions):
    """Pays 0.25 per '!' in the completion, at most 1: a reward that is easy to hack."""
    return [min(1.0, 0.25 * c.count("!")) for c in completions]
